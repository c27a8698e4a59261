"""``agentq.client`` against the real API and worker, sync and async."""

import asyncio
import time

import pytest

from agentq.client import (
    AsyncClient,
    AuthError,
    Client,
    ConflictError,
    Event,
    NotFoundError,
    Submission,
    ValidationError,
)
from tests.integration.conftest import ADMIN_KEY, Stack

RUN = {"sleep_s": 1, "progress_steps": 4, "mode": "async"}


def check_run_events(events: list[Event]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.status for e in events if e.kind == "status"] == ["queued", "running", "succeeded"]
    assert [e.data["percent"] for e in events if e.kind == "progress"] == [25.0, 50.0, 75.0, 100.0]
    assert [e.data["message"] for e in events if e.kind == "log"] == [
        f"step {i} of 4 done" for i in range(1, 5)
    ]
    assert events[-1].terminal


def test_client_submit_follow_and_read_a_run(stack: Stack) -> None:
    with Client(stack.url, ADMIN_KEY) as agentq:
        execution = agentq.submit("simulate", "run", RUN, priority=7)
        events = list(agentq.events(execution.id))
        done = agentq.get(execution.id)
        resumed = list(agentq.events(execution.id, last_event_id=2))
        page = agentq.list_executions(plugin="simulate", limit=500)

    assert execution.status == "queued"
    assert execution.priority == 7
    check_run_events(events)
    assert done.status == "succeeded"
    assert done.terminal
    assert done.result["progress_steps"] == 4
    assert done.progress is not None
    assert done.progress.percent == 100.0
    assert resumed == events[2:]
    assert execution.id in [e.id for e in page.executions]


def test_client_batch_wait_cancel_and_plugins(stack: Stack) -> None:
    with Client(stack.url, ADMIN_KEY) as agentq:
        first, second = agentq.submit_batch(
            [
                Submission(plugin="echo", command="echo", params={"i": 1}),
                {"plugin": "echo", "command": "echo"},
            ]
        )
        waited = agentq.wait(first.id)
        long = agentq.submit("simulate", "run", {"sleep_s": 30})
        cancelled = agentq.cancel(long.id)
        still = agentq.wait(long.id, timeout_s=0)
        plugins = {p.name: p for p in agentq.plugins()}

    assert waited.status == "succeeded"
    assert waited.result == {"i": 1}
    assert second.id != first.id
    assert cancelled.status == "cancelled"
    assert cancelled.error is not None
    assert cancelled.error.type == "cancelled"
    assert still.status == "cancelled"
    assert "progress_steps" in plugins["simulate"].commands[0].params_schema["properties"]


def test_client_raises_typed_errors(stack: Stack) -> None:
    with Client(stack.url, ADMIN_KEY) as agentq:
        done = agentq.wait(agentq.submit("echo", "echo", {}).id)
        with pytest.raises(NotFoundError) as missing:
            agentq.get("01NOPE")
        with pytest.raises(ValidationError) as invalid:
            agentq.submit("simulate", "run", {"sleep": 1})
        with pytest.raises(ConflictError):
            agentq.cancel(done.id)
        with pytest.raises(NotFoundError):
            list(agentq.events("01NOPE"))
    with Client(stack.url, "wrong-key") as stranger, pytest.raises(AuthError) as denied:
        stranger.plugins()

    assert missing.value.status == 404
    assert missing.value.detail == "No execution with id '01NOPE'."
    assert invalid.value.status == 422
    assert invalid.value.errors
    assert denied.value.status == 401


def test_async_client_submit_follow_wait_and_cancel(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.url, ADMIN_KEY) as agentq:
            execution = await agentq.submit("simulate", "run", RUN)
            events = [event async for event in agentq.events(execution.id)]
            done = await agentq.wait(execution.id)
            long = await agentq.submit("simulate", "run", {"sleep_s": 30, "mode": "async"})
            cancelled = await agentq.cancel(long.id)
            with pytest.raises(NotFoundError):
                await agentq.get("01NOPE")
            batch = await agentq.submit_batch([{"plugin": "echo", "command": "echo", "params": {"a": 1}}])
            echoed = await agentq.wait(batch[0].id)

        check_run_events(events)
        assert done.status == "succeeded"
        assert cancelled.status == "cancelled"
        assert echoed.result == {"a": 1}

    asyncio.run(scenario())


def test_async_clients_follow_one_run_together(stack: Stack) -> None:
    async def scenario() -> list[list[int]]:
        async with AsyncClient(stack.url, ADMIN_KEY) as agentq:
            execution = await agentq.submit("simulate", "run", RUN)

            async def follow() -> list[int]:
                return [event.seq async for event in agentq.events(execution.id)]

            return list(await asyncio.gather(*(follow() for _ in range(10))))

    seen = asyncio.run(scenario())

    assert all(s == seen[0] for s in seen)
    assert seen[0] == list(range(1, 12))


def test_client_retry_and_retry_many_sync_and_async(stack: Stack) -> None:
    with Client(stack.url, ADMIN_KEY) as admin:
        key = admin.create_key(f"client-retry-{time.time_ns()}").key
    with Client(stack.url, key) as agentq:
        failed = agentq.wait(agentq.submit("simulate", "run", {"fail_times": 1}, max_retries=0).id)
        again = agentq.retry(failed.id, idempotency_key="once")
        replayed = agentq.retry(failed.id, idempotency_key="once")
        with pytest.raises(ConflictError, match="is succeeded"):
            agentq.retry(agentq.wait(agentq.submit("echo", "echo").id).id)
        many = agentq.retry_many(status="failed", plugin="simulate", created_before=again.created_at)

    async def redrive() -> list[str]:
        async with AsyncClient(stack.url, key) as agentq:
            one = await agentq.retry(failed.id)
            bulk = await agentq.retry_many(status=["failed"], created_before=again.created_at, limit=5)
            return [one.retry_of or "", *(e.retry_of or "" for e in bulk)]

    assert (failed.status, again.retry_of, replayed.id) == ("failed", failed.id, again.id)
    assert again.status == "queued"
    assert [e.retry_of for e in many] == [failed.id]
    assert asyncio.run(redrive()) == [failed.id, failed.id]
