"""The outbound guard of a worker that may not reach private addresses. Keys, tenants and
limits are tested in process, in ``tests/unit/api/``."""

import time
from collections.abc import Iterator

import pytest

from agentq.core import queue, store
from tests.integration.conftest import Stack
from tests.integration.processes import Proc, child_env, start_worker, wait_until


@pytest.fixture
def guarded_worker(stack: Stack) -> Iterator[tuple[Proc, str]]:
    """A worker that may not reach private addresses, on a queue of its own."""
    name = f"agentq.guarded.{time.time_ns()}"
    env = child_env(stack.env, AGENTQ_OUTBOUND_ALLOW_PRIVATE="0")
    proc = start_worker(env, stack.log_dir, f"guarded-{time.time_ns()}", queues=name)
    wait_until(lambda: "ready." in proc.log(), 60, "the guarded worker")
    yield proc, name
    proc.stop()


def test_outbound_guard_refuses_private_addresses(
    stack: Stack, outside: str, guarded_worker: tuple[Proc, str]
) -> None:
    _, name = guarded_worker
    specs = [
        store.NewExecution("http", "get", {"url": f"{outside}/hello"}, name, 5, 30, 0),
        store.NewExecution("news", "latest", {"feed_url": f"{outside}/feed.xml"}, name, 5, 30, 0),
        store.NewExecution(
            "http", "get", {"url": "http://169.254.169.254/latest/meta-data/"}, name, 5, 30, 0
        ),
    ]
    submitted = store.create_executions(specs)
    queue.enqueue([s.execution for s in submitted])

    for s in submitted:
        done = stack.wait(s.execution.id)
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "PermanentError"
        assert "AGENTQ_OUTBOUND_ALLOW_PRIVATE" in done["error"]["message"]
