"""Firing due schedules, a set at a time; for the active beat, planned ahead of their time.

``fire_due`` reads a set of due schedules under lock, plans each (``schedules.plan``) and
writes the set in one transaction (``store.fire_set``), then publishes its executions.
The active beat keeps a ``Firer``, which also reads and plans the schedules that fire
within a lookahead before they do, and builds their statements (``arm``): at their time a
set costs one UPDATE whose compare-and-set checks that each is as planned (its slot, and
no edit since: ``updated_at``) and one INSERT (``store.fire_planned``), with no work in
Python but binding the time it fires; its messages go out, their rows built, from a
thread of their own while the next set is written. What changed since it was planned is
fired by ``fire_due``.
"""

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from agentq.core import queue, store
from agentq.core.db import deadlocked
from agentq.core.models import Schedule, utcnow
from agentq.core.schedules import fire_at, plan, spec
from agentq.core.settings import settings

log = logging.getLogger("agentq.schedules")

# Firers that race (beats without the lock, a lock handed over mid-set) can deadlock on
# the executions' unique index, or lose part of a set read while another wrote it; the
# loser reads what is still due again, a few times at most.
_CONFLICTS_MOST = 5


@dataclass
class Fires:
    """What firing did."""

    executions: int = 0
    schedules: int = 0  # advanced to their next slot
    skipped: int = 0  # due slots not fired: missed-run policy, a live run (overlap skip), fired before
    lags_s: list[float] = field(default_factory=list)  # per execution: created_at - its fire time
    left_due: bool = False  # stopped at the time budget with schedules still due

    def add(self, other: "Fires") -> None:
        self.executions += other.executions
        self.schedules += other.schedules
        self.skipped += other.skipped
        self.lags_s += other.lags_s
        self.left_due = self.left_due or other.left_due


@dataclass(frozen=True)
class _Planned:
    firing: store.Firing
    fire_times: dict[tuple[str, datetime], datetime]  # of each slot it fires
    missed: int  # slots the missed-run policy drops
    due_at: datetime  # when it fires: the time it was planned for


def _plan(schedule: Schedule, now: datetime) -> _Planned:
    planned = plan(schedule, now, settings.catch_up_max)
    assert schedule.next_run_at is not None
    firing = store.Firing(
        schedule_id=schedule.id,
        read_next_run_at=schedule.next_run_at,
        read_updated_at=schedule.updated_at,
        next_run_at=planned.next_run_at,
        next_fire_at=fire_at(schedule, planned.next_run_at),
        last_run_at=planned.slots[-1],
        specs=[spec(schedule, slot) for slot in planned.slots],
        skip_if_active=schedule.overlap_policy == "skip",
    )
    fire_times = {(schedule.id, slot): fire_at(schedule, slot) for slot in planned.slots}
    return _Planned(firing, fire_times, planned.missed, now)


@dataclass
class _Armed:
    """A set planned ahead, by fire time, and its statements (None: built as it fires)."""

    planned: list[_Planned]
    prepared: store.Prepared | None


Publish = Callable[[store.Fired], object]


def _publish_now(fired: store.Fired) -> None:
    queue.publish(fired.executions)


def _published(planned: list[_Planned], fired: store.Fired, publish: Publish = _publish_now) -> Fires:
    """Publish what a set fired; its figures."""
    if fired.values:
        publish(fired)
    fire_times = {key: at for p in planned for key, at in p.fire_times.items()}
    slots = sum(len(p.firing.specs) + p.missed for p in planned)
    return Fires(
        executions=len(fired.values),
        schedules=len(planned),
        skipped=slots - len(fired.values),
        lags_s=[
            (v["created_at"] - fire_times[(v["schedule_id"], v["slot_at"])]).total_seconds()
            for v in fired.values
        ],
    )


def fire_due(now: datetime | None = None, *, budget_s: float = math.inf, batch: int = 0) -> Fires:
    """Fire every due schedule once per slot, ``batch`` (``AGENTQ_BEAT_BATCH_SIZE``) at a time.

    Each set is one transaction (``store.fire_set``) and one ``queue.publish``; sets go
    on until a read finds none due, or ``budget_s`` has passed. Due means at ``now``, or, when
    ``now`` is None, at the moment each set is read.
    """
    fires = _fire_due(now, budget_s, batch or settings.beat_batch_size)
    _log(fires)
    return fires


