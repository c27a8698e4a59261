"""Flower, as docker-compose.yaml runs it, against the real worker: what it shows is true.

A FAILURE for a message whose executions failed or timed out, SUCCESS otherwise; the
agents a message runs; no maintenance tasks among the executions; the broker's queues.
"""

import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from agentq.core import broker
from agentq.core.models import ADMIN_OWNER
from agentq.core.queue import PRIORITY_LEVELS, REAP_EXECUTIONS, app
from tests.conftest import REDIS_URL
from tests.integration.conftest import Stack
from tests.integration.processes import Proc, child_env, free_port, wait_until
from tests.integration.test_compose import command


@dataclass
class Flower:
    url: str
    auth: tuple[str, str]
    proc: Proc

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, auth=self.auth, timeout=10, trust_env=False)

    def task(self, execution_id: str, state: str, timeout_s: float = 20) -> dict[str, Any]:
        """The task of the message that carried the execution, once Flower shows it in ``state``.

        Its id is the first execution's of the message; the API may publish singles
        submitted together in one message, so the task is found by its args.
        """
        found: dict[str, Any] = {}

        def shown() -> bool:
            tasks = self.get("/api/tasks", search=execution_id).json()
            found.update(next((t for t in tasks.values() if execution_id in t["args"]), {}))
            return found.get("state") == state

        wait_until(shown, timeout_s, f"Flower to show {execution_id} as {state}", interval_s=0.2)
        return found

    def failed_count(self) -> int:
        """The overview's "Failed", over every worker."""
        workers = self.get("/", json=1).json()["data"]
        return sum(int(worker.get("task-failed", 0)) for worker in workers)


