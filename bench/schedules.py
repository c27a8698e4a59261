"""Schedules at scale: N periodic agents, two beats, one worker; a baseline in the same run.

    python -m bench.schedules [--n 1000 10000] [--scenarios cron interval] [--baseline main]

For each N and scenario, the baseline (``--baseline``: a git revision, exported with ``git
archive``; ``''`` for none) and this tree run in turn, which one first alternating from
case to case, each on a fresh database with the API (gunicorn, 2 processes), one worker
(``echo``; the per-key rate limit off) and two beats (one active, one standing by):

- ``cron``: N schedules ``* * * * *`` are created through the API (concurrent POSTs), then
  all made due at the next minute M, at least ``--lead-s`` ahead, by setting their next slot
  in the database (so that a minute passing while they are created fires none early). The
  beats start; measured: the executions of slot M, fired by M + 58 s.
- ``interval``: N schedules every ``--interval-s`` seconds, created the same way, their next
  slots then spread evenly over one interval; measured: the slots in the ``--window-s``
  seconds that follow, fired by ``--grace-s`` after the window.
- ``jitter`` (this tree only): as ``cron``, each with ``jitter_s`` ``--jitter-s``; the lag
  is then from each one's jittered fire time, and the figure of interest is the most
  executions created in any one second.

Figures of each: the slots fired of those due, fires per second (those fired, over the time
from the first slot to the last fire), the fire lag (``created_at - slot_at``) p50, p99 and
max, for a shared minute when the last of them was in the database (committed: seen by a
count polled every ``POLL_S``; ``created_at`` is when its set began to be written),
duplicate (schedule, slot) pairs, and the CPU of both beat processes (user + system, from
when one leads to the end) per fire.
"""

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy.engine import make_url

from agentq.core.leadership import LOCK_KEY
from agentq.core.schedules import jitter
from bench.harness import (
    MYSQL_URL,
    REDIS_URL,
    RESULTS_DIR,
    ROOT,
    Report,
    Row,
    Stack,
    percentile,
    progress,
    stack,
    wait_until,
)
from bench.throughput import cpu_s

TARGET_P99_S = 2.0
POLL_S = 0.2
CREATE_CONCURRENCY = 32
# The beat lock is one key per Redis db: a beat of another run on it would keep ours standing by.
LOCK_WAIT_S = 30


@dataclass
class Outcome:
    due: int
    fired: int
    lags_s: list[float]
    duplicates: int
    span_s: float  # the first slot to the last fire
    beat_cpu_s: float
    peak_per_s: int  # the most executions created in one second
    all_in_s: float | None = None  # a shared minute: from the slot until all were committed

    @property
    def per_s(self) -> float:
        return self.fired / self.span_s if self.span_s > 0 else 0.0


@contextlib.contextmanager
def exported(revision: str) -> Iterator[Path]:
    """The tree of ``revision`` in a temporary directory (``git archive``)."""
    where = Path(tempfile.mkdtemp(prefix="agentq-baseline-"))
    try:
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


async def create_schedules(st: Stack, n: int, timing: dict[str, Any]) -> None:
    """N schedules through POST /v1/schedules, ``CREATE_CONCURRENCY`` at a time."""
    async with st.async_client(CREATE_CONCURRENCY, timeout_s=120) as client:
        todo = iter(range(n))

        async def creator() -> None:
            for i in todo:
                body = {"name": f"bench-{i}", "plugin": "echo", "command": "echo", "params": {"i": i}}
                response = await client.post("/v1/schedules", json=body | timing)
                response.raise_for_status()
                if (i + 1) % 2000 == 0:
                    progress(f"  {i + 1:,} schedules created")

        await asyncio.gather(*(creator() for _ in range(CREATE_CONCURRENCY)))


