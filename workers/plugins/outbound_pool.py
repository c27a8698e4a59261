"""What outbound calls share in a worker: one TLS context, kept HTTP clients, a resolver pool.

An ``httpx.AsyncClient`` built the default way loads the CA bundle into a new SSL
context: some 20 ms of CPU on the event loop, which every execution on that loop waits
out. So the context is built once per process, and each event loop keeps clients per
(scheme, address, port, host). Their pooled connections serve later calls to the same
checked address *for the same host* only, never another host that resolves there: a TLS
connection was verified for the name it was opened for, and it goes on speaking to that
server. The clients of at most ``KEPT`` keys are kept, the least recently used closed
first; a client left idle past ``IDLE_S`` is closed too, with its connections.

Names are looked up on threads of this module's own: the loop's default executor is
shared with the heartbeat and ``asyncio.to_thread``, and a lookup must not queue behind
them. Calls that look up the same name at the same moment share one lookup.
"""

import asyncio
import os
import ssl
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache

import httpx

# Hosts (keys) whose clients are kept per event loop: a worker calling many keeps the busiest.
KEPT = 64
# Calls one client carries at once; more calls to the same key get more clients. httpcore's
# pool scans all its requests and connections whenever one starts or ends, so a pool
# carrying a thousand calls would cost the loop far more than a few pools of 32.
PER_CLIENT = 32
# Idle connections are closed before the common 5 s server-side keep-alive timeout, so a
# request seldom goes out on a connection the server is closing.
IDLE_S = 3.0
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=PER_CLIENT, keepalive_expiry=IDLE_S)
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


@dataclass(eq=False)
class _Client:
    client: httpx.AsyncClient
    used: float
    users: int = 0
    kept: bool = True

    async def drop(self) -> None:
        """No longer handed out; closed now if idle, else when its last user is done."""
        self.kept = False
        if not self.users:
            await self.client.aclose()


class LoopClients:
    """The clients and lookups in flight of one event loop; used only from that loop."""

    def __init__(self, new_client: Callable[[], httpx.AsyncClient]) -> None:
        self._new_client = new_client
        self._kept: OrderedDict[Key, list[_Client]] = OrderedDict()  # least recently used first
        self._lookups: dict[tuple[str, int], asyncio.Future[list[str]]] = {}
        self._swept = time.monotonic()

    def kept(self) -> dict[Key, list[httpx.AsyncClient]]:
        """The clients kept per key, the least recently used key first."""
        return {key: [c.client for c in clients] for key, clients in self._kept.items()}

    @asynccontextmanager
    async def client(self, key: Key) -> AsyncIterator[httpx.AsyncClient]:
        """A client for ``key`` with room for one more call."""
        now = time.monotonic()
        clients = self._kept.pop(key, [])
        self._kept[key] = clients
        chosen = next((c for c in clients if c.users < PER_CLIENT), None)
        if chosen is None:
            chosen = _Client(self._new_client(), now)
            clients.append(chosen)
        chosen.users += 1
        try:
            await self._trim(now)
            yield chosen.client
        finally:
            chosen.users -= 1
            chosen.used = time.monotonic()
            if not chosen.kept and not chosen.users:
                await chosen.client.aclose()

    async def _trim(self, now: float) -> None:
        dropped = [c for _ in range(len(self._kept) - KEPT) for c in self._kept.popitem(last=False)[1]]
        if now - self._swept >= IDLE_S:
            self._swept = now
            for key, clients in list(self._kept.items()):
                idle = [c for c in clients if not c.users and now - c.used > IDLE_S]
                dropped += idle
                clients[:] = [c for c in clients if c not in idle]
                if not clients:
                    del self._kept[key]
        for c in dropped:
            await c.drop()

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
        """Close every client kept (their connections with them)."""
        kept, self._kept = list(self._kept.values()), OrderedDict()
        for clients in kept:
            for c in clients:
                await c.drop()


_loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopClients]" = weakref.WeakKeyDictionary()


def of_running_loop(new_client: Callable[[], httpx.AsyncClient]) -> LoopClients:
    """The running loop's clients; ``new_client`` builds those it does not have yet."""
    loop = asyncio.get_running_loop()
    clients = _loops.get(loop)
    if clients is None:
        clients = _loops[loop] = LoopClients(new_client)
    return clients
