"""Running ``wrk`` (HTTP load from C, so the load generator costs little of the 2 cores)."""

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ADMIN_KEY

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str | None) -> float:
    # wrk prints no latency distribution when too few requests completed: no figure, not 0.
    if text is None:
        return float("nan")
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run(
    url: str,
    *,
    connections: int,
    duration_s: int,
    method: str = "GET",
    body: object | None = None,
    delay_ms: int = 0,
    threads: int = 2,
) -> WrkResult:
    """``wrk --latency`` against ``url``; ``delay_ms`` paces each connection (see ``delay()``)."""
    script = f"""
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {ADMIN_KEY}"
wrk.headers["Content-Type"] = "application/json"
{f"wrk.body = [[{json.dumps(body)}]]" if body is not None else ""}
{f"function delay() return {delay_ms} end" if delay_ms else ""}
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.lua"
        path.write_text(script)
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(path),
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return WrkResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles.get("50")),
        p99_ms=_ms(percentiles.get("99")),
        requests=requests,
        errors=errors,
    )
