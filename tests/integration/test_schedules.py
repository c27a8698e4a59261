"""Periodic agents with real ``celery beat`` processes, MariaDB and Redis."""

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from agentq.core import queue, store
from agentq.core.db import session_scope
from agentq.core.firing import fire_due
from agentq.core.models import Execution, Schedule, utcnow
from agentq.core.queue import PURGE_EXECUTIONS
from agentq.core.queue import app as celery_app
from tests.integration.conftest import Stack
from tests.integration.processes import Proc, wait_until

ACTIVE = "this beat is now the active one"


@pytest.fixture
def beats(stack: Stack) -> Iterator[list[Proc]]:  # noqa: ARG001 (requested for its side effect: the stack)
    """Beats a test starts; all stopped (releasing the lock) when it ends."""
    started: list[Proc] = []
    yield started
    for beat in started:
        beat.stop()


def start_beat(stack: Stack, beats: list[Proc], name: str) -> Proc:
    beat = stack.start_beat(f"{name}-{time.time_ns()}")
    beats.append(beat)
    return beat


def create(stack: Stack, **fields: Any) -> dict[str, Any]:
    body = {"name": f"s-{time.time_ns()}", "plugin": "echo", "command": "echo", "params": {}} | fields
    response = stack.client.post("/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def runs(stack: Stack, schedule_id: str) -> list[dict[str, Any]]:
    page = stack.client.get("/v1/executions", params={"schedule_id": schedule_id, "limit": 500})
    return list(reversed(page.json()["executions"]))


def disable(stack: Stack, schedule_id: str) -> None:
    assert stack.client.patch(f"/v1/schedules/{schedule_id}", json={"enabled": False}).status_code == 200


def assert_one_per_slot(executions: list[dict[str, Any]]) -> None:
    slots = [e["slot_at"] for e in executions]
    assert len(slots) == len(set(slots)), slots


def test_interval_schedule_fires_expected_times(stack: Stack, beats: list[Proc]) -> None:
    start_beat(stack, beats, "beat")
    wait_until(lambda: ACTIVE in beats[0].log(), 30, "the beat to lead")
    schedule = create(stack, interval_s=1)

    time.sleep(5.5)
    disable(stack, schedule["id"])
    fired = runs(stack, schedule["id"])

    assert 4 <= len(fired) <= 6
    assert_one_per_slot(fired)
    assert all(e["schedule_id"] == schedule["id"] for e in fired)
    assert [stack.wait(e["id"])["status"] for e in fired] == ["succeeded"] * len(fired)


def test_two_beats_fire_each_slot_once_and_standby_takes_over(stack: Stack, beats: list[Proc]) -> None:
    first, second = start_beat(stack, beats, "beat-a"), start_beat(stack, beats, "beat-b")
    wait_until(lambda: ACTIVE in first.log() + second.log(), 30, "a beat to lead")
    active, standby = (first, second) if ACTIVE in first.log() else (second, first)
    schedule = create(stack, interval_s=1)
    time.sleep(4)

    active.kill()  # no warm shutdown: the lock must expire
    killed_at = utcnow()
    wait_until(lambda: ACTIVE in standby.log(), 30, "the standby to take over")
    wait_until(
        lambda: any(e["created_at"] > killed_at.isoformat() for e in runs(stack, schedule["id"])),
        30,
        "firing again",
    )
    time.sleep(2)
    disable(stack, schedule["id"])
    fired = runs(stack, schedule["id"])

    assert_one_per_slot(fired)
    assert len(fired) >= 5


def test_concurrent_fires_make_one_execution_per_slot(stack: Stack) -> None:
    # No lock at all: many firers race on the same due slot; the database lets one win.
    schedule = create(stack, interval_s=3600, params={"race": True})
    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(Schedule).where(Schedule.id == schedule["id"]).values(next_run_at=now, next_fire_at=now)
        )
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait()
        fire_due(utcnow())

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(runs(stack, schedule["id"])) == 1


def test_patch_enabled_false_stops_firing_within_2s(stack: Stack, beats: list[Proc]) -> None:
    start_beat(stack, beats, "beat")
    schedule = create(stack, interval_s=1)
    wait_until(lambda: len(runs(stack, schedule["id"])) >= 2, 30, "the schedule to fire")

    disable(stack, schedule["id"])
    cutoff = (utcnow() + timedelta(seconds=2)).isoformat()
    time.sleep(4)

    assert not [e for e in runs(stack, schedule["id"]) if e["created_at"] > cutoff]
    assert stack.client.get(f"/v1/schedules/{schedule['id']}").json()["next_fire_times"] == []


def test_patch_interval_takes_effect_without_restart(stack: Stack, beats: list[Proc]) -> None:
    start_beat(stack, beats, "beat")
    schedule = create(stack, interval_s=3600)
    time.sleep(1)
    assert runs(stack, schedule["id"]) == []

    patched = stack.client.patch(f"/v1/schedules/{schedule['id']}", json={"interval_s": 1}).json()
    wait_until(lambda: len(runs(stack, schedule["id"])) >= 2, 5, "the new interval")
    disable(stack, schedule["id"])

    assert patched["interval_s"] == 1
    times = [datetime.fromisoformat(t) for t in patched["next_fire_times"]]
    assert [(b - a).total_seconds() for a, b in pairwise(times)] == [1.0] * 4


