"""A Python client for the agentq HTTP API: ``Client`` (sync) and ``AsyncClient``.

    from agentq.client import Client

    with Client() as agentq:  # AGENTQ_URL, AGENTQ_API_KEY
        execution = agentq.submit("simulate", "run", {"sleep_s": 2, "progress_steps": 4})
        for event in agentq.events(execution.id):  # history first, then live
            print(event.seq, event.kind, event.data)
        print(agentq.get(execution.id).result)

Answers are typed (``Execution``, ``Event``, ``Schedule``, ...); unknown fields a newer
server sends are kept. Error answers (``application/problem+json``) raise typed errors:

    AgentqClientError
     ├── AgentqConnectionError   the API cannot be reached
     └── AgentqHTTPError         the API answered with an error: status, title, detail, type, errors
          ├── AuthError          401, 403
          ├── NotFoundError      404
          ├── ConflictError      409
          ├── ValidationError    400, 413, 422
          ├── RateLimitedError   429 (retry_after)
          └── UnavailableError   502, 503, 504 (retry_after)
"""

import asyncio
import email.utils
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
# One long-poll request waits this long at most; the server's own cap (AGENTQ_MAX_WAIT_S) is 60.
LONG_POLL_S = 30.0
# A stream with nothing on it for this long is taken as dropped and resumed; the server
# sends a heartbeat comment every 15 s.
STREAM_READ_TIMEOUT_S = 60.0


# -- errors ------------------------------------------------------------------------


class AgentqClientError(Exception):
    """Base of the client's errors."""


class AgentqConnectionError(AgentqClientError):
    """The API could not be reached (refused, reset, timed out)."""


class AgentqHTTPError(AgentqClientError):
    """The API answered with an error; the fields come from its problem+json body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors = errors or []
        self.retry_after = retry_after
        self.body = body or {}


class AuthError(AgentqHTTPError):
    """No key, an unknown or revoked key, or a key that may not do this."""


class NotFoundError(AgentqHTTPError):
    pass


class ConflictError(AgentqHTTPError):
    """E.g. cancelling a finished execution, or an Idempotency-Key reused for another request."""


class ValidationError(AgentqHTTPError):
    """The request was invalid; ``errors`` names the fields."""


class RateLimitedError(AgentqHTTPError):
    """Too many requests; try again after ``retry_after`` seconds."""


class UnavailableError(AgentqHTTPError):
    """A dependency of the API is down; try again after ``retry_after`` seconds."""


_ERRORS: dict[int, type[AgentqHTTPError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: RateLimitedError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> AgentqHTTPError:
    """The typed error for an error answer; its body must have been read."""
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        body = parsed
    status = response.status_code
    title = str(body.get("title") or response.reason_phrase or f"HTTP {status}")
    # Not problem+json (a proxy's error page, say): the start of the text says what happened.
    detail = str(body.get("detail") or (response.text.strip()[:500] if not body else "") or title)
    errors = body.get("errors")
    cls = _ERRORS.get(status, AgentqHTTPError)
    return cls(
        status,
        title,
        detail,
        type=str(body.get("type") or "about:blank"),
        errors=errors if isinstance(errors, list) else None,
        retry_after=_retry_after(response.headers.get("Retry-After")),
        body=body,
    )


# -- results -----------------------------------------------------------------------


class _Model(BaseModel):
    # Fields that a newer server adds are kept rather than refused.
    model_config = ConfigDict(extra="allow")


class ErrorInfo(_Model):
    type: str
    message: str


class Progress(_Model):
    percent: float
    message: str = ""


class Execution(_Model):
    id: str
    plugin: str
    command: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: str
    result: Any = None
    error: ErrorInfo | None = None
    progress: Progress | None = None
    attempts: int = 0
    max_retries: int = 0
    priority: int = 5
    timeout_s: float = 0
    schedule_id: str | None = None
    slot_at: datetime | None = None
    idempotency_key: str | None = None
    worker: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        """Succeeded, failed, timed out or cancelled: it never changes again."""
        return self.status in TERMINAL


class ExecutionPage(_Model):
    executions: list[Execution]
    next_cursor: str | None = None


class Event(_Model):
    """One entry of an execution's event log: a status change, a progress update or a log line."""

    seq: int
    at: datetime
    kind: str  # "status", "progress" or "log"
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def status(self) -> str | None:
        return str(self.data["status"]) if self.kind == "status" and "status" in self.data else None

    @property
    def terminal(self) -> bool:
        """The last event of the execution."""
        return self.status in TERMINAL


class CommandInfo(_Model):
    name: str
    description: str = ""
    params_schema: dict[str, Any] = Field(default_factory=dict)
    result_type: str = ""


