"""The webhook sender's HTTP/1.1 client: lean, since every delivery is a request.

A request through httpx costs the sender about 1 ms of CPU (its client, httpcore's pool
and anyio's streams); here one costs a few dozen microseconds. Responses are parsed by
httptools (llhttp, the parser of Node.js and of uvicorn); requests are only ever the
POSTs this module writes, from a URL that httpx normalised.

Connections are kept per origin (scheme, host, port) on the sender's loop. The outbound
guard (``workers/plugins/outbound.check_url``: private addresses refused unless allowed,
the name resolved and the address pinned) runs when a connection is opened: a kept
connection goes on speaking to the address that was checked, so a later DNS answer
cannot move it. A connection serves its origin only, and one request at a time; one
idle for ``IDLE_S`` is closed. No redirect is followed: a 3xx is an answer like others.
"""

import asyncio
import base64
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import httptools
import httpx

from agentq.core.errors import PermanentError, RetryLater
from agentq.core.settings import settings
from workers.plugins import outbound, outbound_pool

# Idle connections are closed before the common 5 s server-side keep-alive timeout, so a
# request seldom goes out on a connection the server is closing.
IDLE_S = outbound_pool.IDLE_S
MAX_IDLE_PER_ORIGIN = 256
RESPONSE_KEPT = 1024  # bytes of a response body kept: what an attempt records
USER_AGENT = "agentq"

Origin = tuple[str, str, int]  # scheme, host as the URL names it, port


@dataclass(frozen=True)
class Target:
    """A webhook URL, parsed once: where to connect and the start of each request."""

    url: httpx.URL
    origin: Origin
    head: bytes  # request line, Host, User-Agent and any credentials the URL carries


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # the first RESPONSE_KEPT bytes


@lru_cache(maxsize=4096)
def target(url: str) -> Target:
    """``url`` parsed and normalised by httpx; raises ``PermanentError`` if it cannot be sent to."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise PermanentError(f"Cannot send to {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise PermanentError(f"Cannot send to {url}: only absolute http and https URLs are allowed")
    path, host = parsed.raw_path, parsed.raw_host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    netloc = host if parsed.port is None else host + b":%d" % port
    if b":" in host:  # an IPv6 literal
        netloc = b"[" + host + b"]" + (b"" if parsed.port is None else b":%d" % port)
    if any(b <= 0x20 or b == 0x7F for b in path + netloc):  # httpx escapes these: never sent raw
        raise PermanentError(f"Cannot send to {url!r}: it holds whitespace or control characters")
    head = b"POST " + path + b" HTTP/1.1\r\nHost: " + netloc + b"\r\nUser-Agent: " + USER_AGENT.encode()
    if parsed.userinfo:  # as httpx would: the URL's credentials, as Basic auth
        credentials = base64.b64encode(f"{parsed.username}:{parsed.password}".encode())
        head += b"\r\nAuthorization: Basic " + credentials
    return Target(parsed, (parsed.scheme, host.decode("ascii"), port), head + b"\r\n")


def request(target: Target, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of a POST of ``body``; ``headers`` are the sender's own (never a caller's)."""
    lines = [target.head, b"Content-Length: %d\r\n" % len(body)]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
    lines += [b"\r\n", body]
    return b"".join(lines)


