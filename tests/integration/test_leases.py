"""Leases: a blocked event loop loses none, attempts stay bounded, no row is left running
without a live worker, and a stopping worker hands back every run it holds."""

import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from agentq.core import maintenance, queue, store
from agentq.core.db import session_scope
from agentq.core.models import Execution, utcnow
from tests.conftest import DATABASE_URL
from tests.integration.conftest import Stack, launch
from tests.integration.processes import wait_until
from tests.integration.services import PrivateRedis
from tests.integration.test_faults import TERMINAL, insert, private_queue


def blocked_seconds(stack: Stack, plugin: str) -> float:
    """``agentq_worker_loop_blocked_seconds_total`` of ``plugin``, as the API serves it."""
    text = httpx.get(f"{stack.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "agentq_worker_loop_blocked_seconds_total" and sample.labels == {"plugin": plugin}
    )


def lease_of(execution_id: str) -> Any:
    with session_scope() as session:
        return session.scalar(select(Execution.lease_expires_at).where(Execution.id == execution_id))


@pytest.mark.usefixtures("beat")
def test_a_plugin_blocking_its_loop_past_the_lease_runs_once_and_is_named(
    stack: Stack, tmp_path: Path
) -> None:
    # Two workers with a 1 s lease and a reaper every second: had the blocked run's lease
    # expired, the other worker would have run it again.
    name = private_queue("hog")
    workers = [
        stack.start_worker(f"hog-{i}-{time.time_ns()}", queues=name, AGENTQ_LEASE_S="1") for i in (1, 2)
    ]
    wait_until(lambda: all("ready." in w.log() for w in workers), 60, "the workers")
    before = blocked_seconds(stack, "hog")
    runs = tmp_path / "runs.txt"

    execution_id = insert("hog", "block", {"path": str(runs), "block_s": 3}, name)
    done = stack.wait(execution_id, timeout_s=60)
    named = f"plugin hog command block (execution {execution_id}, attempt 1)"
    wait_until(lambda: any(named in w.log() for w in workers), 10, "the warning")

    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert runs.read_text().splitlines() == [f"{execution_id} 1"]
    (warning,) = [line for w in workers for line in w.log().splitlines() if named in line]
    assert '"level": "WARNING"' in warning
    assert "event loop held for" in warning
    # The loop was held 3 s at least, and the worker counts it after logging it.
    wait_until(lambda: blocked_seconds(stack, "hog") - before >= 2.9, 10, "the count")


def test_a_claim_on_a_running_row_or_past_the_last_attempt_changes_nothing_it_should_not(
    stack: Stack,
) -> None:
    spec = store.NewExecution("echo", "echo", {}, "agentq.unread", 5, 30, 1)
    running, spent = (s.execution.id for s in store.create_executions([spec] * 2))
    store.claim([([running], 0)], "w1", lease_s=30)
    lease = lease_of(running)
    # An execution handed back on its last attempt by an earlier version.
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == spent).values(status="retrying", attempts=2))

    claimed = store.claim([([running], 0), ([running], 1), ([spent], 2)], "w2", lease_s=30)

    assert [[(row.id, row.status.value) for row in rows] for rows in claimed] == [[], [], [(spent, "failed")]]
    assert (stack.get(running)["attempts"], stack.get(running)["worker"], lease_of(running)) == (
        1,
        "w1",
        lease,
    )
    failed = stack.get(spent)
    assert (failed["status"], failed["attempts"], failed["error"]["type"]) == (
        "failed",
        2,
        "RetriesExhausted",
    )
    assert "Attempt 3 would exceed max_retries=1" in failed["error"]["message"]
    last_event = store.read_events(store.get_execution(spent, "admin"), 0)[-1]
    assert last_event.data["status"] == "failed"
    assert last_event.data["attempt"] == 2


