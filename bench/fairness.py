"""Fair share: a second key's run beside one key's backlog (under a limit, and on a busy
worker with none), a concurrency key's limit, and the cost of all this with no limit set.

    python -m bench.fairness [--backlog 400] [--b-runs 30] [--limit-runs 100] [--p1-n 3000] [--baseline main]

1. Fairness. Key A submits ``--backlog`` runs of 0.5 s (async sleep), about 50 s of work
   on 4 slots; while they drain key B (on another shard of the queue than A) submits one
   0.1 s run a second, ``--b-runs`` times. Figures: B's submit→succeeded p50/p99
   (``created_at`` → ``finished_at``), and A's throughput while B ran; this tree and
   ``--baseline`` (exported), each in two setups: ``simulate`` limited to 4
   (``AGENTQ_PLUGIN_LIMITS='{"simulate": 4}'``) on one worker; and no limit on a worker of
   4 slots with a message per execution (a chunk of 1), where first in, first out
   (main) starts B's run after all of A's before it.
2. Limit. ``--limit-runs`` runs of 1 s under a limit of 5 on a concurrency key: the most
   that ran at once (from the rows' ``started_at``/``finished_at``) and the wall time.
3. P1 batch throughput with no limit set (``bench.throughput``'s batch figure): this tree
   and ``--baseline`` (a git revision, exported) in turn, ``--p1-rounds`` times each (the
   order alternating), on fresh databases; the best of each.
"""

import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from agentq.core import broker
from bench.harness import ROOT, Report, Row, Stack, arguments, percentile, progress, stack, submit_batches
from bench.schedules import exported
from bench.throughput import ECHO, batch_rate


def simulate(sleep_s: float, **fields: Any) -> dict[str, Any]:
    return {"plugin": "simulate", "command": "run", "params": {"sleep_s": sleep_s, "mode": "async"}, **fields}


def key_client(st: Stack, name: str) -> tuple[str, httpx.Client]:
    """A new key's id, and a client that sends it."""
    with st.client() as admin:
        made = admin.post("/v1/keys", json={"name": name})
        made.raise_for_status()
    client = httpx.Client(
        base_url=st.api_url, headers={"Authorization": f"Bearer {made.json()['key']}"}, timeout=60
    )
    return made.json()["id"], client


def rows(st: Stack, ids: list[str]) -> list[tuple[datetime, datetime | None, datetime | None]]:
    """(created_at, started_at, finished_at) of each execution."""
    with st.db.cursor() as cur:
        marks = ", ".join(["%s"] * len(ids))
        cur.execute(f"SELECT created_at, started_at, finished_at FROM executions WHERE id IN ({marks})", ids)
        return list(cur.fetchall())


def wait_ended(st: Stack, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(finished is None for _, _, finished in rows(st, ids)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids)} executions did not end within {timeout_s:g}s")
        time.sleep(0.2)


def most_at_once(found: list[tuple[datetime, datetime | None, datetime | None]]) -> int:
    events = sorted((at.timestamp(), step) for _, s, f in found if s and f for at, step in ((s, 1), (f, -1)))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def other_shard_client(st: Stack, first: str) -> httpx.Client:
    """A new key whose runs go to another shard of the queue than ``first``'s."""
    queue = st.env["AGENTQ_DEFAULT_QUEUE"]
    for n in range(50):
        made, client = key_client(st, f"b{n}")
        if broker.shard(queue, made) != broker.shard(queue, first):
            return client
        client.close()
    raise RuntimeError("no key on another shard among 50")


def fairness_run(
    database: str, loglevel: str, backlog: int, b_runs: int, limited: bool, root: Path
) -> tuple[list[float], float]:
    """B's submit→succeeded seconds, and A's executions/s while B ran: under the limit of 4,
    or with none on a worker of 4 slots and a message per execution."""
    env = {"AGENTQ_PLUGIN_LIMITS": '{"simulate": 4}'} if limited else {"AGENTQ_CHUNK_SIZE": "1"}
    with stack(database, loglevel, root=root, **env) as st:
        st.start_api()
        st.start_worker(concurrency=None if limited else 4)
        st.wait_for_plugins("simulate")
        a_id, a = key_client(st, "a")
        b = other_shard_client(st, a_id)
        with a, b:
            progress(f"{'limit 4' if limited else 'no limit, 4 slots'}: A submits {backlog} runs of 0.5 s")
            a_ids = submit_batches(a, backlog, simulate(0.5))
            time.sleep(2)
            b_ids = []
            started = time.monotonic()
            for i in range(b_runs):
                time.sleep(max(0.0, started + i - time.monotonic()))
                response = b.post("/v1/executions", json=simulate(0.1))
                response.raise_for_status()
                b_ids.append(response.json()["id"])
            wait_ended(st, b_ids, 600)
            b_rows = rows(st, b_ids)
            window = min(c for c, _, _ in b_rows), max(f for _, _, f in b_rows if f)
            a_done = [f for _, _, f in rows(st, a_ids) if f and window[0] <= f <= window[1]]
            a_per_s = len(a_done) / (window[1] - window[0]).total_seconds()
            latencies = [(f - c).total_seconds() for c, _, f in b_rows if f]
            progress(f"  B p99 {percentile(latencies, 99):.2f}s, A {a_per_s:.2f}/s")
            return latencies, a_per_s