def sql(st: Stack, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with st.db.cursor() as cur:
        cur.execute(statement, args)
        return list(cur.fetchall())


def has_fire_time(st: Stack) -> bool:
    return bool(sql(st, "SHOW COLUMNS FROM schedules LIKE 'next_fire_at'"))


def make_due(st: Stack, scenario: str, start: datetime, args: Any) -> None:
    """Every schedule's next slot: ``start`` (cron), or spread evenly over one interval from it."""
    naive = start.astimezone(UTC).replace(tzinfo=None)
    interval_s = args.interval_s
    if scenario == "jitter":  # each fires at its slot plus its jitter, as the API would set it
        ids = [row[0] for row in sql(st, "SELECT id FROM schedules")]
        fire = [(start + jitter(i, start, args.jitter_s)).replace(tzinfo=None) for i in ids]
        with st.db.cursor() as cur:
            cur.executemany(
                "UPDATE schedules SET next_run_at = %s, next_fire_at = %s WHERE id = %s",
                [(naive, at, i) for i, at in zip(ids, fire, strict=True)],
            )
        return
    if scenario == "cron":
        sql(st, "UPDATE schedules SET next_run_at = %s", naive)
    else:
        (count,) = sql(st, "SELECT COUNT(*) FROM schedules")[0]
        step_us = int(interval_s * 1_000_000 / count)
        sql(st, "SET @i := -1")
        sql(
            st,
            "UPDATE schedules SET next_run_at = TIMESTAMPADD(MICROSECOND, (@i := @i + 1) * %s, %s) ORDER BY id",
            step_us,
            naive,
        )
    if has_fire_time(st):  # this tree: no jitter, each fires at its slot
        sql(st, "UPDATE schedules SET next_fire_at = next_run_at")


def start_beats(st: Stack) -> list[Any]:
    lock = redis.Redis.from_url(REDIS_URL)
    wait_until(
        lambda: not lock.exists(LOCK_KEY), LOCK_WAIT_S, "no other beat holding the lock on this Redis db"
    )
    beats = [st.start_beat("beat-a"), st.start_beat("beat-b")]
    wait_until(lambda: bool(lock.exists(LOCK_KEY)), 60, "a beat to lead", 0.1)
    return beats


def outcome(
    st: Stack, first: datetime, end: datetime, due: int, beat_cpu_s: float, jitter_s: float = 0
) -> Outcome:
    """What fired for the slots in [first, end); lags from each slot's fire time."""
    rows = sql(
        st,
        "SELECT schedule_id, slot_at, created_at FROM executions WHERE slot_at >= %s AND slot_at < %s",
        first.replace(tzinfo=None),
        end.replace(tzinfo=None),
    )
    lags = [
        (created - slot - jitter(sid, slot.replace(tzinfo=UTC), jitter_s)).total_seconds()
        for sid, slot, created in rows
    ]
    per_second = Counter(created.replace(microsecond=0) for _, _, created in rows)
    (duplicates,) = sql(
        st,
        "SELECT COUNT(*) FROM (SELECT 1 FROM executions WHERE schedule_id IS NOT NULL"
        " GROUP BY schedule_id, slot_at HAVING COUNT(*) > 1) AS twice",
    )[0]
    last = max((created for _, _, created in rows), default=first.replace(tzinfo=None))
    span = (last - first.replace(tzinfo=None)).total_seconds()
    peak = max(per_second.values(), default=0)
    return Outcome(due, len(rows), lags, int(duplicates), span, beat_cpu_s, peak)


def fired_count(st: Stack, first: datetime, end: datetime) -> int:
    naive = first.replace(tzinfo=None), end.replace(tzinfo=None)
    return int(sql(st, "SELECT COUNT(*) FROM executions WHERE slot_at >= %s AND slot_at < %s", *naive)[0][0])


def sleep_until(at: datetime) -> None:
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))


def run_case(root: Path, label: str, n: int, scenario: str, args: Any) -> Outcome:
    database = f"{args.database}_{scenario}_{label}"
    with stack(database, args.loglevel, root=root) as st:
        st.start_api()
        st.start_worker()
        st.wait_for_plugins("echo")
        timing: dict[str, Any] = {
            "cron": {"cron": "* * * * *"},
            "interval": {"interval_s": args.interval_s},
            "jitter": {"cron": "* * * * *", "jitter_s": args.jitter_s},
        }[scenario]
        progress(f"[{label}] creating {n:,} {scenario} schedules through the API")
        started = time.monotonic()
        asyncio.run(create_schedules(st, n, timing))
        progress(f"  created in {time.monotonic() - started:.1f}s")
        soonest = datetime.now(UTC) + timedelta(seconds=args.lead_s)
        if scenario in ("cron", "jitter"):  # the first minute from the soonest on
            first = soonest.replace(second=0, microsecond=0)
            first += timedelta(minutes=1) if first < soonest else timedelta(0)
            end, deadline, due = first + timedelta(seconds=1), first + timedelta(seconds=58), n
        else:
            first = soonest
            end = first + timedelta(seconds=args.window_s)
            deadline = end + timedelta(seconds=args.grace_s)
            due = round(n * args.window_s / args.interval_s)
        make_due(st, scenario, first, args)
        beats = start_beats(st)
        cpu_before = sum(cpu_s(b.pid) for b in beats)
        progress(f"[{label}] {due:,} slots due from {first:%H:%M:%S} to {end:%H:%M:%S}")
        sleep_until(first)
        all_in_s = None
        while (now := datetime.now(UTC)) < deadline:
            if fired_count(st, first, end) >= due:
                all_in_s = all_in_s or (now - first).total_seconds()
                if now >= end:
                    break
            st._check_alive()
            time.sleep(POLL_S if scenario == "cron" else 0.5)
        beat_cpu = sum(cpu_s(b.pid) for b in beats) - cpu_before
        done = outcome(st, first, end, due, beat_cpu, args.jitter_s if scenario == "jitter" else 0)
        done.all_in_s = all_in_s if scenario == "cron" else None
        return done