class Connection(asyncio.Protocol):
    """One connection: a request is written, its response parsed as it comes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.body = bytearray()
        self.size = 0
        self.headers_done = False
        self.reusable = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing was asked: the server is not speaking HTTP to us
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(RetryLater(f"the receiver's answer is not HTTP/1.1 ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and self.headers_done:  # a body that ends with the connection
            self._answer(reusable=False)
        else:
            why = f": {exc}" if exc else ""
            self._fail(ConnectionResetError(f"the receiver closed the connection{why}"))

    # -- httptools' callbacks
    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, chunk: bytes) -> None:
        if len(self.body) < RESPONSE_KEPT:
            self.body += chunk[: RESPONSE_KEPT - len(self.body)]
        self.size += len(chunk)
        if self.size > settings.outbound_max_bytes:  # not read to its end: the connection goes
            self._answer(reusable=False)
            self.close()

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:  # informational (103 Early Hints…): wait on
            self.headers_done = False
            return
        self._answer(reusable=self.parser.should_keep_alive())

    # -- the sender's side
    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def exchange(self, data: bytes) -> Answer:
        assert self.transport is not None
        assert self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.body, self.size, self.headers_done, self.reusable = bytearray(), 0, False, False
        self.transport.write(data)
        return await self.waiter

    def _answer(self, reusable: bool) -> None:
        waiter, self.waiter, self.headers_done = self.waiter, None, False
        if waiter is None:  # an answer nobody asked for: this connection is not to be trusted
            self.close()
            return
        self.reusable = reusable
        if not waiter.done():
            waiter.set_result(Answer(self.parser.get_status_code(), bytes(self.body)))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Pool:
    """This loop's connections, idle ones kept per origin (used from that loop only)."""

    def __init__(self) -> None:
        self.idle: dict[Origin, deque[Connection]] = {}
        self.opened = 0  # connections opened so far (each after the guard's check)
        self._swept = time.monotonic()

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeout_s: float) -> Answer:
        """POST ``body`` to ``url`` and read the answer within ``timeout_s``, the guard's
        lookup and the connection included. Refused URLs raise ``PermanentError``; network
        failures and timeouts ``RetryLater``."""
        to = target(url)
        data = request(to, headers, body)
        connection = None
        try:
            async with asyncio.timeout(timeout_s):
                connection = self._idle(to.origin)
                answer = None
                if connection is not None:
                    try:
                        answer = await connection.exchange(data)
                    except ConnectionError:  # closed by the receiver while idle, unanswered
                        connection = None
                if connection is None:
                    connection = await self._connect(to)
                if answer is None:
                    answer = await connection.exchange(data)
        except TimeoutError:
            raise RetryLater(f"Sending to {url} took longer than {timeout_s:g}s") from None
        except (OSError, RetryLater) as exc:
            raise RetryLater(f"Sending to {url} failed: {_describe(exc)}") from None
        finally:
            if connection is not None and not connection.reusable:
                connection.close()
        self._keep(to.origin, connection)
        return answer

    def _idle(self, origin: Origin) -> Connection | None:
        """The connection of ``origin`` idle the shortest time (the likeliest to be open)."""
        kept = self.idle.get(origin)
        now = time.monotonic()
        while kept:
            connection = kept.pop()
            if connection.open and now - connection.idle_since < IDLE_S:
                return connection
            connection.close()
        return None

    def _keep(self, origin: Origin, connection: Connection) -> None:
        if not connection.reusable or not connection.open:
            return
        connection.idle_since = now = time.monotonic()
        kept = self.idle.setdefault(origin, deque())
        kept.append(connection)
        while len(kept) > MAX_IDLE_PER_ORIGIN or now - kept[0].idle_since >= IDLE_S:
            kept.popleft().close()
        if now - self._swept >= IDLE_S:  # the origins no longer sent to
            self._swept = now
            for other, idle in list(self.idle.items()):
                while idle and now - idle[0].idle_since >= IDLE_S:
                    idle.popleft().close()
                if not idle:
                    del self.idle[other]

    async def _connect(self, to: Target) -> Connection:
        """A new connection, after the guard's check, to the very address checked."""
        addresses = await outbound.check_url(to.url) or [to.origin[1]]  # [] for an IP literal
        scheme, host, port = to.origin
        tls = outbound_pool.tls_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        for i, address in enumerate(addresses):
            try:
                _, connection = await loop.create_connection(
                    Connection, address, port, ssl=tls, server_hostname=host if tls else None
                )
            except OSError:
                if i + 1 < len(addresses):
                    continue  # the next address, as a resolving client would
                raise
            self.opened += 1
            return connection
        raise AssertionError("unreachable: the last address returns or raises")

    def close(self) -> None:
        for kept in self.idle.values():
            for connection in kept:
                connection.close()
        self.idle.clear()


def _describe(exc: Exception) -> str:
    if isinstance(exc, RetryLater):
        return exc.detail
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