class PluginInfo(_Model):
    name: str
    description: str = ""
    version: str = ""
    queue: str = ""
    commands: list[CommandInfo] = Field(default_factory=list)


class Schedule(_Model):
    id: str
    name: str
    plugin: str
    command: str
    params: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = None
    interval_s: float | None = None
    timezone: str = "UTC"
    enabled: bool = True
    missed_policy: str = "skip"
    overlap_policy: str = "allow"
    priority: int = 5
    timeout_s: float | None = None
    max_retries: int | None = None
    jitter_s: float | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    next_fire_times: list[datetime] = Field(default_factory=list)


class SchedulePage(_Model):
    schedules: list[Schedule]
    next_cursor: str | None = None


class ApiKey(_Model):
    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKey):
    key: str  # the secret, shown this once


class Submission(_Model):
    """One item of ``submit_batch``."""

    plugin: str
    command: str
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    idempotency_key: str | None = None


# -- Server-Sent Events ------------------------------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Turns the lines of a ``text/event-stream`` into events, as browsers do (WHATWG HTML 9.2.6).

    Feed it lines without their line breaks; a blank line ends an event. ``retry`` holds
    the reconnection delay the server asked for, in milliseconds.
    """

    def __init__(self) -> None:
        self.retry: int | None = None
        self._last_id: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # a comment: the server's heartbeat
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(event=event or "message", data="\n".join(data), id=self._last_id)


def parse_event(message: ServerSentEvent) -> Event | None:
    """An agentq event from an SSE message; None for messages of other kinds."""
    if message.event not in ("status", "progress", "log"):
        return None
    return Event.model_validate(json.loads(message.data))


class _Resume:
    """Where a stream of events resumes after a dropped connection."""

    def __init__(self, last_event_id: int | None, reconnect_s: float, max_reconnects: int) -> None:
        self.last = last_event_id
        self.delay_s = reconnect_s
        self.max_reconnects = max_reconnects
        self.failures = 0

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.last is not None:
            headers["Last-Event-ID"] = str(self.last)
        return headers

    def seen(self, event: Event) -> bool:
        """Record an event; False for one already delivered."""
        if self.last is not None and event.seq <= self.last:
            return False
        self.last = event.seq
        self.failures = 0
        return True

    def dropped(self, exc: Exception, url: str) -> float:
        """The delay before reconnecting, or raise when the connection keeps failing."""
        self.failures += 1
        if self.failures > self.max_reconnects:
            if isinstance(exc, AgentqClientError):
                raise exc
            raise AgentqConnectionError(f"Lost the event stream of {url}: {exc}") from exc
        return self.delay_s


class _StreamEnded(Exception):
    """The server closed the stream before the execution's terminal event."""


# -- the clients -------------------------------------------------------------------


