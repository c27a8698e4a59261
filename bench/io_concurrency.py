"""P2 I/O concurrency on ONE worker process: async sleeps, then real outbound calls.

    python -m bench.io_concurrency [--n 1000] [--concurrency 64,1000] [--profile var/io-profile.txt]

1. N ``simulate`` executions each awaiting 1 s, for each worker concurrency
   (``AGENTQ_WORKER_CONCURRENCY``): first submit → all succeeded, the executions
   submitted in one batch request per 1,000.
2. Outbound calls, one worker with default settings, to a local stand-in for the
   internet (bench/outside.py under uvicorn, a process of its own): N ``http`` GETs it
   answers at once, beside the same N GETs from a bare asyncio script sharing one
   ``httpx.AsyncClient`` (bench/bare_http.py: the floor); then N ``llm`` chats it answers
   after 0.5 s. For each: first submit → all succeeded, the runs that ran more than once,
   and the worker's event-loop lag, sampled on that loop by the ``probe`` plugin
   (bench/plugins) while the calls run. And in this process, one call at a time: the
   event-loop CPU of a guarded call (``outbound.fetch``) beside a shared client's GET.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from agentq.core.settings import settings
from bench.harness import (
    ROOT,
    TERMINAL,
    Report,
    Row,
    Stack,
    arguments,
    free_port,
    progress,
    stack,
    submit_batches,
    wait_until,
)
from workers.plugins import outbound

SLEEP = {"plugin": "simulate", "command": "run", "params": {"sleep_s": 1, "mode": "async"}}
TARGET_S = 1.5
OUTBOUND_TARGET_S = 2.0
CHAT_DELAY_S = 0.5
PROBE_PLUGINS = ROOT / "bench" / "plugins"


def wall_s(st: Stack, n: int) -> float:
    before = sum(st.counts().values())
    with st.client(timeout=120) as client:
        started = time.monotonic()
        submit_batches(client, n, SLEEP)
    progress(f"  submitted in {time.monotonic() - started:.2f}s")
    done = st.wait_terminal(before + n, 600, f"{n} × sleep 1s", interval_s=0.02)
    failed = {k: v for k, v in st.counts().items() if k != "succeeded"}
    if failed:
        raise RuntimeError(f"not all succeeded: {failed}")
    return done - started


def start_outside(st: Stack) -> str:
    """The stand-in for the internet; returns its base URL."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "bench.outside:app", "--host", "127.0.0.1", "--port", str(port),
        "--lifespan", "off", "--no-access-log", "--log-level", "warning", "--backlog", "4096",
        "--timeout-keep-alive", "30",
    ]  # fmt: skip
    st.start("outside", argv, AGENTQ_BENCH_CHAT_DELAY_S=str(CHAT_DELAY_S))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/count").status_code == 200, 30, "the stand-in server")
    return url


def served(outside: str) -> Counter[str]:
    return Counter(httpx.get(f"{outside}/count").json())


def floor_s(outside: str, n: int) -> float:
    argv = [sys.executable, "-m", "bench.bare_http", f"{outside}/hello", str(n)]
    done = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
    result: dict[str, float] = json.loads(done.stdout)
    if result["ok"] != n:
        raise RuntimeError(f"the bare script got {result['ok']} of {n} answers")
    return result["seconds"]


def loop_cpu_ms(outside: str, calls: int = 300) -> tuple[float, float]:
    """Event-loop CPU per call, one call at a time: (``outbound.fetch``, a shared client's GET)."""
    settings.outbound_allow_private = True  # the stand-in is on 127.0.0.1
    url = f"{outside}/hello"

    async def per_call_ms(call: Any) -> float:
        await call()  # the first builds what the others reuse
        started = time.thread_time()
        for _ in range(calls):
            await call()
        return 1000 * (time.thread_time() - started) / calls

    async def both() -> tuple[float, float]:
        async with httpx.AsyncClient() as shared:
            guarded = await per_call_ms(lambda: outbound.fetch(url, timeout_s=30))
            bare = await per_call_ms(lambda: shared.get(url))
        return guarded, bare

    return asyncio.run(both())


def terminal(st: Stack) -> int:
    return sum(v for k, v in st.counts().items() if k in TERMINAL)