def test_missed_slots_after_beat_was_down_follow_the_policy(stack: Stack, beats: list[Proc]) -> None:
    skip = create(stack, interval_s=2, missed_policy="skip")
    catch_up = create(stack, interval_s=2, missed_policy="catch_up")
    time.sleep(7)  # no beat: each misses its slots at about +2, +4 and +6 s

    start_beat(stack, beats, "beat")
    wait_until(
        lambda: bool(runs(stack, skip["id"])) and len(runs(stack, catch_up["id"])) >= 3, 30, "the catch-up"
    )
    for s in (skip, catch_up):
        disable(stack, s["id"])

    def slots(schedule: dict[str, Any], n: int) -> list[datetime]:
        first = datetime.fromisoformat(schedule["next_fire_times"][0])
        return [first + timedelta(seconds=2 * i) for i in range(n)]

    fired_skip = [datetime.fromisoformat(e["slot_at"]) for e in runs(stack, skip["id"])]
    fired_catch_up = [datetime.fromisoformat(e["slot_at"]) for e in runs(stack, catch_up["id"])]
    assert set(slots(catch_up, 3)) <= set(fired_catch_up)  # every missed slot ran
    assert min(fired_skip) >= slots(skip, 3)[2]  # the missed ones did not: one run, for a late slot
    assert_one_per_slot(runs(stack, catch_up["id"]))


def test_overlap_skip_never_runs_two_at_once(stack: Stack, beats: list[Proc], tmp_path: Path) -> None:
    start_beat(stack, beats, "beat")
    hits = tmp_path / "hits.txt"
    skip = create(stack, interval_s=1, overlap_policy="skip", plugin="counter", command="hit",
                  params={"path": str(hits), "sleep_s": 2.5})  # fmt: skip

    time.sleep(7)
    disable(stack, skip["id"])
    fired = [stack.wait(e["id"]) for e in runs(stack, skip["id"])]

    assert 2 <= len(fired) <= 3  # 7 slots, but each run blocks the next two
    spans = sorted((e["started_at"], e["finished_at"]) for e in fired)
    assert all(prev_end <= next_start for (_, prev_end), (next_start, _) in pairwise(spans))


def test_run_now_fires_immediately(stack: Stack) -> None:
    schedule = create(stack, cron="0 3 * * *", timezone="Europe/Berlin", params={"now": True})

    response = stack.client.post(f"/v1/schedules/{schedule['id']}/run")

    assert response.status_code == 202
    done = stack.wait(response.json()["id"])
    assert done["status"] == "succeeded"
    assert done["schedule_id"] == schedule["id"]
    assert done["result"] == {"now": True}


def test_retention_purge_deletes_only_old_rows(stack: Stack) -> None:
    old, recent = (stack.wait(stack.submit("echo", "echo", {"age": a})["id"]) for a in ("old", "recent"))
    live = stack.submit("simulate", "run", {"sleep_s": 30, "mode": "async"})
    with session_scope() as session:
        session.execute(
            update(Execution)
            .where(Execution.id.in_([old["id"], live["id"]]))
            .values(created_at=utcnow() - timedelta(days=40), finished_at=utcnow() - timedelta(days=40))
        )
    wait_until(lambda: stack.get(live["id"])["status"] == "running", 10, "running")

    celery_app.send_task(PURGE_EXECUTIONS)
    wait_until(lambda: stack.client.get(f"/v1/executions/{old['id']}").status_code == 404, 30, "the purge")

    assert stack.get(recent["id"])["status"] == "succeeded"
    assert stack.get(live["id"])["status"] == "running"  # not terminal: kept, whatever its age
    stack.client.post(f"/v1/executions/{live['id']}/cancel")


def test_reaper_requeues_an_execution_whose_worker_vanished(
    stack: Stack, beats: list[Proc], tmp_path: Path
) -> None:
    hits = tmp_path / "hits.txt"
    first = stack.start_worker(f"doomed-{time.time_ns()}", queues="agentq.reap", AGENTQ_LEASE_S="2")
    wait_until(lambda: "ready." in first.log(), 60, "the worker")
    (submitted,) = store.create_executions(
        [store.NewExecution("counter", "hit", {"path": str(hits), "sleep_s": 3}, "agentq.reap", 5, 60, 3)]
    )
    queue.enqueue([submitted.execution])
    wait_until(lambda: hits.exists(), 30, "the first run to start")

    first.kill()
    start_beat(stack, beats, "beat")
    stack.start_worker(f"heir-{time.time_ns()}", queues="agentq.reap", AGENTQ_LEASE_S="2")
    done = stack.wait(submitted.execution.id, timeout_s=60)

    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
    assert hits.read_text().splitlines() == [f"{submitted.execution.id} 1", f"{submitted.execution.id} 2"]
