"""Change notifications on Redis pub/sub: workers publish, API long-polls and streams wake.

Pub/sub is best effort; the execution row stays the truth. A waiter that misses a
message still reads the row when its wait ends.
"""

from collections.abc import Iterable
from contextlib import suppress
from functools import cache
from urllib.parse import urlparse

import redis

from agentq.core.settings import settings


def _channel(redis_url: str) -> str:
    # Pub/sub ignores Redis database numbers: name the channel after the database, so
    # deployments sharing one Redis server do not wake each other's waiters.
    db = (urlparse(redis_url).path.strip("/") or "0") if redis_url else "0"
    return f"agentq:{db}:executions"


CHANNEL = _channel(settings.redis_url)


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def publish(execution_id: str, status: str) -> None:
    """Announce that an execution changed; never fails the caller."""
    publish_many([(execution_id, status)])


def publish_many(changes: Iterable[tuple[str, str]]) -> None:
    """Announce changed executions in one message, a line ``<id> <status>`` each."""
    message = "\n".join(f"{execution_id} {status}" for execution_id, status in changes)
    if not settings.redis_url or not message:
        return
    # On failure waiters fall back to reading the row when their wait ends.
    with suppress(redis.RedisError):
        _client().publish(CHANNEL, message)
