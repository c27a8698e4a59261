"""``GET /v1/executions/{id}/events``: the event log as Server-Sent Events, live and resumable."""

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from agentq.client import SSEDecoder
from tests.integration.conftest import ADMIN_KEY, Stack, bearer
from tests.integration.processes import Proc, child_env, free_port, wait_until

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}


@dataclass
class Message:
    id: int
    event: str
    data: dict[str, Any]
    lines: list[str]


def stream(
    base_url: str,
    execution_id: str,
    *,
    last_event_id: int | None = None,
    key: str = ADMIN_KEY,
    stop_after: int | None = None,
    comments: list[str] | None = None,
    into: list[Message] | None = None,
) -> list[Message]:
    """Read an event stream to its end, or close the connection after ``stop_after`` events.

    Events go to ``into`` (and comments to ``comments``) as they arrive.
    """
    headers = {**bearer(key), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    got: list[Message] = [] if into is None else into
    with httpx.stream(
        "GET", f"{base_url}/v1/executions/{execution_id}/events", headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        decoder, lines = SSEDecoder(), []
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith(":") and comments is not None:
                comments.append(line)
            message = decoder.feed(line)
            if message is None:
                continue
            assert message.id is not None
            got.append(Message(int(message.id), message.event, json.loads(message.data), lines))
            lines = []
            if stop_after is not None and len(got) == stop_after:
                break
    return got


def seqs(messages: list[Message]) -> list[int]:
    return [m.id for m in messages]


def statuses(messages: list[Message]) -> list[str]:
    return [m.data["data"]["status"] for m in messages if m.event == "status"]


def test_events_deliver_progress_and_log_lines_of_a_run_in_order(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 1.5, "progress_steps": 5, "mode": "async"})

    messages = stream(stack.url, created["id"])

    assert seqs(messages) == list(range(1, len(messages) + 1))
    assert all(m.data["seq"] == m.id and m.data["kind"] == m.event for m in messages)
    assert statuses(messages) == ["queued", "running", "succeeded"]
    assert messages[0].event == "status"
    assert messages[-1].event == "status"
    progress = [m.data["data"] for m in messages if m.event == "progress"]
    assert [p["percent"] for p in progress] == [20.0, 40.0, 60.0, 80.0, 100.0]
    assert [p["message"] for p in progress] == [f"step {i} of 5" for i in range(1, 6)]
    logs = [m.data["data"] for m in messages if m.event == "log"]
    assert [line["message"] for line in logs] == [f"step {i} of 5 done" for i in range(1, 6)]
    assert {line["level"] for line in logs} == {"info"}
    # Each log line follows the progress report it belongs to.
    kinds = [m.event for m in messages[2:-1]]
    assert kinds == ["progress", "log"] * 5
    running = messages[1].data["data"]
    assert running["attempt"] == 1
    assert running["worker"]
    assert messages[-1].data["data"] == {"status": "succeeded", "attempt": 1}
    # The raw frames: `id:` is the seq, `event:` the kind.
    assert f"id: {messages[-1].id}" in messages[-1].lines
    assert "event: status" in messages[-1].lines


def test_events_resume_after_a_dropped_connection_see_every_event_once(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 2, "progress_steps": 8, "mode": "async"})

    first = stream(stack.url, created["id"], stop_after=4)  # then the connection drops
    rest = stream(stack.url, created["id"], last_event_id=first[-1].id)

    seen = seqs(first) + seqs(rest)
    assert seen == list(range(1, len(seen) + 1))
    assert statuses(rest)[-1] == "succeeded"
    # A full replay, now that it is over, is the same log.
    replay = stream(stack.url, created["id"])
    assert [(m.id, m.data) for m in replay] == [(m.id, m.data) for m in first + rest]


def test_events_resumed_after_the_end_close_at_once(stack: Stack) -> None:
    created = stack.submit("echo", "echo", {"hello": "world"})
    stack.wait(created["id"])
    full = stream(stack.url, created["id"])

    started = time.monotonic()
    after_end = stream(stack.url, created["id"], last_event_id=full[-1].id)

    assert statuses(full) == ["queued", "running", "succeeded"]
    assert after_end == []
    assert time.monotonic() - started < 5


def test_events_of_a_cancelled_run_end_with_cancelled(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 30, "progress_steps": 30, "mode": "async"})
    got: list[Message] = []
    reader = threading.Thread(target=lambda: stream(stack.url, created["id"], into=got))
    reader.start()
    wait_until(lambda: any(m.event == "progress" for m in got), 20, "the first progress event")

    stack.client.post(f"/v1/executions/{created['id']}/cancel")
    reader.join(20)

    assert not reader.is_alive()
    assert statuses(got) == ["queued", "running", "cancelled"]
    assert got[-1].data["data"]["error"]["type"] == "cancelled"
    assert seqs(got) == list(range(1, len(got) + 1))


def test_event_numbers_stay_gap_free_when_cancel_races_finish(stack: Stack) -> None:
    runs = [stack.submit("simulate", "run", {"sleep_s": 0.3, "progress_steps": 3}) for _ in range(12)]
    time.sleep(0.3)
    for i, run in enumerate(runs):
        time.sleep(0.02 * (i % 4))
        stack.client.post(f"/v1/executions/{run['id']}/cancel")  # 200, or 409 when it won the race

    for run in runs:
        done = stack.wait(run["id"])
        messages = stream(stack.url, run["id"])
        assert seqs(messages) == list(range(1, len(messages) + 1)), run["id"]
        ends = [s for s in statuses(messages) if s in TERMINAL]
        assert ends == [done["status"]]
        assert statuses(messages)[-1] == done["status"]


def test_many_watchers_each_see_the_whole_run(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 1, "progress_steps": 4, "mode": "async"})
    results: list[list[int]] = []

    def watch() -> None:
        results.append(seqs(stream(stack.url, created["id"])))

    watchers = [threading.Thread(target=watch) for _ in range(25)]
    for w in watchers:
        w.start()
    for w in watchers:
        w.join(30)

    assert len(results) == 25
    assert all(r == results[0] and r == list(range(1, len(r) + 1)) for r in results)
    assert len(results[0]) == 2 + 4 * 2 + 1


@pytest.fixture(scope="module")
def chatty_api(stack: Stack) -> Iterator[str]:
    """A second API process on the same services, with a heartbeat every 0.2 s."""
    port = free_port()
    env = child_env(stack.env, AGENTQ_EVENTS_HEARTBEAT_S="0.2")
    argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("api-heartbeat", argv, env, stack.log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, 30, "the second API")
        yield url
    finally:
        proc.stop()


def test_idle_stream_gets_heartbeats_then_ends_on_cancel(stack: Stack, chatty_api: str) -> None:
    # The parked plugin's queue has no worker: the execution stays queued.
    created = stack.submit("parked", "hit", {"path": "/dev/null"})
    comments: list[str] = []
    got: list[Message] = []
    reader = threading.Thread(target=lambda: stream(chatty_api, created["id"], comments=comments, into=got))
    reader.start()
    wait_until(lambda: len(comments) >= 3, 10, "three heartbeats")

    stack.client.post(f"/v1/executions/{created['id']}/cancel")  # through the other API process
    reader.join(10)

    assert not reader.is_alive()
    assert statuses(got) == ["queued", "cancelled"]
    assert set(comments) == {": heartbeat"}
