"""P4 poll: GET /v1/executions/{id} latency, and what 1,000 long-polls cost the database.

    python -m bench.poll [--n 1000] [--duration 10] [--window 10]

1. ``wrk`` with 50 connections at a constant 1,000 req/s, spread evenly, against one
   finished execution: req/s and p99; then ``GET /healthz`` at the same pace, the p99 of
   an endpoint with no I/O at all: the floor that the machine's scheduling sets.
2. ``--n`` concurrent ``?wait=30`` long-polls on running executions: MariaDB statements a
   second (``SHOW GLOBAL STATUS LIKE 'Questions'``) over ``--window`` seconds, against the
   same window with no long-poll open; then the executions are cancelled and the time
   until every long-poll has answered is measured.
"""

import asyncio
import json
import time
from collections import Counter

import httpcore
import httpx

from bench import wrk
from bench.harness import (
    ADMIN_KEY,
    Report,
    Row,
    Stack,
    arguments,
    mysql_connect,
    mysql_questions,
    progress,
    stack,
)

ECHO = {"plugin": "echo", "command": "echo", "params": {}}
LONG = {"plugin": "simulate", "command": "run", "params": {"sleep_s": 300, "mode": "async"}}
RUNNING_EXECUTIONS = 10
GET_RATE = 1000


def questions_per_s(st: Stack, window_s: float) -> float:
    with mysql_connect(st.database_url) as conn:
        before = mysql_questions(conn)
        time.sleep(window_s)
        return (mysql_questions(conn) - before - 1) / window_s


async def long_poll(st: Stack, execution_id: str) -> str:
    """One ``?wait=30`` poll on a connection of its own: its answer's status, or the error.

    httpcore's lone connection, not an httpx client: a pool of a thousand busy connections
    is scanned for each answer, and the seconds that takes would be timed instead of the API.
    """
    url = httpx.URL(st.api_url)
    origin = httpcore.Origin(url.raw_scheme, url.raw_host, url.port or 80)
    async with httpcore.AsyncHTTPConnection(origin) as conn:
        answer = await conn.request(
            "GET",
            f"{st.api_url}/v1/executions/{execution_id}?wait=30",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            extensions={"timeout": {"read": 90}},
        )
    return str(json.loads(answer.content)["status"]) if answer.status == 200 else f"HTTP {answer.status}"


async def long_polls(st: Stack, ids: list[str], n: int, window_s: float) -> tuple[float, float, Counter[str]]:
    """(statements/s while ``n`` long-polls are open, seconds from cancel to all answered, answered)."""
    polls = [asyncio.create_task(long_poll(st, ids[i % len(ids)])) for i in range(n)]
    await asyncio.sleep(3)  # let every poll reach its wait
    progress(f"  {n} long-polls open; counting statements for {window_s:g}s")
    during = await asyncio.to_thread(questions_per_s, st, window_s)
    pending = sum(not p.done() for p in polls)
    progress(f"  {pending} long-polls still waiting; cancelling the executions")
    started = time.monotonic()
    async with st.async_client(len(ids)) as canceller:
        cancels = [canceller.post(f"/v1/executions/{i}/cancel") for i in ids]
        for cancelled in await asyncio.gather(*cancels):
            cancelled.raise_for_status()
    answers: list[str | BaseException] = await asyncio.gather(*polls, return_exceptions=True)
    answered_s = time.monotonic() - started
    return (
        during,
        answered_s,
        Counter(type(a).__name__ if isinstance(a, BaseException) else a for a in answers),
    )


def main() -> None:
    parser = arguments(__doc__ or "", n=1000)
    parser.add_argument("--duration", type=int, default=10, help="seconds of GET load (default 10)")
    parser.add_argument("--window", type=float, default=10, help="seconds of statement counting (default 10)")
    args = parser.parse_args()
    report = Report("poll", {"n": args.n, "duration_s": args.duration, "window_s": args.window})
    with stack(args.database, args.loglevel) as st:
        st.start_api(workers=2)
        st.start_worker()
        st.wait_for_plugins("echo", "simulate")
        with st.client() as client:
            finished = client.post("/v1/executions", json=ECHO).json()["id"]
            client.get(f"/v1/executions/{finished}", params={"wait": 30}).raise_for_status()
            if wrk.available():
                progress(f"GET at 1,000 req/s for {args.duration}s (wrk -c50)")
                got = wrk.run(
                    f"{st.api_url}/v1/executions/{finished}",
                    connections=50,
                    duration_s=args.duration,
                    rate_per_s=GET_RATE,
                )
                report.add(wrk.rate_row("GET /v1/executions/{id} rate", got, GET_RATE))
                report.add(Row("  p50", got.p50_ms, "ms"))
                report.add(Row("  p99", got.p99_ms, "ms", target="≤ 10 ms", met=got.p99_ms <= 10))
                progress(f"GET /healthz at 1,000 req/s for {args.duration}s (wrk -c50)")
                floor = wrk.run(
                    f"{st.api_url}/healthz", connections=50, duration_s=args.duration, rate_per_s=GET_RATE
                )
                report.add(Row("GET /healthz (no I/O) at 1,000 req/s, p50", floor.p50_ms, "ms"))
                report.add(Row("  p99 (the machine's floor)", floor.p99_ms, "ms"))
            else:
                report.notes.append("wrk not installed (apt-get install wrk): GET latency skipped")
            ids = [client.post("/v1/executions", json=LONG).json()["id"] for _ in range(RUNNING_EXECUTIONS)]
            st.wait_until_running(len(ids))
        progress(f"idle: counting statements for {args.window:g}s ({len(ids)} executions running)")
        idle = questions_per_s(st, args.window)
        during, answered_s, outcomes = asyncio.run(long_polls(st, ids, args.n, args.window))
        per_poll = max(0.0, during - idle) / args.n
        report.add(Row("DB statements/s, no long-poll open", idle, "/s"))
        report.add(
            Row(
                f"DB statements/s, {args.n:,} long-polls open",
                during,
                "/s",
                idle,
                "no long-poll",
            )
        )
        # A poll loop would cost each long-poll ≥ 1 statement a second; an idle wait costs
        # none (the rise that remains is the polls' first reads and other clients' noise).
        report.add(
            Row(
                "  extra statements/s per open long-poll",
                per_poll,
                "/s",
                target="< 0.5 (no busy loop)",
                met=per_poll < 0.5,
            )
        )
        report.add(Row("cancel → all long-polls answered", answered_s, "s"))
        report.add(Row("long-polls answered 'cancelled'", outcomes["cancelled"], "", float(args.n), "opened"))
        report.notes.append(f"long-poll answers: {dict(outcomes)}")
    report.notes.append(
        "Questions is server-wide: other clients of the same MariaDB add noise to both windows"
    )
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