def rows_of(
    report: Report, title: str, new: Outcome, old: Outcome | None, baseline: str, target: bool
) -> None:
    """The figures of one case, this tree's beside the baseline's; fire lags in ms."""

    def p(o: Outcome, q: float) -> float:
        return 1000 * percentile(o.lags_s, q)

    def add(figure: str, value: float, unit: str, old_value: float | None, **kw: Any) -> None:
        report.add(Row(figure, value, unit, old_value if old else None, baseline if old else "", **kw))

    add(f"{title}: slots fired", new.fired, f"of {new.due:,}", old.fired if old else None,
        target="all", met=new.fired == new.due)  # fmt: skip
    add("  fires per second", new.per_s, "/s", old.per_s if old else None)
    add("  fire lag p50", p(new, 50), "ms", p(old, 50) if old else None)
    p99 = p(new, 99)
    add("  fire lag p99", p99, "ms", p(old, 99) if old else None,
        target=f"≤ {TARGET_P99_S:g} s" if target else "", met=p99 <= 1000 * TARGET_P99_S if target else None)  # fmt: skip
    add("  fire lag max", p(new, 100), "ms", p(old, 100) if old else None)
    if new.all_in_s is not None:
        old_in = old.all_in_s if old and old.all_in_s is not None else None
        add("  all committed by (after the slot)", 1000 * new.all_in_s, "ms",
            1000 * old_in if old_in is not None else None)  # fmt: skip
    add("  duplicate (schedule, slot)", new.duplicates, "", old.duplicates if old else None,
        target="0", met=new.duplicates == 0)  # fmt: skip
    add("  most executions created in one second", new.peak_per_s, "", old.peak_per_s if old else None)
    cpu = 1000 * new.beat_cpu_s / new.fired if new.fired else 0
    old_cpu = 1000 * old.beat_cpu_s / old.fired if old and old.fired else None
    add("  beat CPU per fire (both beats)", cpu, "ms", old_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, nargs="+", default=[1000, 10_000], help="schedules (default 1000 10000)"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument(
        "--database",
        default=make_url(MYSQL_URL).database or "agentq_bench",
        help="prefix of the databases made",
    )
    parser.add_argument("--loglevel", default="WARNING", help="log level of the processes started")
    parser.add_argument(
        "--scenarios", nargs="+", default=["cron", "interval"], choices=["cron", "interval", "jitter"]
    )
    parser.add_argument("--baseline", default="main", help="git revision to compare with ('' for none)")
    parser.add_argument("--interval-s", type=float, default=30, help="the interval schedules' (default 30)")
    parser.add_argument("--window-s", type=float, default=60, help="interval slots measured (default 60)")
    parser.add_argument(
        "--grace-s", type=float, default=20, help="after the window, to fire them (default 20)"
    )
    parser.add_argument("--jitter-s", type=float, default=30, help="the jitter scenario's (default 30)")
    parser.add_argument("--lead-s", type=float, default=8, help="from created to the first slot (default 8)")
    args = parser.parse_args()
    params = {k: v for k, v in vars(args).items() if k not in ("results_dir", "loglevel")}
    report = Report("schedules", params)
    with contextlib.ExitStack() as cleanup:
        baseline = cleanup.enter_context(exported(args.baseline)) if args.baseline else None
        case = 0
        for n in args.n:
            for scenario in args.scenarios:
                # The baseline has no jitter_s: the jitter scenario runs on this tree alone.
                runs = [("new", ROOT)] + ([("old", baseline)] if baseline and scenario != "jitter" else [])
                if case % 2:
                    runs.reverse()
                case += 1
                done = {label: run_case(root, label, n, scenario, args) for label, root in runs}
                title = (
                    f"{scenario} × {n:,} "
                    + {
                        "cron": "(* * * * *)",
                        "interval": f"every {args.interval_s:g}s",
                        "jitter": f"(* * * * *, jitter {args.jitter_s:g}s; lag from the jittered time)",
                    }[scenario]
                )
                rows_of(report, title, done["new"], done.get("old"), args.baseline, target=n >= 10_000)
    if baseline:
        report.notes.append(f"baseline: {args.baseline} (git archive), run in alternation with this tree")
    report.notes.append(
        "the slots are set in the database after the schedules are created through the API: "
        "cron ones all to one minute (jittered ones: each its own time after it), "
        "interval ones spread evenly over one interval"
    )
    report.notes.append("API, worker, two beats, MariaDB, Redis and this process share the machine's cores")
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