def limit_run(database: str, loglevel: str, n: int) -> tuple[int, float]:
    with stack(database, loglevel) as st:
        st.start_api()
        st.start_worker()
        st.wait_for_plugins("simulate")
        with st.client() as client:
            client.put("/v1/limits/bench", json={"max_running": 5}).raise_for_status()
            progress(f"limit 5: {n} runs of 1 s")
            ids = submit_batches(client, n, simulate(1.0, concurrency_key="bench"))
        wait_ended(st, ids, 600)
        found = rows(st, ids)
        wall = max(f for _, _, f in found if f) - min(c for c, _, _ in found)
        return most_at_once(found), wall.total_seconds()


def p1_rate(database: str, loglevel: str, n: int, root: Path) -> float:
    with stack(database, loglevel, root=root) as st:
        st.start_api()
        st.start_worker()
        st.wait_for_plugins("echo")
        with st.client() as client:
            submit_batches(client, 200, ECHO)
        st.wait_terminal(200, 120, "warm-up")
        return batch_rate(st, n)[0]


def main() -> None:
    parser = arguments(__doc__ or "", n=0)
    parser.add_argument("--backlog", type=int, default=400)
    parser.add_argument("--b-runs", type=int, default=30)
    parser.add_argument("--limit-runs", type=int, default=100)
    parser.add_argument("--p1-n", type=int, default=3000)
    parser.add_argument("--p1-rounds", type=int, default=2, help="P1 runs of each tree, alternating")
    parser.add_argument("--baseline", default="main", help="git revision for P1 ('' for none)")
    parser.add_argument("--parts", nargs="+", default=["fairness", "limit", "p1"])
    args = parser.parse_args()
    shown = ("backlog", "b_runs", "limit_runs", "p1_n", "baseline")
    report = Report("fairness", {k: getattr(args, k) for k in shown})
    db, level = args.database, args.loglevel
    if "fairness" in args.parts:
        with contextlib.ExitStack() as cleanup:
            before = cleanup.enter_context(exported(args.baseline or "main"))
            runs = {
                (limited, which): fairness_run(db, level, args.backlog, args.b_runs, limited, root)
                for limited in (True, False)
                for which, root in (("new", ROOT), ("old", before))
            }
        named = args.baseline or "main"
        for limited, what in ((True, "limit 4"), (False, "no limit, 4 slots")):
            (new_b, new_a), (old_b, old_a) = runs[(limited, "new")], runs[(limited, "old")]
            p50, p99 = percentile(new_b, 50), percentile(new_b, 99)
            report.add(Row(f"{what}: B submit→succeeded p50", p50, "s", percentile(old_b, 50), named))
            report.add(
                Row(
                    f"{what}: B submit→succeeded p99",
                    p99,
                    "s",
                    percentile(old_b, 99),
                    named,
                    "≤ 1 s",
                    p99 <= 1.0,
                )
            )
            if limited:
                report.add(
                    Row(
                        f"{what}: A throughput, 0.5 s runs",
                        new_a,
                        "runs/s",
                        old_a,
                        named,
                        "8/s",
                        new_a >= 7.8,
                    )
                )
            else:
                report.add(Row(f"{what}: A throughput, 0.5 s runs", new_a, "runs/s", old_a, named))
    if "limit" in args.parts:
        most, wall = limit_run(db, level, args.limit_runs)
        report.add(Row("limit 5: most running at once", most, "", target="5", met=most == 5))
        ideal = args.limit_runs / 5
        report.add(
            Row(
                f"limit 5: wall time of {args.limit_runs} × 1 s",
                wall,
                "s",
                target=f"≤ {ideal * 1.1:g} s (ideal {ideal:g})",
                met=wall <= ideal * 1.1,
            )
        )
    if "p1" in args.parts:
        with contextlib.ExitStack() as cleanup:
            baseline = cleanup.enter_context(exported(args.baseline)) if args.baseline else None
            new: list[float] = []
            old: list[float] = []
            for turn in range(args.p1_rounds):
                order = (
                    [("new", ROOT), ("old", baseline)] if turn == 0 else [("old", baseline), ("new", ROOT)]
                )
                for which, root in order:
                    if root is None:
                        continue
                    progress(f"P1 batch, {which} tree")
                    (new if which == "new" else old).append(p1_rate(db, level, args.p1_n, root))
            best_new = max(new)
            best_old = max(old) if old else None
            met = None if best_old is None else best_new >= 0.95 * best_old
            report.add(
                Row(
                    f"P1 batch, no limit set (best of {args.p1_rounds})",
                    best_new,
                    "executions/s",
                    best_old,
                    args.baseline,
                    "≥ 0.95× baseline",
                    met,
                )
            )
            report.notes.append(
                f"P1 runs, this tree: {[round(x) for x in new]}; {args.baseline}: {[round(x) for x in old]}"
            )
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
