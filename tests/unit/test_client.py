"""``agentq.client``: SSE parsing, problem+json mapping, resuming event streams (httpx.MockTransport)."""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from agentq.client import (
    AgentqConnectionError,
    AgentqHTTPError,
    AsyncClient,
    AuthError,
    Client,
    ConflictError,
    Event,
    NotFoundError,
    RateLimitedError,
    ServerSentEvent,
    SSEDecoder,
    UnavailableError,
    ValidationError,
)
from agentq.remote import parse_params

Handler = Callable[[httpx.Request], httpx.Response]
EXECUTION: dict[str, Any] = {
    "id": "01JEXEC",
    "plugin": "echo",
    "command": "echo",
    "params": {},
    "status": "queued",
    "result": None,
    "error": None,
    "progress": None,
    "attempts": 0,
    "max_retries": 3,
    "priority": 5,
    "timeout_s": 300.0,
    "schedule_id": None,
    "slot_at": None,
    "idempotency_key": None,
    "worker": None,
    "created_at": "2026-11-22T02:26:29.174581Z",
    "started_at": None,
    "finished_at": None,
}


def client(handler: Handler) -> Client:
    return Client("http://agentq.test", "secret", transport=httpx.MockTransport(handler))


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": f"urn:agentq:problem:{title.lower()}", "title": title, "status": status, "detail": detail}
    return httpx.Response(
        status, content=json.dumps(body | extra), headers={"Content-Type": "application/problem+json"}
    )


def decode(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [m for line in text.splitlines() if (m := decoder.feed(line)) is not None]


def frame(seq: int, kind: str, data: dict[str, Any]) -> str:
    body = {"seq": seq, "at": "2026-11-22T02:26:29Z", "kind": kind, "data": data}
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(body)}\n\n"


# -- SSE -----------------------------------------------------------------------------


def test_sse_decoder_joins_data_lines_and_keeps_the_last_id() -> None:
    text = "id: 7\nevent: log\ndata: one\ndata:two\n\n: heartbeat\n\ndata: three\n\n"

    first, second = decode(text)

    assert first == ServerSentEvent(event="log", data="one\ntwo", id="7")
    assert second == ServerSentEvent(event="message", data="three", id="7")


def test_sse_decoder_ignores_comments_unknown_fields_and_empty_events() -> None:
    decoder = SSEDecoder()
    text = ": ping\n\nevent: status\n\nfoo: bar\nretry: 2500\nid: 3\0x\ndata\n\n"

    messages = [m for line in text.splitlines() if (m := decoder.feed(line)) is not None]

    assert messages == [ServerSentEvent(event="message", data="", id=None)]
    assert decoder.retry == 2500


def test_sse_decoder_handles_crlf_lines_from_httpx() -> None:
    body = frame(1, "status", {"status": "queued"}).replace("\n", "\r\n").encode()
    response = httpx.Response(200, content=body)

    decoder = SSEDecoder()
    messages = [m for line in response.iter_lines() if (m := decoder.feed(line)) is not None]

    assert [m.id for m in messages] == ["1"]
    assert json.loads(messages[0].data)["data"] == {"status": "queued"}


# -- problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ValidationError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, ValidationError),
        (429, RateLimitedError),
        (503, UnavailableError),
        (500, AgentqHTTPError),
    ],
)
def test_problem_answers_raise_typed_errors(status: int, kind: type[AgentqHTTPError]) -> None:
    agentq = client(lambda _: problem(status, "Oops", "Fix this."))

    with pytest.raises(kind) as raised:
        agentq.get("01JEXEC")

    assert type(raised.value) is kind
    assert (raised.value.status, raised.value.title, raised.value.detail) == (status, "Oops", "Fix this.")
    assert raised.value.type == "urn:agentq:problem:oops"
    assert str(raised.value) == f"{status} Oops: Fix this."


def test_validation_error_carries_the_field_errors() -> None:
    errors = [{"loc": ["body", "plugin"], "msg": "No worker offers plugin 'nope'.", "type": "unknown_plugin"}]
    agentq = client(lambda _: problem(422, "UnknownPlugin", "No worker offers plugin 'nope'.", errors=errors))

    with pytest.raises(ValidationError) as raised:
        agentq.submit("nope", "x")

    assert raised.value.errors == errors


def test_rate_limited_error_carries_retry_after() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"title": "RateLimited", "status": 429, "detail": "Slow down."},
            headers={"Retry-After": "3"},
        )

    with pytest.raises(RateLimitedError) as raised:
        client(handler).list_executions()

    assert raised.value.retry_after == 3.0


def test_an_error_that_is_not_problem_json_keeps_its_text() -> None:
    agentq = client(lambda _: httpx.Response(502, text="<html>bad gateway</html>"))

    with pytest.raises(UnavailableError) as raised:
        agentq.plugins()

    assert raised.value.title == "Bad Gateway"
    assert raised.value.detail == "<html>bad gateway</html>"


