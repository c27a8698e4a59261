"""What a worker measures: each execution's outcome and duration, and its own memory.

Workers are many processes on many hosts, so they do not serve metrics themselves:
each finished attempt adds to counters in Redis, which every API process reads and
serves on ``/metrics`` (``api/metrics.py``). The layout, under ``agentq:metrics:``:

``plugins``            set of plugin names seen
``duration:<plugin>``  hash: ``<upper bound in s>`` or ``+Inf`` -> attempts in that bucket
                       (not cumulative), plus ``count`` and ``sum`` (seconds)
``finished``           hash: ``<plugin>/<status>`` -> attempts

The runtime hands over plugin and duration when an attempt ends; the status is what the
task returns, so both meet in ``task_done`` (Celery's ``task_postrun``, which runs on
the same pool thread right after the task).
"""

import logging
import os
import resource
import sys
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis

from core.settings import settings

PREFIX = "agentq:metrics"
PLUGINS_KEY = f"{PREFIX}:plugins"
FINISHED_KEY = f"{PREFIX}:finished"
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
class Attempt:
    execution_id: str
    plugin: str
    duration_s: float


# The attempt's status when the task did not return one: SUCCESS with None means the row
# had moved on (cancelled or reclaimed meanwhile); RETRY is a retry with backoff; REJECTED
# is a message handed back to the broker (the database was unreachable).
TASK_STATES = {"SUCCESS": "superseded", "RETRY": "retrying", "REJECTED": "requeued"}

_pending = threading.local()


def attempt_finished(execution_id: str, plugin: str, duration_s: float) -> None:
    """The runtime finished running an attempt on this thread; recorded by ``task_done``."""
    _pending.attempt = Attempt(execution_id, plugin, duration_s)


def task_done(task_id: str, state: str | None, retval: Any) -> None:
    """Record the attempt this thread just ran, now that the task's outcome is known."""
    attempt: Attempt | None = getattr(_pending, "attempt", None)
    _pending.attempt = None
    if attempt is None or attempt.execution_id != task_id:
        return  # another task (maintenance), or a duplicate delivery that ran nothing
    status = (
        retval if state == "SUCCESS" and isinstance(retval, str) else TASK_STATES.get(state or "", "error")
    )
    duration_ms = round(attempt.duration_s * 1000)
    log.info(
        "%s %s %s in %d ms",
        attempt.execution_id,
        attempt.plugin,
        status,
        duration_ms,
        extra={
            "execution_id": attempt.execution_id,
            "plugin": attempt.plugin,
            "status": status,
            "duration_ms": duration_ms,
        },
    )
    record(attempt.plugin, status, attempt.duration_s)


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def record(plugin: str, status: str, duration_s: float, client: redis.Redis | None = None) -> None:
    """Add one attempt to the counters in Redis; never fails the caller."""
    if client is None:
        if not settings.redis_url:
            return
        client = _client()
    key = duration_key(plugin)
    try:
        # One MULTI: a scrape never sees a bucket counted but not the total.
        pipe = client.pipeline(transaction=True)
        pipe.sadd(PLUGINS_KEY, plugin)
        pipe.hincrby(key, bucket_of(duration_s), 1)
        pipe.hincrby(key, "count", 1)
        pipe.hincrbyfloat(key, "sum", duration_s)
        pipe.hincrby(FINISHED_KEY, f"{plugin}/{status}", 1)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("execution metrics not recorded: %s", exc)


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
