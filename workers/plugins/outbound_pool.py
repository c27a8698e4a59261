"""What outbound calls share in a worker: one TLS context, kept HTTP clients, a resolver pool.

An ``httpx.AsyncClient`` built the default way loads the CA bundle into a new SSL
context: some 20 ms of CPU on the event loop, which every execution on that loop waits
out. So the context is built once per process, and each event loop keeps the clients
its calls are done with, per (scheme, address, port, host). A kept client's connection
serves a later call to the same checked address *for the same host* only, never another
host that resolves there: a TLS connection was verified for the name it was opened for,
and it goes on speaking to that server.

A call has a client to itself, so each client holds one connection: httpcore's pool
checks every connection it holds (two system calls each) whenever a request starts or
ends, so a pool shared by hundreds of calls costs the loop more than the calls do. At
most ``MAX_IDLE`` clients are kept, those of the least recently used host closed first;
one idle for ``IDLE_S`` is closed too, with its connection.

Names are looked up on threads of this module's own: the loop's default executor is
shared with the heartbeat and ``asyncio.to_thread``, and a lookup must not queue behind
them. Calls that look up the same name at the same moment share one lookup.
"""

import asyncio
import os
import ssl
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache

import httpx

# Idle clients (so connections) kept per event loop, over all hosts.
MAX_IDLE = 256
# Idle connections are closed before the common 5 s server-side keep-alive timeout, so a
# request seldom goes out on a connection the server is closing.
IDLE_S = 3.0
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=1, keepalive_expiry=IDLE_S)
RESOLVER_THREADS = 4

Key = tuple[str, str, int, str]  # scheme, address (or IP literal), port, host the request names


@cache
def tls_context() -> ssl.SSLContext:
    """This process's TLS context: certifi's CA bundle, certificates and names verified."""
    return httpx.create_ssl_context(trust_env=False)


_resolver: tuple[int, ThreadPoolExecutor] | None = None


def resolver() -> ThreadPoolExecutor:
    """The threads that run ``getaddrinfo`` (a forked child starts its own)."""
    global _resolver
    if _resolver is None or _resolver[0] != os.getpid():
        _resolver = (os.getpid(), ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="agentq-resolve"))
    return _resolver[1]


class LoopClients:
    """The idle clients and the lookups in flight of one event loop; used only from that loop."""

    def __init__(self, new_client: Callable[[], httpx.AsyncClient]) -> None:
        self._new_client = new_client
        # Per key, (idle since, client), the longest idle first; the least recently used key first.
        self._idle: OrderedDict[Key, deque[tuple[float, httpx.AsyncClient]]] = OrderedDict()
        self._count = 0
        self._lookups: dict[tuple[str, int], asyncio.Future[list[str]]] = {}
        self._swept = time.monotonic()

    def idle(self) -> dict[Key, list[httpx.AsyncClient]]:
        """The idle clients kept per key, the least recently used key first."""
        return {key: [client for _, client in kept] for key, kept in self._idle.items()}

    @asynccontextmanager
    async def client(self, key: Key) -> AsyncIterator[httpx.AsyncClient]:
        """A client for ``key`` that no other call uses meanwhile: the one idle the shortest
        time (its connection the likeliest to be open), else a new one."""
        kept = self._idle.get(key)
        if kept:
            client = kept.pop()[1]
            self._count -= 1
            if not kept:
                del self._idle[key]
        else:
            client = self._new_client()
        try:
            yield client
        finally:
            await self._keep(key, client)

    async def _keep(self, key: Key, client: httpx.AsyncClient) -> None:
        now = time.monotonic()
        kept = self._idle.setdefault(key, deque())
        self._idle.move_to_end(key)
        kept.append((now, client))
        self._count += 1
        closing = []
        while self._count > MAX_IDLE:
            closing.append(self._drop_oldest(next(iter(self._idle))))
        if now - self._swept >= IDLE_S:
            self._swept = now
            for k, idle in list(self._idle.items()):
                while idle and now - idle[0][0] > IDLE_S:
                    closing.append(self._drop_oldest(k))
        for old in closing:
            await old.aclose()

    def _drop_oldest(self, key: Key) -> httpx.AsyncClient:
        kept = self._idle[key]
        client = kept.popleft()[1]
        self._count -= 1
        if not kept:
            del self._idle[key]
        return client

    async def lookup(
        self, host: str, port: int, resolve: Callable[[str, int], Awaitable[list[str]]]
    ) -> list[str]:
        """``resolve(host, port)``, shared with the calls that ask for the same one meanwhile."""
        key = (host, port)
        pending = self._lookups.get(key)
        if pending is None:
            pending = self._lookups[key] = asyncio.ensure_future(resolve(host, port))

            def done(future: asyncio.Future[list[str]]) -> None:
                if self._lookups.get(key) is future:
                    del self._lookups[key]
                if not future.cancelled():
                    future.exception()  # retrieved: every caller may have given up waiting

            pending.add_done_callback(done)
        # One caller giving up (its timeout) does not cancel the others' lookup.
        return await asyncio.shield(pending)

    async def aclose(self) -> None:
        """Close the idle clients (their connections with them)."""
        idle, self._idle, self._count = list(self._idle.values()), OrderedDict(), 0
        for kept in idle:
            for _, client in kept:
                await client.aclose()


_loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopClients]" = weakref.WeakKeyDictionary()


def of_running_loop(new_client: Callable[[], httpx.AsyncClient]) -> LoopClients:
    """The running loop's clients; ``new_client`` builds those it does not have yet."""
    loop = asyncio.get_running_loop()
    clients = _loops.get(loop)
    if clients is None:
        clients = _loops[loop] = LoopClients(new_client)
    return clients