def _fire_due(now: datetime | None, budget_s: float, size: int, publish: Publish = _publish_now) -> Fires:
    started = time.monotonic()
    fires = Fires()
    conflicts = 0
    while True:
        at = utcnow() if now is None else now
        planned: dict[str, _Planned] = {}

        def planner(
            schedule: Schedule, at: datetime = at, planned: dict[str, _Planned] = planned
        ) -> store.Firing:
            planned[schedule.id] = _plan(schedule, at)
            return planned[schedule.id].firing

        try:
            firings, fired = store.fire_set(at, size, planner)
        except DBAPIError as exc:  # rolled back: the set, read again, is what is still due
            if not deadlocked(exc) or (conflicts := conflicts + 1) > _CONFLICTS_MOST:
                raise
            continue
        done = list(planned.values())
        if fired is None:  # the compare-and-set missed: one by one, each winning or losing alone
            fired, done = store.Fired(), []
            for firing in firings:
                alone = store.fire(firing)
                if alone is not None:
                    done.append(planned[firing.schedule_id])
                    fired.values += alone.values
        fires.add(_published(done, fired, publish))
        if len(done) < len(firings) and (conflicts := conflicts + 1) <= _CONFLICTS_MOST:
            continue  # another firer won some of the set: what is still due is read again
        # A set that was not full does not mean that nothing else is due: racing firers'
        # reads skip what another holds, and each may skip rows that none of them fires
        # (MariaDB). Sets go on until a read finds nothing.
        if not firings or not done:
            return fires
        if time.monotonic() - started >= budget_s:
            fires.left_due = True
            return fires


def _log(fires: Fires) -> None:
    if fires.skipped:
        log.info(
            "fired %d executions for %d schedules; %d due slots skipped (missed-run or overlap policy)",
            fires.executions,
            fires.schedules,
            fires.skipped,
        )


class Firer:
    """The active beat's firing: ``fire_due``, and the schedules about to fire planned ahead.

    ``arm`` plans the next set of schedules that fire within ``lookahead_s``, by (fire time,
    id) from where the last set ended, and builds its statements; the beat calls it between
    ticks until it has caught up, so that planning thousands never holds up a tick for long.
    """

    def __init__(self, lookahead_s: float, most: int = 0) -> None:
        self.lookahead = timedelta(seconds=lookahead_s)
        self.most = most or 20 * settings.beat_batch_size  # planned ahead at once
        self._armed: deque[_Armed] = deque()  # by fire time
        self._last: tuple[datetime, str] | None = None  # the (fire time, id) last planned
        # Sets are published from a thread of their own, in order, while the next is written.
        self._publisher = ThreadPoolExecutor(1, thread_name_prefix="agentq-beat-publish")

    def _publish(self, fired: store.Fired) -> None:
        self._publisher.submit(_publish_now, fired)

    def close(self) -> None:
        """Wait for what is being published."""
        self._publisher.shutdown(wait=True)

    @property
    def armed(self) -> int:
        return sum(len(a.planned) for a in self._armed)

    @property
    def next_due(self) -> datetime | None:
        """When the next set planned ahead fires."""
        return self._armed[0].planned[0].due_at if self._armed else None

    def arm(self, now: datetime) -> bool:
        """Plan the next set that fires within the lookahead; whether there may be more."""
        if self.armed >= self.most:
            return False
        size = settings.beat_batch_size
        found = store.upcoming(now + self.lookahead, self._last, size)
        if not found:
            return False
        planned = []
        for schedule in found:
            assert schedule.next_fire_at is not None
            planned.append(_plan(schedule, schedule.next_fire_at))
        self._last = (planned[-1].due_at, planned[-1].firing.schedule_id)
        # A set that all fires at one time (a shared minute) is fired as built here.
        at = planned[0].due_at
        shared = all(p.due_at == at for p in planned)
        prepared = store.prepare([p.firing for p in planned], at) if shared else None
        self._armed.append(_Armed(planned, prepared))
        return len(found) == size

    def disarm(self) -> None:
        self._armed.clear()
        self._last = None

    def _next_due(self, now: datetime) -> tuple[list[_Planned], store.Prepared | None]:
        """The next set planned ahead that is due at ``now``: all of the first, or its due part."""
        head = self._armed[0]
        if head.planned[-1].due_at <= now:
            self._armed.popleft()
            return head.planned, head.prepared
        due = [p for p in head.planned if p.due_at <= now]
        head.planned, head.prepared = head.planned[len(due) :], None
        return due, None

    def fire(self, budget_s: float = math.inf, *, sweep: bool = True) -> Fires:
        """Fire what was planned ahead and is due, then (``sweep``) whatever else is due."""
        size = settings.beat_batch_size
        started = time.monotonic()
        fires = Fires()
        while self._armed and self._armed[0].planned[0].due_at <= (now := utcnow()):
            batch, prepared = self._next_due(now)
            kept, fired = store.fire_planned([p.firing for p in batch], prepared)
            # Those not kept changed since they were planned: fire_due fires them as they are.
            ids = {f.schedule_id for f in kept}
            fires.add(_published([p for p in batch if p.firing.schedule_id in ids], fired, self._publish))
            if time.monotonic() - started >= budget_s:
                fires.left_due = True
                break
        else:
            if sweep:
                fires.add(_fire_due(None, budget_s - (time.monotonic() - started), size, self._publish))
        _log(fires)
        return fires
