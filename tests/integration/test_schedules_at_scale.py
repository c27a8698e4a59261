"""Many schedules due at once, jitter, and beat's health: real beats, MariaDB, Redis, SQLite."""

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, select, update

from agentq.core import db, store
from agentq.core.db import session_scope
from agentq.core.firing import Firer, Fires, fire_due
from agentq.core.leadership import LOCK_KEY
from agentq.core.models import Execution, Schedule, utcnow
from agentq.core.schedules import jitter
from agentq.core.settings import settings
from tests.conftest import REDIS_URL
from tests.integration.conftest import Stack
from tests.integration.processes import ROOT, Proc, free_port, wait_until

ACTIVE = "this beat is now the active one"


@pytest.fixture(autouse=True)
def _removes_its_schedules(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test on the stack that fails leaves no schedule due for the next to fire."""
    started = utcnow() - timedelta(seconds=1)
    yield
    if "stack" not in request.fixturenames:
        return
    with session_scope() as session:
        session.execute(delete(Schedule).where(Schedule.created_at >= started))


@pytest.fixture
def beats(stack: Stack) -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for beat in started:
        stack.stop(beat)


def start_beat(stack: Stack, beats: list[Proc], name: str, **env: str) -> Proc:
    beat = stack.start_beat(f"{name}-{time.time_ns()}", **env)
    beats.append(beat)
    return beat


def create(stack: Stack, **fields: Any) -> dict[str, Any]:
    body = {"name": f"s-{time.time_ns()}", "plugin": "echo", "command": "echo", "params": {}} | fields
    response = stack.client.post("/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def create_many(stack: Stack, n: int, **fields: Any) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        return [s["id"] for s in pool.map(lambda _: create(stack, **fields), range(n))]


def due_at(ids: list[str], at: datetime) -> None:
    """Make every schedule of ``ids`` due at ``at`` (a slot they share)."""
    with session_scope() as session:
        session.execute(update(Schedule).where(Schedule.id.in_(ids)).values(next_run_at=at, next_fire_at=at))


def fired_slots(ids: list[str]) -> list[tuple[str, datetime]]:
    """(schedule, slot) of each execution the schedules of ``ids`` fired."""
    with session_scope() as session:
        query = select(Execution.schedule_id, Execution.slot_at).where(Execution.schedule_id.in_(ids))
        return [(str(sid), slot) for sid, slot in session.execute(query).all() if slot is not None]


def remove(ids: list[str]) -> None:
    with session_scope() as session:
        session.execute(delete(Schedule).where(Schedule.id.in_(ids)))


def test_two_beats_fire_500_schedules_due_at_once_each_exactly_once(stack: Stack, beats: list[Proc]) -> None:
    first, second = start_beat(stack, beats, "beat-a"), start_beat(stack, beats, "beat-b")
    wait_until(lambda: ACTIVE in first.log() + second.log(), 30, "a beat to lead")
    ids = create_many(stack, 500, cron="* * * * *", params={"set": 500})
    slot = utcnow() + timedelta(seconds=2)

    due_at(ids, slot)
    wait_until(lambda: sum(1 for _, at in fired_slots(ids) if at == slot) >= 500, 60, "500 fires", 0.5)
    time.sleep(1)  # what a second fire of the slot would take
    remove(ids)
    fired = fired_slots(ids)

    assert {sid for sid, at in fired if at == slot} == set(ids)
    assert max(Counter(fired).values()) == 1  # every (schedule, slot) once, this minute's too
    assert "firing database schedules failed" not in first.log() + second.log()


def race(n_threads: int) -> list[Fires]:
    """``fire_due`` from threads released together, with no lock at all."""
    barrier = threading.Barrier(n_threads)
    results: list[Fires] = []

    def firer() -> None:
        barrier.wait()
        results.append(fire_due(utcnow()))

    threads = [threading.Thread(target=firer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == n_threads
    return results


def test_firers_racing_without_the_lock_fire_each_of_a_set_once(stack: Stack) -> None:
    ids = create_many(stack, 500, interval_s=3600, params={"race": "mariadb"})
    due_at(ids, utcnow())

    results = race(4)
    fired = fired_slots(ids)
    unfired = set(ids) - {sid for sid, _ in fired}
    with session_scope() as session:  # what became of those not fired, should any be
        query = select(Schedule.next_run_at, Schedule.updated_at).where(Schedule.id.in_(unfired))
        left = Counter(session.execute(query).all())
    remove(ids)

    assert not unfired, (len(unfired), left, [(r.executions, r.schedules, r.skipped) for r in results])
    # Each firer counts only what it fired: together, each schedule once.
    assert sum(r.executions for r in results) == 500
    assert sum(r.schedules for r in results) == 500


def test_a_set_planned_ahead_fires_each_once_and_as_it_is_when_it_fires(stack: Stack) -> None:
    ids = create_many(stack, 50, interval_s=3600, params={"v": "planned"})
    at = utcnow() + timedelta(seconds=3)
    due_at(ids, at)
    firer = Firer(lookahead_s=5)
    while firer.arm(utcnow()):
        pass
    planned = firer.armed
    edited, disabled = ids[0], ids[1]  # after they were planned
    assert stack.client.patch(f"/v1/schedules/{edited}", json={"params": {"v": "edited"}}).status_code == 200
    assert stack.client.patch(f"/v1/schedules/{disabled}", json={"enabled": False}).status_code == 200

    time.sleep(max(0.0, (at - utcnow()).total_seconds()))
    as_planned = firer.fire(sweep=False)
    swept = fire_due()
    firer.close()
    with session_scope() as session:
        query = select(Execution.schedule_id, Execution.params).where(Execution.schedule_id.in_(ids))
        fired = session.execute(query).all()
    remove(ids)

    assert planned >= 50
    assert as_planned.executions == 48
    assert swept.executions == 1
    assert Counter(sid for sid, _ in fired) == Counter(i for i in ids if i != disabled)
    assert {sid: params["v"] for sid, params in fired}[edited] == "edited"
    assert {params["v"] for sid, params in fired if sid != edited} == {"planned"}


@pytest.fixture
def on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's store on a migrated SQLite file, then back on MariaDB."""
    engines = (db.engine, db.autocommit_engine, db._sessions, db._autocommit_sessions)

    def switch() -> None:
        for made in (db.engine, db.autocommit_engine):
            if made.cache_info().currsize:
                made().dispose()
        for cached in engines:
            cached.cache_clear()

    switch()
    monkeypatch.setattr(settings, "database_url", f"sqlite:///{tmp_path / 'agentq.db'}")
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    yield
    switch()


@pytest.mark.usefixtures("on_sqlite")
def test_firers_racing_on_sqlite_fire_each_of_a_set_once() -> None:
    queue = f"sqlite-race-{time.time_ns()}"
    now = utcnow().replace(microsecond=0)  # a whole second, as cron slots are
    ids = []
    for i in range(300):
        schedule = Schedule(
            id=store.new_id(), owner="admin", name=f"race-{i}", plugin="echo", command="echo",
            params={"i": i}, queue=queue, interval_s=60 if i % 2 else None, cron=None if i % 2 else "* * * * *",
            jitter_s=None, next_run_at=now, next_fire_at=now,
        )  # fmt: skip
        store.create_schedule(schedule)
        ids.append(schedule.id)

    try:
        results = race(4)
        fired = fired_slots(ids)
    finally:
        redis.Redis.from_url(REDIS_URL).delete(queue)

    assert sorted(sid for sid, _ in fired) == sorted(ids)
    assert sum(r.executions for r in results) == 300


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def sample(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert found, f"{series} not in:\n{text}"
    return float(found.group(1))


def test_each_beat_serves_its_metrics_and_whether_it_holds_the_lock(stack: Stack, beats: list[Proc]) -> None:
    ports = free_port(), free_port()
    first = start_beat(stack, beats, "metrics-a", AGENTQ_BEAT_METRICS_PORT=str(ports[0]))
    wait_until(lambda: ACTIVE in first.log(), 30, "the beat to lead")
    second = start_beat(stack, beats, "metrics-b", AGENTQ_BEAT_METRICS_PORT=str(ports[1]))
    schedule = create(stack, interval_s=1)
    wait_until(lambda: sample(scrape(ports[0]), "agentq_beat_fires_total") >= 2, 30, "fires counted")
    wait_until(lambda: "agentq_beat_leader" in scrape(ports[1]), 30, "the standby's metrics")
    stack.client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False})

    active, standby = scrape(ports[0]), scrape(ports[1])
    host = socket.gethostname()
    assert sample(active, f'agentq_beat_leader{{beat="{host}:{first.pid}"}}') == 1
    assert sample(standby, f'agentq_beat_leader{{beat="{host}:{second.pid}"}}') == 0
    assert sample(active, "agentq_beat_fire_lag_seconds_count") >= 2
    assert sample(active, 'agentq_beat_fire_lag_seconds_bucket{le="+Inf"}') >= 2
    assert sample(active, "agentq_beat_tick_fires_count") >= 1
    assert sample(active, "agentq_beat_due_schedules") >= 0
    assert "agentq_beat_skipped_slots_total" in active
    assert "process_cpu_seconds_total" in active


