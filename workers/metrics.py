"""What a worker measures: each execution's outcome and duration, stalls of its event
loop, and its own memory.

Workers are many processes on many hosts, so they do not serve metrics themselves:
each finished attempt adds to counters in Redis, which every API process reads and
serves on ``/metrics`` (``api/metrics.py``). The layout, under ``agentq:metrics:``:

``plugins``            set of plugin names seen
``duration:<plugin>``  hash: ``<upper bound in s>`` or ``+Inf`` -> attempts in that bucket
                       (not cumulative), plus ``count`` and ``sum`` (seconds)
``finished``           hash: ``<plugin>/<status>`` -> attempts
``loop_blocked``       hash: ``<plugin>`` -> seconds the plugin held its worker's event
                       loop in stalls past ``AGENTQ_LOOP_BLOCKED_S`` (``(none)``: no run
                       was on the loop)

The runtime reports the attempts it records together, in one pipeline.
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

from core.settings import settings

PREFIX = "agentq:metrics"
PLUGINS_KEY = f"{PREFIX}:plugins"
FINISHED_KEY = f"{PREFIX}:finished"
LOOP_BLOCKED_KEY = f"{PREFIX}:loop_blocked"
NO_PLUGIN = "(none)"
# From a 10 ms echo to an hour-long run (timeout_s is at most 3600).
BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

log = logging.getLogger("agentq.executions")


def duration_key(plugin: str) -> str:
    return f"{PREFIX}:duration:{plugin}"


def bucket_of(duration_s: float) -> str:
    """The field of the smallest bucket that holds ``duration_s``."""
    for bound in BUCKETS_S:
        if duration_s <= bound:
            return f"{bound:g}"
    return "+Inf"


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
        counts[(key, "count")] += 1
        counts[(FINISHED_KEY, f"{a.plugin}/{a.status}")] += 1
        sums[key] += a.duration_s
    try:
        # One MULTI: a scrape never sees a bucket counted but not the total.
        pipe = client.pipeline(transaction=True)
        pipe.sadd(PLUGINS_KEY, *{a.plugin for a in attempts})
        for (key, field), n in counts.items():
            pipe.hincrby(key, field, n)
        for key, total in sums.items():
            pipe.hincrbyfloat(key, "sum", total)
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
