"""Worker memory: resident set size of one worker process over N no-op executions.

    python -m bench.memory [--n 8000]   # the issue's figure: --n 100000

The first sample is taken after a warm-up of one chunk (1,000 executions at least), so
that it sees the worker at the concurrency of the chunks that follow; then one per chunk.
"""

import psutil

from bench.harness import Report, Row, arguments, chunks, progress, stack, submit_batches

ECHO = {"plugin": "echo", "command": "echo", "params": {}}
WARM_UP = 1000


def main() -> None:
    parser = arguments(__doc__ or "", n=8000)
    parser.add_argument("--chunk", type=int, default=1000, help="executions between samples")
    args = parser.parse_args()
    report = Report("memory", {"n": args.n, "warm_up": max(WARM_UP, args.chunk), "chunk": args.chunk})
    samples: list[tuple[int, int]] = []
    with stack(args.database, args.loglevel) as st:
        st.start_api()
        worker = psutil.Process(st.start_worker().pid)
        st.wait_for_plugins("echo")
        done = 0
        with st.client(timeout=120) as client:
            warm_up = min(max(WARM_UP, args.chunk), args.n)
            for count in [warm_up, *chunks(args.n, args.chunk)]:
                submit_batches(client, count, ECHO)
                done += count
                st.wait_terminal(done, 900, "executions", interval_s=0.1)
                rss = worker.memory_info().rss
                samples.append((done, rss))
                progress(f"  after {done:,}: RSS {rss / 2**20:.1f} MiB")
    first, last = samples[0][1], samples[-1][1]
    change = 100 * (last - first) / first
    report.add(Row("worker RSS after warm-up", first / 2**20, "MiB"))
    report.add(Row(f"worker RSS after {args.n:,} more", last / 2**20, "MiB", first / 2**20, "first"))
    report.add(Row("RSS change", change, "%", target="within ±10 %", met=abs(change) <= 10))
    report.params["samples_mib"] = [[n, round(r / 2**20, 1)] for n, r in samples]
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