def beat_health(stack: Stack) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTQ_REDIS_URL": stack.env["AGENTQ_REDIS_URL"]}
    argv = [sys.executable, "-m", "agentq.cli", "beat-health"]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_beat_health_says_when_no_beat_holds_the_lock(stack: Stack, beats: list[Proc]) -> None:
    lock = redis.Redis.from_url(stack.env["AGENTQ_REDIS_URL"])
    wait_until(lambda: not lock.exists(LOCK_KEY), 30, "earlier beats to let the lock go")

    none = beat_health(stack)
    beat = start_beat(stack, beats, "health")
    wait_until(lambda: ACTIVE in beat.log(), 30, "the beat to lead")
    held = beat_health(stack)
    beat.kill()  # no release: the lock expires (AGENTQ_BEAT_LOCK_S, 3 s in the tests)
    wait_until(lambda: beat_health(stack).returncode == 1, 30, "the lock to expire")

    assert none.returncode == 1
    assert "no beat holds the beat lock" in none.stderr
    assert held.returncode == 0, held.stderr
    assert f"beat {socket.gethostname()}:{beat.pid} holds the beat lock" in held.stdout


def test_readyz_reports_the_beat_that_holds_the_lock_and_stays_ready_without_one(
    stack: Stack, beats: list[Proc]
) -> None:
    lock = redis.Redis.from_url(stack.env["AGENTQ_REDIS_URL"])
    wait_until(lambda: not lock.exists(LOCK_KEY), 30, "earlier beats to let the lock go")

    def readyz() -> tuple[int, dict[str, Any]]:
        response = stack.client.get("/readyz")
        return response.status_code, response.json()

    # The answer is cached for AGENTQ_READY_CACHE_S: wait for one read after each change.
    wait_until(lambda: readyz()[1]["beat"]["holder"] is None, 30, "readyz to see no beat")
    none_status, none = readyz()
    beat = start_beat(stack, beats, "readyz")
    wait_until(lambda: ACTIVE in beat.log(), 30, "the beat to lead")
    wait_until(lambda: readyz()[1]["beat"]["status"] == "ok", 30, "readyz to see the beat")
    held_status, held = readyz()
    beats.remove(beat)
    stack.stop(beat)  # a beat stopped releases the lock
    wait_until(lambda: readyz()[1]["beat"]["holder"] is None, 30, "readyz to see the beat gone")
    gone_status, gone = readyz()

    assert (none_status, none["status"]) == (200, "ready")
    assert none["beat"] == {
        "status": "unavailable: no beat holds the beat lock; schedules do not fire",
        "holder": None,
    }
    assert (held_status, held["status"]) == (200, "ready")
    assert held["beat"]["holder"] == f"{socket.gethostname()}:{beat.pid}"
    assert 0 < held["beat"]["expires_in_s"] <= 3  # AGENTQ_BEAT_LOCK_S in the tests
    assert (gone_status, gone["status"], gone["beat"]) == (200, "ready", none["beat"])