@pytest.fixture(scope="module")
def flower(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    """Flower started by docker-compose.yaml's command, on the stack's broker."""
    work = tmp_path_factory.mktemp("flower")
    auth = ("ops", secrets.token_urlsafe(12))
    port = free_port()
    env = child_env(
        stack.env, FLOWER_PORT=str(port), FLOWER_BASIC_AUTH=":".join(auth), FLOWER_DB=str(work / "flower.db")
    )
    argv = command("flower", env)
    assert argv[0] == "celery", argv
    proc = Proc("flower", [sys.executable, "-m", *argv], env, stack.log_dir)  # this interpreter's celery
    built = Flower(f"http://127.0.0.1:{port}", auth, proc)
    try:
        wait_until(lambda: built.get("/healthcheck").status_code == 200, 60, "Flower")
        # Flower takes events from when it connects: until it lists the worker.
        wait_until(lambda: bool(built.get("/", json=1).json()["data"]), 30, "Flower to see the worker")
        yield built
    finally:
        proc.stop()


def test_a_failed_execution_is_a_failure_in_flower_and_a_successful_one_a_success(
    stack: Stack, flower: Flower
) -> None:
    failed_before = flower.failed_count()

    # An execution that fails its only attempt, and one that succeeds
    failing = stack.submit("simulate", "run", {"fail_times": 9}, max_retries=0)
    assert stack.wait(failing["id"])["status"] == "failed"
    succeeding = stack.submit("echo", "echo", {"hello": "flower"})
    assert stack.wait(succeeding["id"])["status"] == "succeeded"

    # Flower shows the first as FAILURE, naming it and its error type, and counts it
    failure = flower.task(failing["id"], "FAILURE")
    assert failure["name"] == "agentq.run_execution"
    assert failure["uuid"] == failing["id"]
    assert failure["exception"].startswith("ExecutionsFailed(")
    assert f"{failing['id']} failed (RetryLater)" in failure["exception"], failure["exception"]
    assert failure["kwargs"] == "{'plugin': 'simulate', 'command': 'run'}"
    wait_until(lambda: flower.failed_count() == failed_before + 1, 10, "the overview's failed count")

    # And the second as SUCCESS, with its status as the result
    success = flower.task(succeeding["id"], "SUCCESS")
    assert success["result"] == repr({succeeding["id"]: "succeeded"})
    assert success["kwargs"] == "{'plugin': 'echo', 'command': 'echo'}"
    assert success["args"] == repr([[succeeding["id"]]])


def test_a_failed_message_is_acked_once_and_not_run_again(stack: Stack, flower: Flower) -> None:
    failing = stack.submit("simulate", "run", {"fail_times": 9}, max_retries=0)
    assert stack.wait(failing["id"])["status"] == "failed"
    flower.task(failing["id"], "FAILURE")

    # Acked: kombu's Redis transport keeps a delivered message in `unacked` until its ack
    client = redis.Redis.from_url(REDIS_URL)
    wait_until(
        lambda: not any(failing["id"].encode() in body for body in client.hvals("unacked")),
        10,
        "the failed message to be acked",
    )
    # And neither Celery nor the broker delivers it again: one attempt, received once
    row = stack.get(failing["id"])
    assert row["status"] == "failed", row
    assert row["attempts"] == 1, row
    assert stack.worker.log().count(f"agentq.run_execution[{failing['id']}] received") == 1
    assert not any(failing["id"].encode() in body for body in client.hvals("unacked"))


def test_a_timed_out_execution_is_a_failure_in_flower(stack: Stack, flower: Flower) -> None:
    slow = stack.submit("simulate", "run", {"sleep_s": 10}, timeout_s=1, max_retries=0)
    assert stack.wait(slow["id"])["status"] == "timed_out"

    failure = flower.task(slow["id"], "FAILURE")

    assert f"{slow['id']} timed_out (timed_out)" in failure["exception"], failure["exception"]


def test_a_message_of_several_executions_fails_if_one_of_them_failed(stack: Stack, flower: Flower) -> None:
    # One message (same queue, priority and attempt): two successes and a failure
    items = [
        {"plugin": "echo", "command": "echo", "params": {"i": 1}},
        {"plugin": "simulate", "command": "run", "params": {"fail_times": 9}, "max_retries": 0},
        {"plugin": "echo", "command": "echo", "params": {"i": 2}},
    ]
    response = stack.client.post("/v1/executions/batch", json={"executions": items})
    assert response.status_code == 202, response.text
    first, failing, last = response.json()["executions"]
    statuses = [stack.wait(e["id"])["status"] for e in (first, failing, last)]
    assert statuses == ["succeeded", "failed", "succeeded"]

    # The message's task id is its first execution's
    failure = flower.task(failing["id"], "FAILURE")
    assert failure["uuid"] == first["id"]

    assert "1 of 3 executions ended failed or timed_out" in failure["exception"], failure["exception"]
    assert f"{failing['id']} failed (RetryLater)" in failure["exception"]
    assert "the others: 2 succeeded" in failure["exception"]
    assert failure["kwargs"] == repr({"agents": "echo/echo ×2, simulate/run ×1"})
    assert failure["args"] == repr([[first["id"], failing["id"], last["id"]]])


def test_retries_and_cancellations_are_not_failures(stack: Stack, flower: Flower) -> None:
    # A first attempt that fails with retries left, then succeeds
    retried = stack.submit("simulate", "run", {"fail_times": 1}, max_retries=2)
    assert stack.wait(retried["id"])["status"] == "succeeded"
    # A run cancelled while it runs
    cancelled = stack.submit("simulate", "run", {"sleep_s": 30, "mode": "async"})
    wait_until(lambda: stack.get(cancelled["id"])["status"] == "running", 20, "the run to start")
    stack.client.post(f"/v1/executions/{cancelled['id']}/cancel")
    assert stack.wait(cancelled["id"])["status"] == "cancelled"

    # Both messages' tasks are SUCCESS (the retry's message has the same task id)
    assert flower.task(retried["id"], "SUCCESS")["result"] == repr({retried["id"]: "succeeded"})
    assert flower.task(cancelled["id"], "SUCCESS")["result"] == repr({cancelled["id"]: "cancelled"})


def test_flower_search_finds_the_tasks_of_a_plugin(stack: Stack, flower: Flower) -> None:
    created = stack.submit("counter", "hit", {"path": "/dev/null"})
    stack.wait(created["id"])
    flower.task(created["id"], "SUCCESS")

    found = flower.get("/api/tasks", search="kwargs:plugin=counter").json()

    assert created["id"] in found
    assert {task["kwargs"] for task in found.values()} == {"{'plugin': 'counter', 'command': 'hit'}"}


@pytest.mark.usefixtures("beat")
def test_maintenance_tasks_stay_out_of_flowers_task_list(stack: Stack, flower: Flower) -> None:
    # Given beat firing the reaper every second, and the worker running it several times
    def reaped() -> int:
        return stack.worker.log().count(f"Task {REAP_EXECUTIONS}[")

    before = reaped()
    wait_until(lambda: reaped() >= before + 6, 30, "the worker to run the reaper several times")
    created = stack.submit("echo", "echo", {})
    stack.wait(created["id"])
    flower.task(created["id"], "SUCCESS")

    # Then Flower's task list and task types hold executions only
    tasks = flower.get("/api/tasks").json()
    assert created["id"] in tasks
    assert {task["name"] for task in tasks.values()} <= {"agentq.run_execution", "agentq.submit_execution"}
    assert REAP_EXECUTIONS not in flower.get("/api/task/types").json()["task-types"]


def _waiting(client: redis.Redis, queue: str) -> int:
    """Messages in a queue, over its priority lists (kombu's ``agentq``, ``agentq:1``, …)."""
    keys = [queue, *(f"{queue}:{p}" for p in range(1, PRIORITY_LEVELS))]
    return sum(int(client.llen(key)) for key in keys)


def test_flowers_broker_view_counts_the_queued_messages(stack: Stack, flower: Flower) -> None:
    # Given the worker stops consuming, and executions wait in the queue at three priorities
    worker = f"w1@{socket.gethostname()}"  # the stack's worker, --hostname w1@%h
    client = redis.Redis.from_url(REDIS_URL)
    queue = broker.shard("agentq", ADMIN_OWNER)  # the admin key's shard of the queue
    app.control.cancel_consumer(queue, destination=[worker], reply=True, timeout=5)
    try:
        created = [stack.submit("echo", "echo", {"n": p}, priority=p) for p in (0, 5, 9)]
        # (the API publishes from a thread of its own, after answering)
        wait_until(lambda: _waiting(client, queue) == 3, 10, "the three messages in Redis")

        # Then Flower's queue lengths and its Broker page count them, on the real Redis
        response = flower.get("/api/queues/length")
        assert response.status_code == 200, response.text
        assert {"name": queue, "messages": 3} in response.json()["active_queues"]
        page = flower.get("/broker")
        assert page.status_code == 200, page.text
        assert f'<tr id="{queue}">' in page.text
        assert "No queue data" not in page.text
        assert ">redis://" in page.text  # the broker's URL, its password masked
    finally:
        app.control.add_consumer(queue, destination=[worker], reply=True, timeout=5)
    for execution in created:
        assert stack.wait(execution["id"])["status"] == "succeeded"
    assert {"name": queue, "messages": 0} in flower.get("/api/queues/length").json()["active_queues"]
