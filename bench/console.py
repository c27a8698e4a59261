"""The web console's executions page with many rows in the database: how long it takes.

    python -m bench.console [--n 100000] [--requests 200]

Fills ``executions`` with ``--n`` rows (mixed statuses and plugins; 10 % another key's)
by multi-row INSERTs, signs in through the console's form, then requests, in turn, the
executions page unfiltered, filtered by status, by plugin, a page deep in the keyset,
the failed page, and the JSON list ``GET /v1/executions?limit=50`` (the same 50 rows,
the baseline), one request at a time, ``--requests`` of each: client-side latency p50
and p99.
"""

import json
import random
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
from ulid import ULID

from bench.harness import ADMIN_KEY, Report, Row, Stack, arguments, progress, stack

STATUSES = ["succeeded"] * 16 + ["failed", "timed_out", "cancelled", "running"]
PLUGINS = ["echo", "simulate", "http", "news", "llm"]
INSERT_CHUNK = 5000
COLUMNS = (
    "id, owner, plugin, command, params, queue, status, attempts, max_retries, priority, timeout_s,"
    " created_at, started_at, finished_at, result, error, last_event_seq, log_lines"
)
# The page renders "well under half a second": its p99 is under it.
TARGET_MS = 500


def fill(st: Stack, n: int) -> str:
    """``n`` executions, oldest first; returns an id from the middle (a deep page's cursor)."""
    rng = random.Random(7)
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=7)
    placeholders = ", ".join(["%s"] * len(COLUMNS.split(",")))
    middle = ""
    with st.db.cursor() as cur:
        for offset in range(0, n, INSERT_CHUNK):
            rows = []
            for i in range(offset, min(n, offset + INSERT_CHUNK)):
                created = start + timedelta(seconds=i * 6)
                status = rng.choice(STATUSES)
                ended = status not in ("running",)
                error = {"type": "RetryLater" if status == "failed" else status, "message": "boom"}
                execution_id = str(ULID.from_datetime(created.replace(tzinfo=UTC)))
                if i == n // 2:
                    middle = execution_id
                rows.append(
                    (
                        execution_id,
                        "other-key" if i % 10 == 0 else "admin",
                        plugin := rng.choice(PLUGINS),
                        "run" if plugin == "simulate" else "echo",
                        json.dumps({"i": i}),
                        "agentq",
                        status,
                        1,
                        3,
                        5,
                        300,
                        created,
                        created + timedelta(milliseconds=20),
                        created + timedelta(milliseconds=20 + rng.randrange(2000)) if ended else None,
                        json.dumps({"i": i}) if status == "succeeded" else None,
                        json.dumps(error) if status in ("failed", "timed_out", "cancelled") else None,
                        3,
                        0,
                    )
                )
            cur.executemany(f"INSERT INTO executions ({COLUMNS}) VALUES ({placeholders})", rows)
        cur.execute("ANALYZE TABLE executions")
        cur.fetchall()
    return middle


def sign_in(client: httpx.Client) -> None:
    form = client.get("/ui/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    signed = client.post("/ui/sign-in", data={"csrf_token": token.group(1), "api_key": ADMIN_KEY, "next": ""})
    assert signed.status_code == 303, signed.text
    assert client.get("/ui/executions").status_code == 200


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = arguments(__doc__ or "", n=100_000)
    parser.add_argument("--requests", type=int, default=200, help="requests of each page (default 200)")
    args = parser.parse_args()
    report = Report("console", {"n": args.n, "requests": args.requests})
    with stack(args.database, args.loglevel) as st:
        progress(f"inserting {args.n:,} executions")
        middle = fill(st, args.n)
        st.start_api(workers=2)
        pages = {
            "GET /ui/executions": "/ui/executions",
            "  ?status=failed": "/ui/executions?status=failed",
            "  ?plugin=news": "/ui/executions?plugin=news",
            "  a page deep in the keyset (?cursor=)": f"/ui/executions?cursor={middle}",
            "GET /ui/failed (the newest 1,000 failures, grouped)": "/ui/failed",
            "GET /v1/executions?limit=50 (JSON, the same rows)": "/v1/executions?limit=50",
        }
        timings: dict[str, list[float]] = {name: [] for name in pages}
        with httpx.Client(base_url=st.api_url, timeout=60) as client:
            sign_in(client)
            api_headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            rows_shown = client.get("/ui/executions").text.count('class="badge st-') - 7  # less the legend
            progress(f"{args.requests} requests of each page, in turn")
            for _ in range(args.requests):
                for name, path in pages.items():
                    headers = api_headers if path.startswith("/v1/") else None
                    began = time.perf_counter()
                    answer = client.get(path, headers=headers)
                    timings[name].append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
        baseline = percentile(timings["GET /v1/executions?limit=50 (JSON, the same rows)"], 0.5)
        for name in pages:
            p50, p99 = percentile(timings[name], 0.5), percentile(timings[name], 0.99)
            is_page = name.startswith(("GET /ui/executions", "  "))
            report.add(Row(f"{name} p50", p50, "ms", baseline if is_page else None, "JSON list p50"))
            report.add(
                Row(
                    f"{name} p99",
                    p99,
                    "ms",
                    target=f"< {TARGET_MS} ms" if is_page else "",
                    met=p99 < TARGET_MS if is_page else None,
                )
            )
        report.notes.append(f"{args.n:,} executions in the database, {rows_shown} rows on a page")
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
