"""Delayed runs (``run_at``, ``delay_s``): held in the database, started after their time by
beat, cancellable before it, kept through restarts; and schedules' concurrency keys."""

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tests.integration.fairshare import (
    GAUGE_ENV,
    gauge,
    gauge_workers,
    most_at_once,
    recorded_intervals,
    rows,
    wait_all_ended,
)
from tests.integration.processes import Proc, wait_until


@pytest.fixture
def beat(stack: Stack) -> Iterator[Proc]:
    proc = stack.start_beat(f"beat-delays-{time.time_ns()}")
    yield proc
    if proc in stack.extra:
        stack.stop(proc)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.usefixtures("beat")
def test_a_delayed_run_waits_visibly_then_starts_after_its_time(stack: Stack, tmp_path: Path) -> None:
    record = tmp_path / "delayed.log"
    submitted = stack.submit("counter", "hit", {"path": str(record)}, delay_s=2)
    assert submitted["status"] == "queued"
    assert submitted["waiting_on"] == ["run_at"]
    assert submitted["run_at"] is not None
    listed = stack.client.get("/v1/executions", params={"waiting": "true", "plugin": "counter"}).json()
    assert submitted["id"] in {e["id"] for e in listed["executions"]}
    done = stack.wait(submitted["id"], 30)
    assert done["status"] == "succeeded"
    assert at(done["started_at"]) >= at(done["run_at"])
    assert done["waiting_on"] is None


@pytest.mark.usefixtures("beat")
def test_a_delayed_run_cancelled_before_its_time_never_runs(stack: Stack, tmp_path: Path) -> None:
    record = tmp_path / "cancelled.log"
    early = stack.submit("counter", "hit", {"path": str(record)}, delay_s=2)
    later = stack.submit("counter", "hit", {"path": str(record)}, delay_s=3)
    cancelled = stack.client.post(f"/v1/executions/{early['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert stack.wait(later["id"], 30)["status"] == "succeeded"  # beat released what was due after it
    assert early["id"] not in record.read_text()
    assert stack.get(early["id"])["status"] == "cancelled"


def test_a_delayed_run_survives_a_restart_of_beat_and_workers(stack: Stack, tmp_path: Path) -> None:
    record = tmp_path / "restart.log"
    first_beat = stack.start_beat("beat-before")
    with gauge_workers(stack, 1, "delay") as workers:
        response = stack.client.post("/v1/executions", json=gauge(record, 0, run_at=None, delay_s=3))
        assert response.status_code == 202, response.text
        delayed = response.json()
        stack.stop(first_beat)
        stack.stop(workers[0])
        # Nothing runs it while beat and the workers are down, past its time.
        wait_until(lambda: time.time() > at(delayed["run_at"]).timestamp() + 1, 10, "its run_at to pass")
        assert stack.get(delayed["id"])["status"] == "queued"
        workers.append(stack.start_worker("delay-again", queues="agentq.gauge", **GAUGE_ENV))
        second_beat = stack.start_beat("beat-after")
        try:
            done = stack.wait(delayed["id"], 60)
        finally:
            stack.stop(second_beat)
    assert done["status"] == "succeeded"
    assert at(done["started_at"]) >= at(done["run_at"])
    assert delayed["id"] in record.read_text()


def test_a_schedules_concurrency_key_limits_its_fired_runs(stack: Stack, tmp_path: Path) -> None:
    record = tmp_path / "scheduled.log"
    assert stack.client.put("/v1/limits/nightly", json={"max_running": 1}).status_code == 200
    body = {
        "name": f"limited-{time.time_ns()}",
        **gauge(record, 1.5),
        "interval_s": 1,
        "concurrency_key": "nightly",
    }
    with gauge_workers(stack, 1, "sched"):
        made = stack.client.post("/v1/schedules", json=body)
        assert made.status_code == 201, made.text
        schedule = made.json()
        assert schedule["concurrency_key"] == "nightly"
        beat = stack.start_beat("beat-sched")
        try:
            # Fired every second, each run 1.5 s long: without the limit they would overlap.
            wait_until(lambda: len(fired(stack, schedule["id"])) >= 4, 60, "four fires")
        finally:
            stack.client.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False})
            stack.stop(beat)
        ids = fired(stack, schedule["id"])
        ended = wait_all_ended(ids, 60)
    assert {r.concurrency_key for r in ended} == {"nightly"}
    assert most_at_once(recorded_intervals(record, [])) == 1
    assert len(rows(ids)) >= 4


def fired(stack: Stack, schedule_id: str) -> list[str]:
    listed = stack.client.get("/v1/executions", params={"schedule_id": schedule_id, "limit": 100}).json()
    return [e["id"] for e in listed["executions"]]