def test_an_unreachable_server_raises_a_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(AgentqConnectionError, match=re.escape("Cannot reach agentq at http://agentq.test")):
        client(refuse).get("01JEXEC")


# -- requests ------------------------------------------------------------------------


def test_config_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTQ_URL", "http://env.test:9000/")
    monkeypatch.setenv("AGENTQ_API_KEY", "from-env")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=EXECUTION)

    Client(transport=httpx.MockTransport(handler)).get("01JEXEC")

    assert str(seen[0].url) == "http://env.test:9000/v1/executions/01JEXEC"
    assert seen[0].headers["Authorization"] == "Bearer from-env"


def test_submit_sends_the_body_and_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=EXECUTION)

    execution = client(handler).submit("echo", "echo", {"a": 1}, priority=9, idempotency_key="k1")

    assert json.loads(seen[0].content) == {
        "plugin": "echo",
        "command": "echo",
        "params": {"a": 1},
        "priority": 9,
    }
    assert seen[0].headers["Idempotency-Key"] == "k1"
    assert execution.id == "01JEXEC"
    assert execution.status == "queued"
    assert not execution.terminal


def test_wait_long_polls_until_terminal() -> None:
    answers = iter(["running", "running", "succeeded"])
    waits: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        waits.append(request.url.params.get("wait"))
        return httpx.Response(200, json=EXECUTION | {"status": next(answers)})

    execution = client(handler).wait("01JEXEC")

    assert execution.status == "succeeded"
    assert execution.terminal
    assert waits == ["30.0", "30.0", "30.0"]


def test_parse_params_reads_json_values_over_params_json() -> None:
    params = parse_params(["n=2", "name=ada", "flags=[1, 2]", "on=true"], '{"n": 1, "keep": "x"}')

    assert params == {"n": 2, "keep": "x", "name": "ada", "flags": [1, 2], "on": True}


# -- resuming event streams ----------------------------------------------------------


class Dropping(httpx.SyncByteStream):
    """A body that sends some bytes, then loses the connection."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __iter__(self) -> Iterator[bytes]:
        yield self.text.encode()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


class AsyncDropping(httpx.AsyncByteStream):
    def __init__(self, text: str) -> None:
        self.text = text

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.text.encode()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def stream_server(*, asynchronous: bool = False) -> tuple[Handler, list[str | None]]:
    """First connection: events 1-3, then a drop. Second: events 3 (again) to 5, the end."""
    resumed_from: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resumed_from.append(request.headers.get("Last-Event-ID"))
        if len(resumed_from) == 1:
            text = (
                ": heartbeat\n\n"
                + frame(1, "status", {"status": "queued"})
                + frame(2, "status", {"status": "running", "attempt": 1})
                + frame(3, "progress", {"percent": 50.0, "message": "half"})
            )
            stream: Any = AsyncDropping(text) if asynchronous else Dropping(text)
            return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=stream)
        text = (
            frame(3, "progress", {"percent": 50.0, "message": "half"})
            + frame(4, "log", {"level": "info", "message": "done"})
            + frame(5, "status", {"status": "succeeded", "attempt": 1})
            + frame(6, "log", {"level": "info", "message": "never read: after the end"})
        )
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, text=text)

    return handler, resumed_from


def test_events_resume_after_a_drop_with_last_event_id() -> None:
    handler, resumed_from = stream_server()

    events = list(client(handler).events("01JEXEC", reconnect_s=0))

    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert resumed_from == [None, "3"]
    assert events[-1].terminal
    assert events[-1].status == "succeeded"
    assert events[3] == Event.model_validate(
        {"seq": 4, "at": "2026-11-22T02:26:29Z", "kind": "log", "data": {"level": "info", "message": "done"}}
    )


def test_async_events_resume_after_a_drop_with_last_event_id() -> None:
    handler, resumed_from = stream_server(asynchronous=True)

    async def follow() -> list[Event]:
        transport = httpx.MockTransport(handler)
        async with AsyncClient("http://agentq.test", "secret", transport=transport) as agentq:
            return [event async for event in agentq.events("01JEXEC", reconnect_s=0)]

    events = asyncio.run(follow())

    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert resumed_from == [None, "3"]


def test_events_give_up_after_repeated_drops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    with pytest.raises(AgentqConnectionError, match="Lost the event stream"):
        list(client(handler).events("01JEXEC", reconnect_s=0, max_reconnects=2))


def test_events_end_when_the_server_closes_a_finished_execution() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, text=": heartbeat\n\n")
        return httpx.Response(200, json=EXECUTION | {"status": "succeeded"})

    assert list(client(handler).events("01JEXEC", last_event_id=9, reconnect_s=0)) == []


def test_events_of_an_unknown_execution_raise_not_found() -> None:
    agentq = client(lambda _: problem(404, "ExecutionNotFound", "No execution with id '01NOPE'."))

    with pytest.raises(NotFoundError, match="No execution"):
        list(agentq.events("01NOPE"))
