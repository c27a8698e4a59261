"""kombu's Redis transport as agentq uses it: every change agentq makes to kombu is here.

- One Redis client per channel instead of one per command (``Transport``).
- A channel whose connection was closed fails with a connection error, which Celery
  recovers from, rather than an ``AttributeError``, which kills the worker (on every
  kombu Redis channel, ``rediss://`` too).

kombu's Redis channel builds a new ``redis.Redis`` for each command it sends outside its
consuming connection: every task message published and every event (task-sent,
task-received, task-started, task-succeeded). Building one copies redis-py's table of
response callbacks, which costs more CPU than the round trip it is built for. A client
takes a connection from the channel's pool per command, so one client serves the channel
in any thread; it is rebuilt when the channel replaces its pool (after a fork, on close).
"""

import zlib
from typing import Any

import redis as redis_py
from kombu import transport
from kombu.transport import redis

# The transport keeps priority p of queue q in the Redis list "q" (p == 0) or "q:p".
QUEUE_SEP = ":"
# A queue of executions is split by API key into this many broker queues ("q" itself,
# then "q.s1" … "q.s15"), which every worker of "q" consumes in turn: one key's backlog
# then waits in its own list, not in front of every other key's runs (docs: fair share).
SHARDS = 16


def shard(queue: str, owner: str | None) -> str:
    """The broker queue that carries ``owner``'s executions of ``queue``."""
    n = zlib.crc32((owner or "").encode()) % SHARDS
    return queue if n == 0 else f"{queue}.s{n}"


def shards(queue: str) -> list[str]:
    """Every broker queue of ``queue``, itself first."""
    return [queue] + [f"{queue}.s{n}" for n in range(1, SHARDS)]


def queue_keys(queue: str, priority_levels: int) -> list[str]:
    """The Redis lists that hold the messages of ``queue`` (of every shard), one per
    priority each."""
    return [f"{q}{QUEUE_SEP}{p}" if p else q for q in shards(queue) for p in range(priority_levels)]


class Channel(redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(redis.Transport):
    Channel = Channel


_connparams = redis.Channel._connparams


def _connparams_of_open_channel(self: redis.Channel, asynchronous: bool = False) -> Any:
    # After a lost Redis connection, kombu may reach for a channel whose connection was
    # already released (restoring unacked messages while closing it, or acking a run that
    # ended meanwhile) and die on AttributeError, killing the worker (celery/celery#10205).
    # A connection error instead lets Celery log it and reconnect; an unacked message comes
    # back after the visibility timeout and the claim skips it.
    if getattr(self.connection, "client", None) is None:
        raise redis_py.ConnectionError("the broker connection of this channel was closed")
    return _connparams(self, asynchronous)  # type: ignore[no-untyped-call]


def install() -> None:
    """Apply this module to kombu, in this process (``agentq/core/queue.py`` calls it, before the
    Celery app is made)."""
    _serve_redis_urls()
    redis.Channel._connparams = _connparams_of_open_channel  # type: ignore[method-assign]


def _serve_redis_urls() -> None:
    """Make ``redis://`` broker URLs use this transport.

    Registered under kombu's own alias rather than set as Celery's ``broker_transport``:
    a connection then still reads ``redis://host:6379/0``, which is how Flower tells a
    Redis broker apart (its Broker page and ``/api/queues/length`` answer "'redis' broker
    is not supported" for ``agentq.core.broker:Transport://host:6379/0``).
    """
    transport.TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
    # Forget a stock transport resolved before this ran.
    transport._transport_cache.pop("redis", None)
