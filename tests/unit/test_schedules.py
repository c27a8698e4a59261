"""Schedule timing: cron in a timezone across DST, intervals, missed-run planning, jitter."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agentq.core.models import Schedule
from agentq.core.schedules import (
    InvalidTiming,
    fire_at,
    fire_times,
    jitter,
    jitter_bound_s,
    plan,
    upcoming,
    validate_cron,
    zone,
)


def cron(expression: str, tz: str = "UTC", **fields: object) -> Schedule:
    return Schedule(
        cron=expression, interval_s=None, timezone=tz, enabled=True, missed_policy="skip", **fields
    )


def local_days(schedule: Schedule, start: datetime, n: int) -> list[datetime]:
    times = fire_times(schedule, start)
    return [next(times).astimezone(zone(schedule.timezone)) for _ in range(n)]


@pytest.mark.parametrize(
    ("tz", "spring", "autumn"),
    [("Europe/Berlin", (2026, 3, 29), (2026, 10, 25)), ("America/New_York", (2026, 3, 8), (2026, 11, 1))],
)
def test_daily_cron_in_the_dst_hour_runs_once_every_day(
    tz: str, spring: tuple[int, int, int], autumn: tuple[int, int, int]
) -> None:
    schedule = cron("30 2 * * *", tz)
    for day in (spring, autumn):
        start = datetime(*day, tzinfo=ZoneInfo(tz)) - timedelta(days=2)

        fires = local_days(schedule, start, 5)

        assert [f.date() for f in fires] == [(start + timedelta(days=i)).date() for i in range(5)]
        assert len({f.astimezone(UTC) for f in fires}) == 5
    # Spring forward: 02:30 does not exist that day; it runs at the end of the gap.
    spring_fire = next(
        f
        for f in local_days(schedule, datetime(*spring, tzinfo=ZoneInfo(tz)) - timedelta(days=1), 2)
        if f.day == spring[2]
    )
    assert (spring_fire.hour, spring_fire.minute) == (3, 0)
    # Fall back: 02:30 happens twice; it runs at the first one only.
    autumn_fire = next(
        f
        for f in local_days(schedule, datetime(*autumn, tzinfo=ZoneInfo(tz)) - timedelta(days=1), 2)
        if f.day == autumn[2]
    )
    assert (autumn_fire.hour, autumn_fire.minute, autumn_fire.fold) == (2, 30, 0)


def test_cron_outside_the_dst_hour_keeps_its_local_time() -> None:
    schedule = cron("0 9 * * *", "Europe/Berlin")

    fires = local_days(schedule, datetime(2026, 3, 27, tzinfo=UTC), 4)

    assert [(f.day, f.hour) for f in fires] == [(27, 9), (28, 9), (29, 9), (30, 9)]
    assert [f.utcoffset() for f in fires] == [timedelta(hours=1)] * 2 + [timedelta(hours=2)] * 2


def test_hourly_cron_skips_no_real_hour_in_spring() -> None:
    schedule = cron("15 * * * *", "America/New_York")
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 local, the day clocks jump 02:00 -> 03:00

    fires = [f.astimezone(UTC) for f in local_days(schedule, start, 5)]

    assert fires == [start + timedelta(minutes=15) + timedelta(hours=i) for i in range(5)]


@pytest.mark.parametrize("expression", ["61 * * * *", "* * * *", "* * * * * *", "a b c d e", "0 25 * * *"])
def test_invalid_cron_is_refused(expression: str) -> None:
    with pytest.raises(InvalidTiming):
        validate_cron(expression)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(InvalidTiming, match="IANA"):
        zone("Mars/Olympus")


def interval(seconds: float, policy: str, next_run_at: datetime) -> Schedule:
    return Schedule(
        cron=None,
        interval_s=seconds,
        timezone="UTC",
        enabled=True,
        missed_policy=policy,
        next_run_at=next_run_at,
    )


def test_plan_skip_fires_once_for_the_latest_missed_slot() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)

    planned = plan(interval(60, "skip", first), first + timedelta(minutes=10, seconds=5), catch_up_max=10)

    assert planned.slots == [first + timedelta(minutes=10)]
    assert planned.next_run_at == first + timedelta(minutes=11)
    assert planned.missed == 10


def test_plan_catch_up_fires_each_missed_slot_up_to_the_bound() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)

    small = plan(interval(60, "catch_up", first), first + timedelta(minutes=2), catch_up_max=10)
    large = plan(interval(1, "catch_up", first), first + timedelta(days=1), catch_up_max=10)

    assert small.slots == [first, first + timedelta(minutes=1), first + timedelta(minutes=2)]
    assert len(large.slots) == 10
    assert large.slots[-1] == first + timedelta(days=1)
    assert large.next_run_at == first + timedelta(days=1, seconds=1)


@pytest.mark.parametrize("policy", ["skip", "catch_up"])
def test_plan_leaves_a_slot_whose_jittered_time_has_not_come(policy: str) -> None:
    # A late firer is past the next slot but not past that slot's jittered fire time:
    # the next slot fires later, at its own time, not early with this one.
    first = datetime(2026, 1, 1, tzinfo=UTC)
    schedule = interval(2, policy, first)
    schedule.id, schedule.jitter_s = "s-jittered", 1.5
    following = first + timedelta(seconds=2)
    assert fire_at(schedule, following) > following  # this schedule's next slot is jittered

    now = following + (fire_at(schedule, following) - following) / 2
    planned = plan(schedule, now, catch_up_max=10)
    later = plan(schedule, fire_at(schedule, following), catch_up_max=10)

    assert planned.slots == [first]
    assert planned.next_run_at == following
    assert planned.missed == 0
    assert later.slots == ([following] if policy == "skip" else [first, following])


def test_plan_of_a_jittered_cron_leaves_the_next_slot_to_its_time() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    schedule = cron("* * * * *", next_run_at=first, jitter_s=30.0)
    schedule.id = "c-jittered"
    following = first + timedelta(minutes=1)
    assert fire_at(schedule, following) > following

    planned = plan(schedule, following, catch_up_max=10)

    assert planned.slots == [first]
    assert planned.next_run_at == following


def test_plan_cron_catch_up_and_on_time() -> None:
    first = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    schedule = cron("*/5 * * * *", next_run_at=first)
    schedule.missed_policy = "catch_up"

    on_time = plan(schedule, first, catch_up_max=3)
    late = plan(schedule, first + timedelta(minutes=12), catch_up_max=10)

    assert on_time.slots == [first]
    assert on_time.next_run_at == first + timedelta(minutes=5)
    assert late.slots == [first + timedelta(minutes=m) for m in (0, 5, 10)]
    assert late.next_run_at == first + timedelta(minutes=15)


def test_upcoming_lists_five_from_next_run_and_none_when_disabled() -> None:
    first = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    schedule = cron("0 8 * * 1-5", next_run_at=first)  # weekdays; 2026-01-01 is a Thursday

    days = [t.day for t in upcoming(schedule, 5)]
    schedule.enabled = False

    assert days == [1, 2, 5, 6, 7]
    assert upcoming(schedule, 5) == []


# -- jitter ----------------------------------------------------------------------------

SCHEDULE_ID = "01KAV8W3Q5M2X9R7T4B6N8P0CD"


def test_jitter_is_the_same_for_a_schedule_and_slot_whoever_computes_it() -> None:
    slot = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

    first = jitter(SCHEDULE_ID, slot, 60)

    assert jitter(SCHEDULE_ID, slot, 60) == first
    assert (
        jitter(SCHEDULE_ID, slot.astimezone(ZoneInfo("Asia/Tokyo")), 60) == first
    )  # the instant, not its zone
    # Not Python's per-process hash() nor a random draw: a standby beat, another process
    # with another hash seed, picks this very time.
    code = (
        "from datetime import UTC, datetime; from agentq.core.schedules import jitter; "
        f"print(jitter({SCHEDULE_ID!r}, datetime(2026, 1, 1, 9, 0, tzinfo=UTC), 60).total_seconds())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(other.stdout) == first.total_seconds()
    assert jitter("01KAV8W3Q5M2X9R7T4B6N8P0CE", slot, 60) != first
    assert jitter(SCHEDULE_ID, slot + timedelta(minutes=1), 60) != first


def test_jitter_spreads_fires_uniformly_within_its_bound() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = [jitter(SCHEDULE_ID, start + timedelta(minutes=i), 30).total_seconds() for i in range(10_000)]

    assert all(0 <= o <= 30 for o in offsets)
    deciles = [sum(1 for o in offsets if 3 * d <= o < 3 * (d + 1)) for d in range(10)]
    assert all(850 <= n <= 1150 for n in deciles), deciles  # 1,000 each, give or take


def test_no_jitter_fires_at_the_slot_and_next_fire_times_are_the_slots() -> None:
    slot = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    schedule = cron("0 * * * *", next_run_at=slot, id=SCHEDULE_ID, jitter_s=None)

    assert fire_at(schedule, slot) == slot
    assert jitter(SCHEDULE_ID, slot, 0) == timedelta(0)
    schedule.jitter_s = 600
    assert slot < fire_at(schedule, slot) <= slot + timedelta(minutes=10)
    assert upcoming(schedule, 3) == [slot + timedelta(hours=h) for h in range(3)]


def test_a_jitter_longer_than_an_interval_spreads_fires_over_the_interval() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    schedule = interval(60, "skip", start)
    schedule.id, schedule.jitter_s = SCHEDULE_ID, 600

    offsets = [
        (fire_at(schedule, start + timedelta(minutes=i)) - start).total_seconds() - 60 * i
        for i in range(2000)
    ]

    assert jitter_bound_s(schedule, start) == 60
    assert all(0 <= o < 60 for o in offsets)  # each slot before the next is due
    assert max(offsets) > 55  # over the whole interval, not a part of it


def test_a_cron_jitter_is_capped_at_the_gap_after_each_slot() -> None:
    weekdays = cron("0 9 * * 1-5", "Europe/Berlin", id=SCHEDULE_ID, jitter_s=2 * 86_400)
    thursday = datetime(2026, 1, 8, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    friday = thursday + timedelta(days=1)

    assert jitter_bound_s(weekdays, thursday) == 86_400  # Friday's slot is a day after
    assert jitter_bound_s(weekdays, friday) == 2 * 86_400  # Monday's is three: the jitter itself
    assert thursday <= fire_at(weekdays, thursday) < friday
    every_minute = cron("* * * * *", id=SCHEDULE_ID, jitter_s=90)
    assert jitter_bound_s(every_minute, thursday) == 60
    assert jitter_bound_s(cron("* * * * *", id=SCHEDULE_ID, jitter_s=45), thursday) == 45


@pytest.mark.parametrize(
    ("expression", "tz", "first"),
    [
        ("* * * * *", "UTC", datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 1, 30, tzinfo=UTC)),  # next: in the gap
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 0, 30, tzinfo=UTC)),  # next: repeated hour
        ("15 * * * *", "America/New_York", datetime(2026, 3, 8, 6, 15, tzinfo=UTC)),
    ],
)
def test_plan_of_a_slot_on_time_is_that_slot_then_the_next(expression: str, tz: str, first: datetime) -> None:
    schedule = cron(expression, tz, next_run_at=first)

    planned = plan(schedule, first + timedelta(seconds=1), catch_up_max=10)

    assert planned.slots == [first]
    assert planned.next_run_at == next(fire_times(schedule, first))
    assert planned.missed == 0
