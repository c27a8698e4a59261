"""A key's backlog of CPU-bound sync runs beside another key's `echo`, on one worker; and
what the CPU lane costs I/O-bound sync commands and no-op batches.

    python -m bench.cpu_fairness [--backlog 1500] [--cpu-ms 10] [--b-runs 20] [--rounds 2] [--baseline main]

1. CPU backlog. Key A submits ``--backlog`` runs of ``burn.spin`` (``--cpu-ms`` of
   pure-Python CPU each, a sync command; bench/plugins) in one go (two batch requests);
   key B (on another shard of the queue) submits one ``echo`` every 0.5 s, ``--b-runs``
   times, while they drain. Figures: B's submit→succeeded p50/p99 (``created_at`` →
   ``finished_at``) and A's runs/s (its first submit to its last finish).
2. I/O-bound sync: ``--io-runs`` runs of ``simulate`` sleeping 0.5 s in ``time.sleep``,
   one key: runs/s (64 threads: ideally 128/s).
3. P1 batch throughput (``bench.throughput``'s batch figure, ``--p1-n`` no-op runs).

Each on a fresh database and worker, this tree and ``--baseline`` (exported) in turn,
``--rounds`` times, the order alternating.
"""

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from bench.fairness import key_client, other_shard_client, p1_rate, rows, wait_ended
from bench.harness import ROOT, Report, Row, arguments, percentile, progress, stack, submit_batches
from bench.schedules import exported
from bench.throughput import ECHO

PLUGINS = ROOT / "bench" / "plugins"


def cpu_backlog(
    database: str, loglevel: str, root: Path, backlog: int, cpu_ms: float, b_runs: int
) -> dict[str, Any]:
    """B's submit→succeeded seconds, and A's runs/s."""
    with stack(database, loglevel, root=root, PYTHONPATH=os.pathsep.join([str(PLUGINS), str(root)])) as st:
        st.start_api()
        st.start_worker()
        st.wait_for_plugins("burn", "echo")
        a_id, a = key_client(st, "a")
        b = other_shard_client(st, a_id)
        with a, b:
            spin = {"plugin": "burn", "command": "spin", "params": {"cpu_ms": cpu_ms}}
            a_ids = submit_batches(a, backlog, spin)
            b_ids = []
            started = time.monotonic()
            for i in range(b_runs):
                time.sleep(max(0.0, started + 0.5 * (i + 1) - time.monotonic()))
                response = b.post("/v1/executions", json=ECHO)
                response.raise_for_status()
                b_ids.append(response.json()["id"])
            wait_ended(st, b_ids + a_ids, 900)
        b_rows, a_rows = rows(st, b_ids), rows(st, a_ids)
        latencies = [(f - c).total_seconds() for c, _, f in b_rows if f]
        span = max(f for _, _, f in a_rows if f) - min(c for c, _, _ in a_rows)
        found = {"b": latencies, "a_per_s": len(a_rows) / span.total_seconds(), "load": os.getloadavg()[0]}
        progress(
            f"  B p50 {percentile(latencies, 50):.2f}s p99 {percentile(latencies, 99):.2f}s, A {found['a_per_s']:.1f}/s"
        )
        return found


def io_sync(database: str, loglevel: str, root: Path, n: int) -> float:
    """Runs/s of ``n`` sync runs that sleep 0.5 s."""
    with stack(database, loglevel, root=root) as st:
        st.start_api()
        st.start_worker()
        st.wait_for_plugins("simulate")
        with st.client() as client:
            ids = submit_batches(
                client, n, {"plugin": "simulate", "command": "run", "params": {"sleep_s": 0.5}}
            )
        wait_ended(st, ids, 600)
        found = rows(st, ids)
        span = max(f for _, _, f in found if f) - min(c for c, _, _ in found)
        rate = n / span.total_seconds()
        progress(f"  I/O sync {rate:.1f}/s")
        return rate


def main() -> None:
    parser = arguments(__doc__ or "", n=0)
    parser.add_argument("--backlog", type=int, default=1500)
    parser.add_argument("--cpu-ms", type=float, default=10)
    parser.add_argument("--b-runs", type=int, default=20)
    parser.add_argument("--io-runs", type=int, default=640)
    parser.add_argument("--p1-n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--parts", nargs="+", default=["cpu", "io", "p1"])
    args = parser.parse_args()
    shown = ("backlog", "cpu_ms", "b_runs", "io_runs", "p1_n", "rounds", "baseline")
    report = Report("cpu_fairness", {k: getattr(args, k) for k in shown})
    db, level, named = args.database, args.loglevel, args.baseline
    found: dict[tuple[str, str], list[Any]] = {}
    with contextlib.ExitStack() as cleanup:
        before = cleanup.enter_context(exported(named))
        for turn in range(args.rounds):
            order = [("new", ROOT), ("old", before)]
            for which, root in order if turn % 2 == 0 else order[::-1]:
                progress(f"round {turn + 1}, {which} tree")
                if "cpu" in args.parts:
                    result = cpu_backlog(db, level, root, args.backlog, args.cpu_ms, args.b_runs)
                    found.setdefault(("cpu", which), []).append(result)
                if "io" in args.parts:
                    found.setdefault(("io", which), []).append(io_sync(db, level, root, args.io_runs))
                if "p1" in args.parts:
                    found.setdefault(("p1", which), []).append(p1_rate(db, level, args.p1_n, root))
    if "cpu" in args.parts:
        new, old = found[("cpu", "new")], found[("cpu", "old")]
        for p in (50, 99):
            mine = max(percentile(r["b"], p) for r in new)
            theirs = max(percentile(r["b"], p) for r in old)
            report.add(
                Row(f"CPU backlog: B echo submit→succeeded p{p} (worst round)", mine, "s", theirs, named)
            )
        a_new, a_old = min(r["a_per_s"] for r in new), min(r["a_per_s"] for r in old)
        report.add(
            Row(
                "CPU backlog: A runs/s (worst round)",
                a_new,
                "runs/s",
                a_old,
                named,
                "≥ 0.95×",
                a_new >= 0.95 * a_old,
            )
        )
        for which, results in (("this tree", new), (named, old)):
            report.notes.append(
                f"CPU backlog, {which}: B p50 {[round(percentile(r['b'], 50), 2) for r in results]} s, "
                f"p99 {[round(percentile(r['b'], 99), 2) for r in results]} s, "
                f"A {[round(r['a_per_s'], 1) for r in results]} runs/s, load {[round(r['load'], 1) for r in results]}"
            )
    for part, figure, unit in (
        ("io", "I/O-bound sync runs of 0.5 s (best round)", "runs/s"),
        ("p1", "P1 batch (best round)", "executions/s"),
    ):
        if part in args.parts:
            new_best, old_best = max(found[(part, "new")]), max(found[(part, "old")])
            report.add(Row(figure, new_best, unit, old_best, named, "≥ 0.95×", new_best >= 0.95 * old_best))
            report.notes.append(
                f"{part} rounds, this tree: {[round(x) for x in found[(part, 'new')]]}; {named}: {[round(x) for x in found[(part, 'old')]]}"
            )
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