def test_a_jittered_schedule_fires_each_slot_at_its_own_time_after_it(
    stack: Stack, beats: list[Proc]
) -> None:
    start_beat(stack, beats, "jitter")
    schedule = create(stack, interval_s=2, jitter_s=1.5)
    page = {"schedule_id": schedule["id"], "limit": 500}
    wait_until(
        lambda: len(stack.client.get("/v1/executions", params=page).json()["executions"]) >= 4, 30, "4 fires"
    )
    stack.client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False})
    fired = stack.client.get("/v1/executions", params=page).json()["executions"]

    slots = [datetime.fromisoformat(t) for t in schedule["next_fire_times"]]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(slots)] == [2.0] * 4
    offsets = []
    for execution in fired:
        slot = datetime.fromisoformat(execution["slot_at"])
        offset = jitter(schedule["id"], slot, 1.5)
        assert timedelta(0) <= offset <= timedelta(seconds=1.5)
        # Fired at its jittered time, not before: created_at is when it ran.
        assert datetime.fromisoformat(execution["created_at"]) >= slot + offset, execution
        offsets.append(offset)
    assert len(set(offsets)) == len(offsets)  # each slot its own time


def test_jitter_is_validated_and_a_patch_moves_the_next_fire(stack: Stack) -> None:
    for bad in (-1, 86_401, "soon"):
        response = stack.client.post(
            "/v1/schedules",
            json={"name": "j", "plugin": "echo", "command": "echo", "interval_s": 60, "jitter_s": bad},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["body", "jitter_s"]
    schedule = create(stack, interval_s=3600, jitter_s=600)

    def stored() -> tuple[datetime, datetime]:
        with session_scope() as session:
            row = session.get(Schedule, schedule["id"])
            assert row is not None
            assert row.next_run_at is not None
            assert row.next_fire_at is not None
            return row.next_run_at, row.next_fire_at

    slot, fire = stored()
    patched = stack.client.patch(f"/v1/schedules/{schedule['id']}", json={"jitter_s": 0}).json()
    slot_after, fire_after = stored()
    stack.client.delete(f"/v1/schedules/{schedule['id']}")

    assert schedule["jitter_s"] == 600
    assert patched["jitter_s"] == 0
    assert slot < fire == slot + jitter(schedule["id"], slot, 600)
    assert slot_after == fire_after == slot  # the same slot, now fired at once
    assert patched["next_fire_times"] == schedule["next_fire_times"]
