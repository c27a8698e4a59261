"""Worker memory: resident set size of one worker process over N no-op executions.

    python -m bench.memory [--n 8000] [--warm-up 10000]   # the issue's figure: --n 100000

The worker first runs a warm-up; the figure is the change from the RSS after it to the
RSS after N more, sampled once per chunk. The second chunk a worker runs at full speed
leaves it 3–7 MiB bigger than the first (more executions in flight at once, so more
allocator arenas in use), whatever the allocator (glibc, jemalloc, PYTHONMALLOC=malloc):
a high-water mark, not a leak, so the warm-up is several chunks. The RSS after the first
chunk and the growth over the second half of the run (the slope a leak would show) are
printed too.
"""

import psutil

from bench.harness import Report, Row, arguments, chunks, progress, stack, submit_batches

ECHO = {"plugin": "echo", "command": "echo", "params": {}}


def main() -> None:
    parser = arguments(__doc__ or "", n=8000)
    parser.add_argument("--chunk", type=int, default=1000, help="executions between samples")
    parser.add_argument("--warm-up", type=int, default=10_000, help="executions before the first sample")
    args = parser.parse_args()
    warm_up = max(args.warm_up, args.chunk)
    report = Report("memory", {"n": args.n, "warm_up": warm_up, "chunk": args.chunk})
    samples: list[tuple[int, int]] = []  # (executions run, RSS), the warm-up's included
    with stack(args.database, args.loglevel) as st:
        st.start_api()
        worker = psutil.Process(st.start_worker().pid)
        st.wait_for_plugins("echo")
        done = 0
        with st.client(timeout=120) as client:
            for count in chunks(warm_up + args.n, args.chunk):
                submit_batches(client, count, ECHO)
                done += count
                st.wait_terminal(done, 900, "executions", interval_s=0.1)
                rss = worker.memory_info().rss
                samples.append((done, rss))
                progress(
                    f"  after {done:,}{' (warm-up)' if done <= warm_up else ''}: RSS {rss / 2**20:.1f} MiB"
                )
    first_chunk = samples[0][1]
    measured = [rss for n, rss in samples if n >= warm_up]
    first, last = measured[0], measured[-1]
    change = 100 * (last - first) / first
    half = measured[len(measured) // 2]
    report.add(Row(f"worker RSS after the first {args.chunk:,}", first_chunk / 2**20, "MiB"))
    report.add(Row(f"worker RSS after a warm-up of {warm_up:,}", first / 2**20, "MiB"))
    report.add(Row(f"worker RSS after {args.n:,} more", last / 2**20, "MiB", first / 2**20, "warmed up"))
    report.add(Row("RSS change", change, "%", target="within ±10 %", met=abs(change) <= 10))
    report.add(Row("  of which in the second half", 100 * (last - half) / first, "%"))
    report.params["samples_mib"] = [[n, round(r / 2**20, 1)] for n, r in samples]
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
