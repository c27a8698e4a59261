"""What a worker measures: each execution's outcome and duration, stalls of its event
loop, and its own memory.

Each finished attempt adds to counters in Redis (``agentq/core/metrics_layout.py``), which every
API process serves on ``/metrics``. The runtime reports the attempts it records together,
in one pipeline.
"""

import logging
import os
import resource
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import redis

from agentq.core.metrics_layout import (
    COUNT_FIELD,
    FINISHED_KEY,
    LOOP_BLOCKED_KEY,
    PLUGINS_KEY,
    SUM_FIELD,
    bucket_of,
    duration_key,
    finished_field,
)
from agentq.core.settings import settings

log = logging.getLogger("agentq.executions")


@dataclass(frozen=True)
class Finished:
    """An attempt that ended: ``status`` is what was recorded, or ``superseded`` when its
    row had moved on (cancelled or reclaimed meanwhile), or ``unrecorded`` when the
    database stayed unreachable (its lease runs it again)."""

    execution_id: str
    plugin: str
    status: str
    duration_s: float


def finished(attempts: Sequence[Finished]) -> None:
    """Log each attempt that ended and add them to the counters in Redis, in one round trip."""
    for attempt in attempts:
        duration_ms = round(attempt.duration_s * 1000)
        log.info(
            "%s %s %s in %d ms",
            attempt.execution_id,
            attempt.plugin,
            attempt.status,
            duration_ms,
            extra={
                "execution_id": attempt.execution_id,
                "plugin": attempt.plugin,
                "status": attempt.status,
                "duration_ms": duration_ms,
            },
        )
    record(attempts)


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def client() -> redis.Redis | None:
    """This process's connection to the metrics in Redis; None where there is no Redis."""
    return _client() if settings.redis_url else None


def record(attempts: Sequence[Finished], client: redis.Redis | None = None) -> None:
    """Add attempts to the counters in Redis; never fails the caller."""
    if not attempts:
        return
    if client is None:
        if not settings.redis_url:
            return
        client = _client()
    # Summed here first: a group costs one command per field it changes, not four per attempt.
    counts: Counter[tuple[str, str]] = Counter()
    sums: defaultdict[str, float] = defaultdict(float)
    for a in attempts:
        key = duration_key(a.plugin)
        counts[(key, bucket_of(a.duration_s))] += 1
        counts[(key, COUNT_FIELD)] += 1
        counts[(FINISHED_KEY, finished_field(a.plugin, a.status))] += 1
        sums[key] += a.duration_s
    try:
        # One MULTI: a scrape never sees a bucket counted but not the total.
        pipe = client.pipeline(transaction=True)
        pipe.sadd(PLUGINS_KEY, *{a.plugin for a in attempts})
        for (key, field), n in counts.items():
            pipe.hincrby(key, field, n)
        for key, total in sums.items():
            pipe.hincrbyfloat(key, SUM_FIELD, total)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("execution metrics not recorded: %s", exc)


def loop_blocked(seconds: Mapping[str, float], client: redis.Redis | None = None) -> None:
    """Add to each plugin's seconds of holding the event loop; never fails the caller."""
    if client is None:
        if not settings.redis_url:
            return
        client = _client()
    try:
        pipe = client.pipeline(transaction=False)
        for plugin, blocked_s in seconds.items():
            pipe.hincrbyfloat(LOOP_BLOCKED_KEY, plugin, blocked_s)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("event loop stall not recorded: %s", exc)


# -- memory ------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def over_memory_limit(limit_mb: int) -> int | None:
    """The resident memory in bytes when it exceeds ``limit_mb`` (0: no limit), else None."""
    if limit_mb <= 0:
        return None
    rss = rss_bytes()
    return rss if rss > limit_mb * 1024 * 1024 else None
