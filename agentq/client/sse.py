"""Server-Sent Events: decoding a stream and resuming it after the last event seen."""

import json
from dataclasses import dataclass

from agentq.client.errors import AgentqClientError, AgentqConnectionError
from agentq.client.models import Event


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
