"""Running ``wrk`` (HTTP load from C, so the load generator costs little of the 2 cores)."""

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ADMIN_KEY, Row

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}

# A constant request rate, spread evenly: each wrk thread hands its idle connections
# start times one interval apart on its own clock (LuaJIT's FFI), instead of a fixed
# pause after each answer, which would fire the connections in bursts and lower the rate
# by the latency. A thread more than a second behind its schedule starts over from now.
_PACED = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } agentq_timespec;
int clock_gettime(int clock, agentq_timespec *tp);
]]
local ts = ffi.new("agentq_timespec")
local next_ms = nil
function delay()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  local now = tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  if next_ms == nil or next_ms < now - 1000 then next_ms = now end
  next_ms = next_ms + INTERVAL_MS
  return math.max(0, math.floor(next_ms - now))
end
"""


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
    rate_per_s: float | None = None,
    threads: int = 2,
) -> WrkResult:
    """``wrk --latency`` against ``url``: as fast as it goes, or at ``rate_per_s``."""
    script = f"""
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {ADMIN_KEY}"
wrk.headers["Content-Type"] = "application/json"
{f"wrk.body = [[{json.dumps(body)}]]" if body is not None else ""}
{_PACED.replace("INTERVAL_MS", str(threads * 1000 / rate_per_s)) if rate_per_s else ""}
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


def rate_row(figure: str, result: WrkResult, rate_per_s: int) -> Row:
    """The rate a paced run reached: met within 2 % of the rate it was run at."""
    reached = result.requests_per_s
    return Row(figure, reached, "req/s", target=f"{rate_per_s:,}", met=reached >= 0.98 * rate_per_s)