def test_the_reaper_retries_a_lost_run_while_attempts_are_left_then_fails_it(stack: Stack) -> None:
    spec = store.NewExecution("echo", "echo", {}, "agentq.unread", 5, 30, 1)
    lost, last = (s.execution.id for s in store.create_executions([spec, replace(spec, max_retries=0)]))
    store.claim([([lost, last], 0)], "w1", lease_s=-1)  # its worker died: the lease ran out
    # A heartbeat of another worker renews no lease of w1's.
    assert store.heartbeat([(lost, 1)], "w2", lease_s=60) == set()
    assert lease_of(lost) < utcnow()

    maintenance.reap(utcnow())
    retrying, failed = stack.get(lost), stack.get(last)
    (again,) = store.claim([([lost], 1)], "w2", lease_s=-1)  # the reaper's message
    maintenance.reap(utcnow())
    ended = stack.get(lost)

    assert (retrying["status"], retrying["attempts"], retrying["error"]["type"]) == (
        "retrying",
        1,
        "WorkerLost",
    )
    assert "it runs again" in retrying["error"]["message"]
    assert (failed["status"], failed["attempts"], failed["error"]["type"]) == ("failed", 1, "WorkerLost")
    assert [row.attempts for row in again] == [2]
    assert (ended["status"], ended["attempts"], ended["error"]["type"]) == ("failed", 2, "WorkerLost")
    assert "no attempts are left" in ended["error"]["message"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


@pytest.mark.usefixtures("stack")
def test_attempts_stay_bounded_and_no_row_is_left_running_when_workers_die(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # Short leases, and a broker that redelivers unacked messages after 3 s: a dead
    # worker's messages come back, stale, while the reaper publishes the next attempts.
    env = {
        "AGENTQ_LEASE_S": "2",
        "AGENTQ_BROKER_VISIBILITY_TIMEOUT_S": "3",
        "AGENTQ_BROKER_RESTORE_SWEEP_S": "1",
    }
    runs = tmp_path / "runs.txt"
    with launch(DATABASE_URL, private_redis.url, tmp_path, **env) as private:
        # The reaper runs on a worker of its own, which lives through the kills.
        private.start_beat("beat", AGENTQ_DEFAULT_QUEUE="agentq.housekeeping")
        private.start_worker("housekeeper", queues="agentq.housekeeping")
        items = [
            {
                "plugin": "counter",
                "command": "hit",
                "params": {"path": str(runs), "sleep_s": 4},
                "max_retries": k,
            }
            for k in (0, 1, 2)
            for _ in range(10)
        ]
        response = private.client.post("/v1/executions/batch", json={"executions": items})
        assert response.status_code == 202, response.text
        ids = [e["id"] for e in response.json()["executions"]]

        def rows() -> list[dict[str, Any]]:
            return [private.get(i) for i in ids]

        worker = private.worker
        for kill in range(1, 4):
            # Kill the worker while it runs attempt `kill` of the executions left.

            def attempt_running(k: int = kill) -> bool:
                return any(r["status"] == "running" and r["attempts"] == k for r in rows())

            wait_until(
                attempt_running,
                60,
                f"attempt {kill} running",
            )
            time.sleep(1)
            worker.kill()
            # No worker runs them: within a lease and a reaper round, no row is running.
            wait_until(lambda: all(r["status"] != "running" for r in rows()), 30, "the reaper")
            worker = private.start_worker(f"w{kill + 1}")

        done = [private.wait(i, timeout_s=90) for i in ids]

    ran: dict[str, list[int]] = defaultdict(list)
    for line in runs.read_text().splitlines():
        execution_id, attempt = line.split()
        ran[execution_id].append(int(attempt))
    assert all(row["status"] in TERMINAL for row in done)
    for row in done:
        assert row["attempts"] <= row["max_retries"] + 1, row
        assert sorted(ran[row["id"]]) == list(range(1, row["attempts"] + 1)), row  # each attempt once
        if row["status"] == "failed":
            assert row["error"]["type"] == "WorkerLost", row
    # The kills reached every row's last attempt, and none ran past it.
    assert {(row["max_retries"], row["status"]) for row in done} == {
        (0, "failed"),
        (1, "failed"),
        (2, "failed"),
    }


def test_warm_shutdown_hands_back_sync_runs_and_runs_never_started(stack: Stack) -> None:
    # Two sync threads for four sync runs: two never start before the worker stops.
    name = private_queue("handback")
    worker = stack.start_worker(
        f"handing-back-{time.time_ns()}",
        queues=name,
        AGENTQ_SHUTDOWN_GRACE_S="1",
        AGENTQ_WORKER_CONCURRENCY="2",
    )
    wait_until(lambda: "ready." in worker.log(), 60, "the worker")
    specs = [store.NewExecution("simulate", "run", {"sleep_s": 30, "mode": mode}, name, 5, 60, retries)
             for mode, retries in [("sync", 3)] * 4 + [("async", 3), ("async", 0)]]  # fmt: skip
    executions = [s.execution for s in store.create_executions(specs)]
    queue.enqueue(executions)  # one message
    wait_until(lambda: all(stack.get(e.id)["status"] == "running" for e in executions), 30, "running")
    time.sleep(1)

    worker.signal(signal.SIGTERM)
    worker.popen.wait(30)
    rows = [stack.get(e.id) for e in executions]

    assert worker.popen.returncode == 0
    assert [(r["status"], r["attempts"], r["error"]["type"]) for r in rows] == [
        ("retrying", 1, "handed_back")
    ] * 5 + [("failed", 1, "handed_back")]
    assert "it does not run again" in rows[-1]["error"]["message"]