def outbound_burst(st: Stack, n: int, item: dict[str, Any], what: str) -> tuple[float, int, dict[str, Any]]:
    """N runs of ``item`` with the probe beside them: (seconds, runs that ran more than once, lag)."""
    stop = st.log_dir / f"probe-{time.time_ns()}.stop"
    with st.client(timeout=120) as client:
        probe_params = {"stop_file": str(stop)}
        probe = client.post(
            "/v1/executions", json={"plugin": "probe", "command": "lag", "params": probe_params}
        )
        probe.raise_for_status()
        probe_url = f"/v1/executions/{probe.json()['id']}"
        wait_until(lambda: client.get(probe_url).json()["status"] == "running", 60, "the probe", 0.05)
        before = terminal(st)
        started = time.monotonic()
        submit_batches(client, n, item)
        done = st.wait_terminal(before + n, 600, what, interval_s=0.02)
        stop.touch()
        lag = client.get(probe_url, params={"wait": 30}).json()["result"]
    with st.db.cursor() as cur:
        cur.execute(
            "SELECT status, COUNT(*), SUM(attempts > 1) FROM executions WHERE plugin = %s GROUP BY status",
            (item["plugin"],),
        )
        rows = cur.fetchall()
    failed = {str(status): int(count) for status, count, _ in rows if status != "succeeded"}
    if failed:
        raise RuntimeError(f"{what}: not all succeeded: {failed}")
    return done - started, sum(int(twice or 0) for _, _, twice in rows), lag


def outbound_rows(args: Any, report: Report) -> None:
    with stack(args.database, args.loglevel) as st:
        st.start_api()
        outside = start_outside(st)
        st.start_worker(
            AGENTQ_OUTBOUND_ALLOW_PRIVATE="1",
            AGENTQ_LLM_BASE_URL=f"{outside}/v1",
            PYTHONPATH=os.pathsep.join([str(PROBE_PLUGINS), str(ROOT)]),
        )
        st.wait_for_plugins("http", "llm", "probe")
        n = args.n
        progress(f"{n:,} GETs at once from a bare asyncio script, one shared httpx.AsyncClient")
        floor = report.add(
            Row(f"{n:,} GETs, bare asyncio, one shared httpx.AsyncClient", floor_s(outside, n), "s")
        )
        guarded, bare = loop_cpu_ms(outside)
        figure = "event-loop CPU per http call, one at a time, in process (outbound.fetch)"
        report.add(Row(figure, guarded, "ms", bare, "shared client", "< 1 ms", guarded < 1))
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        runs = [  # name, what to run, the server's counter, figure, baseline
            ("http", {"url": f"{outside}/hello"}, "hello", "http GETs answered at once", (floor.value, "floor")),
            ("llm", chat, "chat", f"llm chats answered after {CHAT_DELAY_S:g} s", (CHAT_DELAY_S, "ideal")),
        ]  # fmt: skip
        for name, params, counter, figure, (baseline, baseline_name) in runs:
            progress(f"{n:,} × {name} on one worker (default settings)")
            item = {"plugin": name, "command": "get" if name == "http" else "chat", "params": params}
            before = served(outside)[counter]
            seconds, twice, lag = outbound_burst(st, n, item, f"{n:,} × {name}")
            asked = served(outside)[counter] - before
            target, met = f"≤ {OUTBOUND_TARGET_S:g} s", seconds <= OUTBOUND_TARGET_S
            report.add(Row(f"{n:,} {figure}, one worker", seconds, "s", baseline, baseline_name, target, met))
            report.add(
                Row(f"  {name} runs that ran more than once", twice, "runs", target="0", met=twice == 0)
            )
            report.add(Row(f"  worker event-loop lag p99 during the {name} runs", lag["p99_ms"], "ms"))
            report.notes.append(
                f"{name}: the server was asked {asked:,} times for {n:,} runs; loop lag p50 {lag['p50_ms']} ms, "
                f"max {lag['max_ms']} ms over {lag['samples']:,} samples"
            )  # fmt: skip


def main() -> None:
    parser = arguments(__doc__ or "", n=1000)
    parser.add_argument(
        "--concurrency", default="64,1000", help="worker concurrencies to try (default 64,1000)"
    )
    parser.add_argument("--profile", type=Path, help="sample the worker's stacks into this file")
    parser.add_argument("--no-outbound", action="store_true", help="only the async sleeps")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.profile and len(levels) > 1:
        parser.error("--profile samples one run: give one --concurrency")
    report = Report("io_concurrency", {"n": args.n, "concurrency": levels})
    for level in levels:
        with stack(args.database, args.loglevel) as st:
            st.start_api()
            worker = st.start_worker(
                concurrency=level, profile=args.profile, AGENTQ_WORKER_CONCURRENCY=str(level)
            )
            st.wait_for_plugins("simulate")
            progress(f"worker concurrency {level}: {args.n:,} × simulate sleep_s=1 async")
            seconds = wall_s(st, args.n)
            if args.profile:
                st.stop(worker)  # the profile is written as the worker exits
            report.add(
                Row(
                    f"{args.n:,} × 1 s async sleep, worker concurrency {level}",
                    seconds,
                    "s",
                    1.0,
                    "ideal",
                    f"≤ {TARGET_S} s",
                    seconds <= TARGET_S,
                )
            )
    report.notes.append("ratio is against the ideal 1.0 s, the floor or the ideal 0.5 s (lower is better)")
    if not args.no_outbound:
        outbound_rows(args, report)
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
