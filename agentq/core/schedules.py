"""When schedules fire: the next slots of a cron (in its timezone) or interval schedule.

Cron runs in the schedule's IANA timezone with Debian cron's DST rules (cronsim): a
time that falls in the spring-forward gap runs once, at the end of the gap; a time that
the autumn fall-back repeats runs once, at its first occurrence.

A schedule with ``jitter_s`` fires each slot at a time of its own in
[slot, slot + jitter_s] (``jitter``); its execution's ``slot_at`` is the slot, its
``created_at`` the time it fired. As Temporal does, the jitter is capped at the time from
the slot to the next one (``fire_at``): a slot never fires after the next is due.
"""

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from agentq.core import queue, store
from agentq.core.models import Execution, Schedule, utcnow

# Enough for a per-minute cron missed for two months; past it, older slots are dropped.
_MAX_SCAN = 100_000


class InvalidTiming(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTiming(f"Unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin'.") from None


def validate_cron(expression: str) -> None:
    if len(expression.split()) != 5:
        raise InvalidTiming(
            f"Cron {expression!r} must have 5 fields: minute hour day-of-month month day-of-week."
        )
    try:
        CronSim(expression, datetime.now(UTC))
    except CronSimError as exc:
        raise InvalidTiming(f"Invalid cron {expression!r}: {exc}.") from None


def fire_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Slots strictly after ``after``, in UTC, forever."""
    if schedule.cron:
        local = after.astimezone(zone(schedule.timezone))
        for slot in CronSim(schedule.cron, local):
            yield slot.astimezone(UTC)
    else:
        assert schedule.interval_s
        step = timedelta(seconds=schedule.interval_s)
        slot = after + step
        while True:
            yield slot
            slot += step


def next_fire(schedule: Schedule, after: datetime) -> datetime:
    return next(fire_times(schedule, after))


@lru_cache(maxsize=4096)
def _next_cron(expression: str, timezone: str, after: datetime) -> datetime:
    # Thousands of schedules share a cron and a slot: the next one is computed once.
    return next(iter(CronSim(expression, after.astimezone(zone(timezone))))).astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def jitter(schedule_id: str, slot: datetime, jitter_s: float | None) -> timedelta:
    """How long after ``slot`` the schedule fires it: uniform over [0, ``jitter_s``].

    A hash of the schedule and the slot, not a random draw: every beat, a standby taking
    over included, picks the same time for a slot.
    """
    if not jitter_s:
        return timedelta(0)
    key = f"{schedule_id}@{(slot - _EPOCH) // _MICROSECOND}".encode()
    fraction = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) / 2**64  # [0, 1)
    return timedelta(microseconds=round(fraction * jitter_s * 1_000_000))


# The slots of a 5-field cron are a minute apart at least.
_CRON_GAP_MIN_S = 60.0


def jitter_bound_s(schedule: Schedule, slot: datetime) -> float | None:
    """The schedule's ``jitter_s`` for ``slot``, capped at the time until the slot after it.

    Temporal's schedules cap their jitter the same way, per slot: a jitter longer than an
    interval spreads the fires over the whole interval, and a cron's over the gap that
    follows each slot (a weekday cron's Friday slot over the weekend).
    """
    bound = schedule.jitter_s
    if not bound:
        return bound
    if schedule.interval_s:
        return min(bound, schedule.interval_s)
    if bound <= _CRON_GAP_MIN_S or not schedule.cron:
        return bound
    return min(bound, (_next_cron(schedule.cron, schedule.timezone, slot) - slot).total_seconds())


def fire_at(schedule: Schedule, slot: datetime) -> datetime:
    """When beat fires ``slot`` of ``schedule``: the slot plus its jitter, before the next slot."""
    return slot + jitter(schedule.id, slot, jitter_bound_s(schedule, slot))


def upcoming(schedule: Schedule, n: int = 5) -> list[datetime]:
    """The next ``n`` fire times of an enabled schedule, from its ``next_run_at``."""
    if not schedule.enabled or schedule.next_run_at is None:
        return []
    return [schedule.next_run_at, *islice(fire_times(schedule, schedule.next_run_at), n - 1)]


@dataclass(frozen=True)
class Plan:
    """What a due schedule fires now, and when it is due next."""

    slots: list[datetime]
    next_run_at: datetime
    missed: int  # due slots not fired (policy ``skip`` or past the catch-up bound)


def plan(schedule: Schedule, now: datetime, catch_up_max: int) -> Plan:
    """The slots from ``next_run_at`` up to ``now`` that fire, by the missed-run policy.

    ``skip`` fires once, for the latest due slot; ``catch_up`` fires each missed slot,
    the latest ``catch_up_max`` of them.
    """
    first = schedule.next_run_at
    assert first is not None
    assert first <= now
    keep = 1 if schedule.missed_policy == "skip" else catch_up_max
    # A slot is due once its fire time (the slot plus its jitter) has come; the first is
    # due by the time it was read, and the jitter ends before the next slot.
    if schedule.cron:
        following = _next_cron(schedule.cron, schedule.timezone, first)
        if fire_at(schedule, following) > now:  # on time: the one slot
            return Plan(slots=[first], next_run_at=following, missed=0)
        fired: deque[datetime] = deque(maxlen=keep)
        slots, slot, due = fire_times(schedule, first), first, 0
        while (due == 0 or fire_at(schedule, slot) <= now) and due < _MAX_SCAN:
            fired.append(slot)
            due += 1
            slot = next(slots)
        next_run_at = slot if due < _MAX_SCAN or slot > now else next_fire(schedule, now)
    else:
        # Arithmetic, not a scan: an interval of 1 s missed for a day is 86,400 slots.
        step = timedelta(seconds=schedule.interval_s or 0)
        due = int((now - first) / step) + 1
        if due > 1 and fire_at(schedule, first + step * (due - 1)) > now:
            due -= 1
        fired = deque(first + step * i for i in range(max(0, due - keep), due))
        next_run_at = first + step * due
    return Plan(slots=list(fired), next_run_at=next_run_at, missed=due - len(fired))


# -- firing (agentq/core/firing.py) ---------------------------------------------------------


def spec(schedule: Schedule, slot: datetime) -> store.NewExecution:
    """The execution of ``schedule`` for ``slot``."""
    return store.NewExecution.with_defaults(
        schedule.plugin,
        schedule.command,
        schedule.params,
        queue=schedule.queue,
        priority=schedule.priority,
        timeout_s=schedule.timeout_s,
        max_retries=schedule.max_retries,
        schedule_id=schedule.id,
        slot_at=slot,
        owner=schedule.owner,
        webhook_url=schedule.webhook_url,
        webhook_events=schedule.webhook_events,
        concurrency_key=schedule.concurrency_key,
    )


def run_now(schedule: Schedule) -> Execution:
    """Fire a schedule at once, outside its timing (``POST /v1/schedules/{id}/run``)."""
    (submitted,) = store.create_executions([spec(schedule, utcnow())])
    queue.publish([submitted.execution])
    return submitted.execution
