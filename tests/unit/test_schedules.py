"""Schedule timing: cron in a timezone across DST, intervals, missed-run planning."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.models import Schedule
from core.schedules import InvalidTiming, fire_times, plan, upcoming, validate_cron, zone


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