def _config(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("AGENTQ_URL") or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get("AGENTQ_API_KEY", "")
    headers = {"Accept": "application/json", "User-Agent": "agentq-client/1"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _submission(
    plugin: str,
    command: str,
    params: Mapping[str, Any] | None,
    priority: int | None,
    timeout_s: float | None,
    max_retries: int | None,
) -> dict[str, Any]:
    return _drop_none(
        {
            "plugin": plugin,
            "command": command,
            "params": dict(params or {}),
            "priority": priority,
            "timeout_s": timeout_s,
            "max_retries": max_retries,
        }
    )


def _batch(items: Iterable[Submission | Mapping[str, Any]]) -> dict[str, Any]:
    executions = [
        (item if isinstance(item, Submission) else Submission.model_validate(item)).model_dump(
            exclude_none=True, exclude_unset=False
        )
        for item in items
    ]
    return {"executions": executions}


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_from_response(response)
    return response


def _connection_error(base: str, exc: httpx.TransportError) -> AgentqConnectionError:
    return AgentqConnectionError(f"Cannot reach agentq at {base}: {exc or type(exc).__name__}")


class Client:
    """The agentq API over HTTP. ``url`` and ``api_key`` default to AGENTQ_URL and AGENTQ_API_KEY."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, headers = _config(url, api_key)
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=_drop_none(params or {}),
                headers=headers,
                timeout=timeout_s or self.timeout_s,
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        return _check(response)

    # -- executions

    def submit(
        self,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        priority: int | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        """Queue an execution; the same ``idempotency_key`` again returns the first one."""
        body = _submission(plugin, command, params, priority, timeout_s, max_retries)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._request("POST", "/v1/executions", json=body, headers=headers)
        return Execution.model_validate(response.json())

    def submit_batch(self, items: Iterable[Submission | Mapping[str, Any]]) -> list[Execution]:
        """Queue up to 1,000 executions at once; answered in the same order."""
        response = self._request("POST", "/v1/executions/batch", json=_batch(items))
        return ExecutionPage.model_validate(response.json()).executions

    def get(self, execution_id: str, *, wait_s: float = 0) -> Execution:
        """An execution; with ``wait_s``, as soon as it is terminal or after that many seconds."""
        response = self._request(
            "GET",
            f"/v1/executions/{execution_id}",
            params={"wait": wait_s or None},
            timeout_s=self.timeout_s + wait_s,
        )
        return Execution.model_validate(response.json())

    def wait(self, execution_id: str, timeout_s: float | None = None) -> Execution:
        """The execution once terminal (long-polling), or as it is when ``timeout_s`` runs out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = LONG_POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
            execution = self.get(execution_id, wait_s=min(LONG_POLL_S, left))
            if execution.terminal or (deadline is not None and time.monotonic() >= deadline):
                return execution

    def list_executions(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        schedule_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """A page of executions, newest first; pass ``next_cursor`` as ``cursor`` for the next."""
        params = {
            "status": status,
            "plugin": plugin,
            "schedule_id": schedule_id,
            "limit": limit,
            "cursor": cursor,
        }
        return ExecutionPage.model_validate(self._request("GET", "/v1/executions", params=params).json())

    def cancel(self, execution_id: str) -> Execution:
        """Cancel a queued or running execution."""
        response = self._request("POST", f"/v1/executions/{execution_id}/cancel")
        return Execution.model_validate(response.json())

    def events(
        self,
        execution_id: str,
        *,
        last_event_id: int | None = None,
        reconnect_s: float = 1.0,
        max_reconnects: int = 10,
    ) -> Iterator[Event]:
        """The execution's events: its history, then live ones, ending with the terminal status.

        A dropped connection is resumed after ``reconnect_s`` with ``Last-Event-ID``, so
        every event is delivered once; ``max_reconnects`` failures in a row raise.
        """
        path = f"/v1/executions/{execution_id}/events"
        resume = _Resume(last_event_id, reconnect_s, max_reconnects)
        timeout = httpx.Timeout(self.timeout_s, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                with self._http.stream("GET", path, headers=resume.headers(), timeout=timeout) as response:
                    if response.is_error:
                        response.read()
                        raise error_from_response(response)
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        message = decoder.feed(line)
                        if decoder.retry is not None:
                            resume.delay_s = decoder.retry / 1000
                        event = parse_event(message) if message else None
                        if event is None or not resume.seen(event):
                            continue
                        yield event
                        if event.terminal:
                            return
                # Closed without the terminal event: the server is restarting, or every
                # event was delivered before (a terminal execution resumed past its end).
                if self.get(execution_id).terminal:
                    return
                delay_s = resume.dropped(_StreamEnded("the server closed the stream"), self.url + path)
            except (httpx.TransportError, UnavailableError) as exc:
                delay_s = resume.dropped(exc, self.url + path)
            time.sleep(delay_s)

    # -- plugins, schedules, keys

    def plugins(self) -> list[PluginInfo]:
        """What the workers offer: plugins, commands and the JSON Schema of their params."""
        body = self._request("GET", "/v1/plugins").json()
        return [PluginInfo.model_validate(p) for p in body["plugins"]]

    def create_schedule(
        self,
        name: str,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Schedule:
        """A periodic agent; give ``cron`` or ``interval_s`` (and optionally ``timezone``, ...)."""
        body = {"name": name, "plugin": plugin, "command": command, "params": dict(params or {})}
        response = self._request("POST", "/v1/schedules", json=body | _drop_none(fields))
        return Schedule.model_validate(response.json())

    def list_schedules(self, *, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        response = self._request("GET", "/v1/schedules", params={"limit": limit, "cursor": cursor})
        return SchedulePage.model_validate(response.json())

    def get_schedule(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(self._request("GET", f"/v1/schedules/{schedule_id}").json())

    def update_schedule(self, schedule_id: str, **changes: Any) -> Schedule:
        """Change only the fields given."""
        response = self._request("PATCH", f"/v1/schedules/{schedule_id}", json=changes)
        return Schedule.model_validate(response.json())

    def delete_schedule(self, schedule_id: str) -> None:
        self._request("DELETE", f"/v1/schedules/{schedule_id}")

    def run_schedule(self, schedule_id: str) -> Execution:
        """Fire a schedule now."""
        return Execution.model_validate(self._request("POST", f"/v1/schedules/{schedule_id}/run").json())

    def create_key(self, name: str) -> ApiKeyCreated:
        """A new API key (admin key only); its secret is in this answer only."""
        return ApiKeyCreated.model_validate(self._request("POST", "/v1/keys", json={"name": name}).json())

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey.model_validate(k) for k in self._request("GET", "/v1/keys").json()["keys"]]

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"/v1/keys/{key_id}")


class AsyncClient:
    """``Client`` for asyncio: the same methods, awaited; ``events`` is an async iterator."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, headers = _config(url, api_key)
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=_drop_none(params or {}),
                headers=headers,
                timeout=timeout_s or self.timeout_s,
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        return _check(response)

    async def submit(
        self,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        priority: int | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        body = _submission(plugin, command, params, priority, timeout_s, max_retries)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._request("POST", "/v1/executions", json=body, headers=headers)
        return Execution.model_validate(response.json())

    async def submit_batch(self, items: Iterable[Submission | Mapping[str, Any]]) -> list[Execution]:
        response = await self._request("POST", "/v1/executions/batch", json=_batch(items))
        return ExecutionPage.model_validate(response.json()).executions

    async def get(self, execution_id: str, *, wait_s: float = 0) -> Execution:
        response = await self._request(
            "GET",
            f"/v1/executions/{execution_id}",
            params={"wait": wait_s or None},
            timeout_s=self.timeout_s + wait_s,
        )
        return Execution.model_validate(response.json())

    async def wait(self, execution_id: str, timeout_s: float | None = None) -> Execution:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = LONG_POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
            execution = await self.get(execution_id, wait_s=min(LONG_POLL_S, left))
            if execution.terminal or (deadline is not None and time.monotonic() >= deadline):
                return execution

    async def list_executions(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        schedule_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        params = {
            "status": status,
            "plugin": plugin,
            "schedule_id": schedule_id,
            "limit": limit,
            "cursor": cursor,
        }
        response = await self._request("GET", "/v1/executions", params=params)
        return ExecutionPage.model_validate(response.json())

    async def cancel(self, execution_id: str) -> Execution:
        response = await self._request("POST", f"/v1/executions/{execution_id}/cancel")
        return Execution.model_validate(response.json())

    async def events(
        self,
        execution_id: str,
        *,
        last_event_id: int | None = None,
        reconnect_s: float = 1.0,
        max_reconnects: int = 10,
    ) -> AsyncIterator[Event]:
        path = f"/v1/executions/{execution_id}/events"
        resume = _Resume(last_event_id, reconnect_s, max_reconnects)
        timeout = httpx.Timeout(self.timeout_s, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                async with self._http.stream(
                    "GET", path, headers=resume.headers(), timeout=timeout
                ) as response:
                    if response.is_error:
                        await response.aread()
                        raise error_from_response(response)
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
                        message = decoder.feed(line)
                        if decoder.retry is not None:
                            resume.delay_s = decoder.retry / 1000
                        event = parse_event(message) if message else None
                        if event is None or not resume.seen(event):
                            continue
                        yield event
                        if event.terminal:
                            return
                if (await self.get(execution_id)).terminal:
                    return
                delay_s = resume.dropped(_StreamEnded("the server closed the stream"), self.url + path)
            except (httpx.TransportError, UnavailableError) as exc:
                delay_s = resume.dropped(exc, self.url + path)
            await asyncio.sleep(delay_s)

    async def plugins(self) -> list[PluginInfo]:
        body = (await self._request("GET", "/v1/plugins")).json()
        return [PluginInfo.model_validate(p) for p in body["plugins"]]

    async def create_schedule(
        self,
        name: str,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Schedule:
        body = {"name": name, "plugin": plugin, "command": command, "params": dict(params or {})}
        response = await self._request("POST", "/v1/schedules", json=body | _drop_none(fields))
        return Schedule.model_validate(response.json())

    async def list_schedules(self, *, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        response = await self._request("GET", "/v1/schedules", params={"limit": limit, "cursor": cursor})
        return SchedulePage.model_validate(response.json())

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate((await self._request("GET", f"/v1/schedules/{schedule_id}")).json())

    async def update_schedule(self, schedule_id: str, **changes: Any) -> Schedule:
        response = await self._request("PATCH", f"/v1/schedules/{schedule_id}", json=changes)
        return Schedule.model_validate(response.json())

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._request("DELETE", f"/v1/schedules/{schedule_id}")

    async def run_schedule(self, schedule_id: str) -> Execution:
        response = await self._request("POST", f"/v1/schedules/{schedule_id}/run")
        return Execution.model_validate(response.json())

    async def create_key(self, name: str) -> ApiKeyCreated:
        response = await self._request("POST", "/v1/keys", json={"name": name})
        return ApiKeyCreated.model_validate(response.json())

    async def list_keys(self) -> list[ApiKey]:
        body = (await self._request("GET", "/v1/keys")).json()
        return [ApiKey.model_validate(k) for k in body["keys"]]

    async def revoke_key(self, key_id: str) -> None:
        await self._request("DELETE", f"/v1/keys/{key_id}")
