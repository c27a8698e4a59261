"""P2 I/O concurrency: N ``simulate`` executions each awaiting 1 s, on ONE worker process.

    python -m bench.io_concurrency [--n 1000] [--concurrency 64,1000] [--profile var/io-profile.txt]

For each worker concurrency (``AGENTQ_WORKER_CONCURRENCY``): first submit → all succeeded,
the executions submitted in one batch request per 1,000.
"""

import time
from pathlib import Path

from bench.harness import Report, Row, Stack, arguments, progress, stack, submit_batches

SLEEP = {"plugin": "simulate", "command": "run", "params": {"sleep_s": 1, "mode": "async"}}
TARGET_S = 1.5


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


def main() -> None:
    parser = arguments(__doc__ or "", n=1000)
    parser.add_argument(
        "--concurrency", default="64,1000", help="worker concurrencies to try (default 64,1000)"
    )
    parser.add_argument("--profile", type=Path, help="sample the worker's stacks into this file")
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
    report.notes.append("ratio is against the ideal 1.0 s (lower is better)")
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
