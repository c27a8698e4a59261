"""P3 submit: single POST /v1/executions against gunicorn with 2 workers.

    python -m bench.submit [--n 500] [--duration 10]

Unloaded: ``--n`` back-to-back requests from a Python client (httpx), whose own time per
request (building it, parsing the answer) is part of what it measures; then, for
``--duration`` seconds, a POST every 10 ms from one connection of a lean client
(``http.client``), each answered and its message published before the next (p50, p99),
taking turns with a one-row INSERT committed alone from PyMySQL, 5 ms after each POST.
Every accepted execution is committed before its answer, so that commit is the floor the
disk sets under an unloaded POST, measured in the same seconds (a VM's disk stalls come
and go).
Loaded: ``wrk`` with 50 connections for ``--duration`` seconds (req/s, p50, p99), three
times: as fast as it goes (every core saturated), at a constant 2,000 req/s spread evenly
(the p99 target's load), and ``GET /healthz`` as fast as it goes: the p99 of an endpoint with no
I/O at all, the floor that scheduling on 2 saturated cores sets.
The worker is stopped once it has published its catalog, so that the figures are the
API's alone (INSERT + send_task), as in the anchors.
"""

import http.client
import json
import time
from urllib.parse import urlsplit

from bench import wrk
from bench.harness import ADMIN_KEY, Report, Row, Stack, arguments, percentile, progress, stack

ECHO = {"plugin": "echo", "command": "echo", "params": {}}
PACED_RATE = 2000
UNLOADED_RATE = 100


def unloaded(st: Stack, report: Report, duration_s: int) -> None:
    """POSTs and one-row commits taking turns, each alone: the POST's latency beside the disk's."""
    progress(f"unloaded: for {duration_s}s, a POST every {1000 // UNLOADED_RATE} ms, a commit between")
    url = urlsplit(st.api_url)
    api = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
    body = json.dumps(ECHO).encode()
    posts: list[float] = []
    commits: list[float] = []
    errors = 0
    with st.db.cursor() as cur:
        cur.execute("CREATE TABLE commit_floor (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(26))")
        begun = time.perf_counter()
        for i in range(duration_s * UNLOADED_RATE):
            _sleep_until(begun + i / UNLOADED_RATE)
            started = time.perf_counter()
            api.request("POST", "/v1/executions", body, headers)
            answer = api.getresponse()
            answer.read()
            posts.append((time.perf_counter() - started) * 1000)
            errors += answer.status != 202
            _sleep_until(begun + (i + 0.5) / UNLOADED_RATE)
            started = time.perf_counter()
            cur.execute("INSERT INTO commit_floor (v) VALUES (%s)", (f"{i:026d}",))
            commits.append((time.perf_counter() - started) * 1000)
        cur.execute("DROP TABLE commit_floor")
    api.close()
    p99 = percentile(posts, 99)
    report.add(Row(f"unloaded p50 (http.client, {UNLOADED_RATE} req/s)", percentile(posts, 50), "ms"))
    report.add(Row("unloaded p99", p99, "ms", target="≤ 5 ms", met=p99 <= 5))
    report.add(Row("  errors (non-202)", errors, "", target="0", met=errors == 0))
    report.add(Row("a one-row INSERT committed alone, between them, p50", percentile(commits, 50), "ms"))
    report.add(Row("  p99 (the disk's floor)", percentile(commits, 99), "ms"))


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.perf_counter()))


def loaded(st: Stack, report: Report, connections: int, duration_s: int) -> None:
    """As fast as it goes, then at 2,000 req/s, then the floor of the HTTP stack."""
    url = f"{st.api_url}/v1/executions"
    progress(f"loaded: wrk -c{connections} for {duration_s}s, unpaced")
    most = wrk.run(url, connections=connections, duration_s=duration_s, method="POST", body=ECHO)
    report.add(
        Row(
            f"POST /v1/executions, {connections} conns unpaced",
            most.requests_per_s,
            "req/s",
            target="≥ 2,000 req/s",
            met=most.requests_per_s >= 2000,
        )
    )
    report.add(Row("  p50", most.p50_ms, "ms"))
    report.add(Row("  p99 (every core saturated)", most.p99_ms, "ms"))
    report.add(Row("  errors (non-2xx, socket)", most.errors, "", target="0", met=most.errors == 0))

    progress(f"paced: wrk -c{connections} for {duration_s}s at {PACED_RATE:,} req/s")
    paced = wrk.run(
        url, connections=connections, duration_s=duration_s, method="POST", body=ECHO, rate_per_s=PACED_RATE
    )
    report.add(
        wrk.rate_row(f"POST /v1/executions, {connections} conns at {PACED_RATE:,} req/s", paced, PACED_RATE)
    )
    report.add(Row("  p50", paced.p50_ms, "ms"))
    report.add(Row("  p99", paced.p99_ms, "ms", target="≤ 60 ms", met=paced.p99_ms <= 60))
    report.add(Row("  errors (non-2xx, socket)", paced.errors, "", target="0", met=paced.errors == 0))

    progress(f"floor: wrk -c{connections} GET /healthz for {duration_s}s, unpaced")
    floor = wrk.run(f"{st.api_url}/healthz", connections=connections, duration_s=duration_s)
    report.add(Row("GET /healthz (no I/O), unpaced", floor.requests_per_s, "req/s"))
    report.add(Row("  p99 (the stack's floor)", floor.p99_ms, "ms"))


def main() -> None:
    parser = arguments(__doc__ or "", n=500)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each timed phase (default 10)")
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    report = Report("submit", {"n": args.n, "duration_s": args.duration, "connections": args.connections})
    with stack(args.database, args.loglevel) as st:
        st.start_api(workers=2)
        worker = st.start_worker()
        st.wait_for_plugins("echo")
        st.stop(worker)
        latencies: list[float] = []
        with st.client() as client:
            for _ in range(50):  # warm-up: connections, caches
                client.post("/v1/executions", json=ECHO).raise_for_status()
            progress(f"unloaded: {args.n} back-to-back POSTs from httpx")
            for _ in range(args.n):
                started = time.perf_counter()
                client.post("/v1/executions", json=ECHO).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
        report.add(Row("unloaded p50 (httpx, back to back)", percentile(latencies, 50), "ms"))
        report.add(Row("unloaded p99 (httpx, back to back)", percentile(latencies, 99), "ms"))
        unloaded(st, report, args.duration)
        if not wrk.available():
            report.notes.append("wrk not installed (apt-get install wrk): loaded figures skipped")
        else:
            loaded(st, report, args.connections, args.duration)
    report.notes.append("wrk (2 threads) shares the 2 cores with gunicorn, Redis and MariaDB")
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
