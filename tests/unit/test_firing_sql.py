"""The statements that write a fired set (agentq/core/store/_bulk.py), run on an in-memory SQLite."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, create_engine, insert, select

from agentq.core.models import Base, Execution, Schedule
from agentq.core.store._bulk import advance, insert_fired
from agentq.core.store.executions import NewExecution, new_values

SLOT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Advanced:
    schedule_id: str
    read_next_run_at: datetime
    next_run_at: datetime
    next_fire_at: datetime
    last_run_at: datetime
    read_updated_at: datetime = SLOT


@pytest.fixture
def db() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        for i in range(3):
            connection.execute(
                insert(Schedule),
                {
                    "id": f"S{i}", "owner": "admin", "name": f"s{i}", "plugin": "echo", "command": "echo",
                    "params": {"i": i, "text": "50% 'quoted'"}, "queue": "q", "cron": "* * * * *",
                    "interval_s": None, "timezone": "UTC", "enabled": True, "missed_policy": "skip",
                    "overlap_policy": "allow", "priority": 5 + i, "timeout_s": None, "max_retries": None,
                    "jitter_s": None, "next_run_at": SLOT, "next_fire_at": SLOT, "last_run_at": None,
                    "created_at": SLOT, "updated_at": SLOT,
                },
            )  # fmt: skip
        yield connection
    engine.dispose()


def test_advance_sets_a_shared_value_once_and_is_a_compare_and_set_per_schedule(db: Connection) -> None:
    shared = [Advanced(f"S{i}", SLOT, SLOT + MINUTE, SLOT + MINUTE, SLOT) for i in range(2)]
    sql, params = advance(db.dialect, shared)

    assert "CASE" not in sql
    assert len(params) == 3 + 2 + 1
    assert db.exec_driver_sql(sql, tuple(params)).rowcount == 2
    # S0 was advanced since: only S2 (still due at SLOT) moves, each to its own next slot.
    apart = [
        Advanced(f"S{i}", SLOT, SLOT + i * MINUTE, SLOT + i * MINUTE + timedelta(seconds=i), SLOT)
        for i in (0, 2)
    ]
    sql, params = advance(db.dialect, apart)
    assert "CASE id" in sql
    assert db.exec_driver_sql(sql, tuple(params)).rowcount == 1
    rows = {s.id: s for s in db.execute(select(Schedule.__table__))}
    assert rows["S0"].next_run_at == rows["S1"].next_run_at == SLOT + MINUTE
    assert rows["S2"].next_run_at == SLOT + 2 * MINUTE
    assert rows["S2"].next_fire_at == SLOT + 2 * MINUTE + timedelta(seconds=2)


def test_insert_fired_takes_the_schedules_columns_and_ignores_a_slot_fired_before(db: Connection) -> None:
    now = SLOT + timedelta(seconds=1)

    def new(schedule: str, slot: datetime, timeout_s: float = 300) -> dict[str, object]:
        spec = NewExecution("echo", "echo", {}, "q", 5, timeout_s, 3, schedule_id=schedule, slot_at=slot)
        return new_values(spec, now, now + MINUTE)

    first = [new("S0", SLOT), new("S1", SLOT, 0.25), new("S1", SLOT + MINUTE)]
    sql, params = insert_fired(db.dialect, first)
    assert db.exec_driver_sql(sql, tuple(params)).rowcount == 3
    again = [new("S1", SLOT), new("S2", SLOT)]  # S1's slot went in above
    sql, params = insert_fired(db.dialect, again)
    assert db.exec_driver_sql(sql, tuple(params)).rowcount == 1

    rows = {r.id: r for r in db.execute(select(Execution.__table__))}
    assert set(rows) == {v["id"] for v in first} | {again[1]["id"]}
    s1 = rows[first[1]["id"]]
    assert (s1.schedule_id, s1.slot_at, s1.timeout_s, s1.priority) == ("S1", SLOT, 0.25, 6)
    assert s1.params == {"i": 1, "text": "50% 'quoted'"}  # from the schedule's row, as stored
    assert (s1.status, s1.attempts, s1.created_at, s1.lease_expires_at) == ("queued", 0, now, now + MINUTE)


def test_advance_unedited_leaves_a_schedule_edited_since_it_was_read(db: Connection) -> None:
    edited = SLOT + timedelta(seconds=5)
    db.exec_driver_sql(
        "UPDATE schedules SET updated_at = ? WHERE id = 'S1'", (edited.strftime("%Y-%m-%d %H:%M:%S.%f"),)
    )
    planned = [Advanced(f"S{i}", SLOT, SLOT + MINUTE, SLOT + MINUTE, SLOT) for i in range(3)]

    sql, params = advance(db.dialect, planned, unedited=True)

    assert db.exec_driver_sql(sql, tuple(params)).rowcount == 2
    rows = {s.id: s.next_run_at for s in db.execute(select(Schedule.__table__))}
    assert rows == {"S0": SLOT + MINUTE, "S1": SLOT, "S2": SLOT + MINUTE}
