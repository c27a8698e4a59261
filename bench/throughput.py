"""P1 throughput: no-op executions end to end, against bare Celery in the same run.

    python -m bench.throughput [--n 3000] [--single-s 5] [--profile var/worker-profile.txt]

1. Bare Celery: ``bench.bare_celery`` (prefork -c 2, ``ignore_result``), N tasks sent from
   this process, until its Redis counter reaches N.
2. agentq batch: N ``echo`` executions over POST /v1/executions/batch (chunks of 1,000),
   until all N rows are ``succeeded`` in MySQL; one worker process.
3. agentq single POST: one POST per execution from ``wrk`` over 50 connections for
   ``--single-s`` seconds, until every execution it created is ``succeeded``; then bare
   Celery once more, and the single-POST ratio is to the mean of its two rates.
"""

import contextlib
import sys
import time
from pathlib import Path

import psutil
import redis

from bench import bare_celery, wrk
from bench.harness import (
    REDIS_URL,
    Proc,
    Report,
    Row,
    Stack,
    arguments,
    progress,
    queue_name,
    stack,
    submit_batches,
    wait_until,
)

ECHO = {"plugin": "echo", "command": "echo", "params": {}}
TARGET_PER_S = 3000


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process, its reaped children and its live descendants.

    A descendant may exit between listing and reading (a pool replacing a child): its time is
    then counted in its parent's reaped-children time, or lost if its parent is not ``pid``.
    """
    root = psutil.Process(pid)
    user, system, children_user, children_system = root.cpu_times()[:4]
    total = user + system + children_user + children_system
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            total += times.user + times.system
    return float(total)


def bare_celery_rate(st: Stack, n: int) -> tuple[float, float]:
    """(tasks/s, worker CPU ms per task) of a bare Celery prefork worker (-c 2), first send to last done."""
    counter = redis.Redis.from_url(REDIS_URL)
    queue = f"{queue_name(st.database)}.bare"
    key = f"{queue}:done"
    argv = [
        sys.executable, "-m", "celery", "-A", "bench.bare_celery", "worker", "-c", "2",
        "-Q", queue, "--loglevel", st.env["AGENTQ_LOG_LEVEL"],
        "--without-mingle", "--without-gossip", "--hostname", "bare@%h",
    ]  # fmt: skip
    worker = Proc("bare-celery", argv, st.env, st.log_dir)
    try:
        counter.delete(key)
        bare_celery.noop.apply_async([key], queue=queue)
        wait_until(lambda: counter.get(key) == b"1", 60, "the bare Celery worker")
        counter.delete(key)
        progress(f"bare Celery: sending {n:,} no-op tasks")
        cpu_before = cpu_s(worker.pid)
        started = time.monotonic()
        with bare_celery.app.producer_or_acquire() as producer:
            for _ in range(n):
                bare_celery.noop.apply_async([key], queue=queue, producer=producer)
        sent = time.monotonic()
        progress(f"  sent in {sent - started:.2f}s ({n / (sent - started):,.0f}/s)")
        wait_until(lambda: int(counter.get(key) or 0) >= n, 600, "bare Celery", 0.02)
        rate = n / (time.monotonic() - started)
        return rate, 1000 * (cpu_s(worker.pid) - cpu_before) / n
    finally:
        worker.stop()
        counter.delete(queue, key)
        counter.close()


def batch_rate(st: Stack, n: int) -> tuple[float, float]:
    """(executions/s end to end, executions/s accepted by the API) for batch submission."""
    before = sum(st.counts().values())
    with st.client(timeout=120) as client:
        progress(f"agentq batch: submitting {n:,} echo executions in chunks of 1,000")
        started = time.monotonic()
        submit_batches(client, n, ECHO)
        submitted = time.monotonic()
    progress(f"  submitted in {submitted - started:.2f}s")
    done = st.wait_terminal(before + n, 900, "batch")
    return n / (done - started), n / (submitted - started)


def single_rate(st: Stack, duration_s: int, connections: int = 50) -> tuple[float, float, int]:
    """(executions/s end to end, accepted/s, errors) of single POSTs from wrk for ``duration_s``."""
    before = sum(st.counts().values())
    progress(f"agentq single POST: wrk over {connections} connections for {duration_s}s")
    started = time.monotonic()
    result = wrk.run(
        f"{st.api_url}/v1/executions",
        connections=connections,
        duration_s=duration_s,
        method="POST",
        body=ECHO,
    )
    submitted = time.monotonic()
    created = sum(st.counts().values()) - before
    progress(f"  {created:,} submitted in {submitted - started:.2f}s")
    done = st.wait_terminal(before + created, 900, "single POST")
    return created / (done - started), created / (submitted - started), result.errors


def main() -> None:
    parser = arguments(__doc__ or "", n=3000)
    parser.add_argument("--single-s", type=int, default=5, help="seconds of single POSTs (default 5)")
    parser.add_argument("--profile", type=Path, help="sample the worker's stacks into this file")
    args = parser.parse_args()
    report = Report("throughput", {"n": args.n, "single_s": args.single_s})
    with stack(args.database, args.loglevel) as st:
        bare, bare_cpu_ms = bare_celery_rate(st, args.n)
        report.add(Row("bare Celery prefork c2, ignore_result (baseline)", bare, "tasks/s"))
        report.add(Row("  bare Celery worker CPU per task", bare_cpu_ms, "ms"))
        st.start_api()
        worker = st.start_worker(profile=args.profile)
        st.wait_for_plugins("echo")
        progress("warm-up: 200 executions")
        with st.client() as client:
            submit_batches(client, 200, ECHO)
        st.wait_terminal(200, 120, "warm-up")
        api_pid = next(p.pid for p in st.procs if p.name == "api")
        cpu_before = cpu_s(worker.pid), cpu_s(api_pid)
        try:
            end_to_end, accepted = batch_rate(st, args.n)
            worker_cpu, api_cpu = cpu_s(worker.pid) - cpu_before[0], cpu_s(api_pid) - cpu_before[1]
        finally:
            if args.profile:
                st.stop(worker)  # the profile is written as the worker exits
        report.add(
            Row(
                "agentq batch submit → all succeeded",
                end_to_end,
                "exec/s",
                bare,
                "bare Celery",
                f"≥ {TARGET_PER_S:,}/s",
                end_to_end >= TARGET_PER_S,
            )
        )
        report.add(Row("  API accepts (batch, chunks of 1,000)", accepted, "exec/s"))
        report.add(
            Row(
                "  worker CPU per execution (batch)",
                1000 * worker_cpu / args.n,
                "ms",
                bare_cpu_ms,
                "bare Celery",
            )
        )
        report.add(Row("  API CPU per execution (batch)", 1000 * api_cpu / args.n, "ms"))
        if args.profile:
            report.notes.append(f"profiled run (the sampler slows the worker): profile in {args.profile}")
        elif not wrk.available():
            report.notes.append("wrk not installed (apt-get install wrk): single POST skipped")
        else:
            single, single_accepted, errors = single_rate(st, args.single_s)
            # The machine's speed drifts: the baseline is measured again after the single
            # POSTs (agentq stopped), and the ratio is to the mean of the two.
            for proc in list(st.procs):
                st.stop(proc)
            bare_after, _ = bare_celery_rate(st, args.n)
            report.add(Row("bare Celery again, after the single POSTs", bare_after, "tasks/s"))
            around = (bare + bare_after) / 2
            report.add(
                Row(
                    "agentq single POST (50 conns) → all succeeded",
                    single,
                    "exec/s",
                    around,
                    "bare Celery, mean of both",
                    "≥ 1.0× bare Celery",
                    single >= around,
                )
            )
            report.add(Row("  API accepts (single POST, 50 conns)", single_accepted, "exec/s"))
            report.add(Row("  errors (non-2xx, socket)", errors, "", target="0", met=errors == 0))
    report.notes.append(
        "load generators (this process, wrk) share the 2 cores with API, worker, Redis, MariaDB"
    )
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
