"""The Celery app as a worker (and beat) runs it: ``celery -A workers.app worker``.

Adds to ``core.queue.app`` the tasks, the pool, and the start-up work: publishing the
plugin catalog so the API can validate submissions without plugin code.
"""

import logging
import os
import signal
from typing import Any

import redis
from celery.signals import setup_logging, task_postrun, worker_ready, worker_shutdown, worker_shutting_down
from kombu.transport import redis as kombu_redis

import tasks.executions  # noqa: F401  (registers the tasks)
import tasks.maintenance  # noqa: F401
from beat_schedule import beat_schedule
from core import heap, logs, store
from core.queue import app
from core.settings import settings
from workers import metrics
from workers.process import drain, registry, runtime, shutdown

# A thread pool: sync commands run on its threads; async commands share one event loop
# per process (see workers/runtime.py), so one process holds many I/O-bound executions.
app.conf.worker_pool = "threads"
app.conf.worker_concurrency = settings.worker_concurrency
app.conf.beat_schedule = beat_schedule
app.conf.beat_scheduler = "beat_schedule:DatabaseScheduler"

log = logging.getLogger("agentq.worker")
_connparams = kombu_redis.Channel._connparams


def _connparams_of_open_channel(self: kombu_redis.Channel, asynchronous: bool = False) -> Any:
    # After a lost Redis connection, kombu may reach for a channel whose connection was
    # already released (restoring unacked messages while closing it, or acking a run that
    # ended meanwhile) and die on AttributeError, killing the worker (celery/celery#10205).
    # A connection error instead lets Celery log it and reconnect; an unacked message comes
    # back after the visibility timeout and the claim skips it.
    if getattr(self.connection, "client", None) is None:
        raise redis.ConnectionError("the broker connection of this channel was closed")
    return _connparams(self, asynchronous)  # type: ignore[no-untyped-call]


kombu_redis.Channel._connparams = _connparams_of_open_channel  # type: ignore[method-assign]
registry()  # load plugins at start, not at first use (one that cannot be imported is left out)
heap.fix_mmap_threshold()  # before the pool's threads allocate


@worker_ready.connect
def publish_catalog(**_: Any) -> None:
    entries = registry().catalog(settings.default_queue)
    store.publish_catalog(entries)
    runtime()  # start the loop before the first message
    heap.freeze_startup()
    heap.collect_less_often()
    log.info("published %d plugin commands", len(entries))


@worker_shutting_down.connect
def hand_back_after_grace(**_: Any) -> None:
    drain()


@worker_shutdown.connect
def stop_runtime(**_: Any) -> None:
    shutdown()


@setup_logging.connect
def configure_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """JSON lines (or text on a terminal) for worker and beat, instead of Celery's format."""
    logs.configure(level=loglevel)


_memory_exceeded = False


@task_postrun.connect
def after_task(**_: Any) -> None:
    global _memory_exceeded
    heap.trim_if_due()
    # Celery's worker_max_memory_per_child only applies to the prefork pool; with threads the
    # process itself must go: a warm shutdown (running executions finish or are handed back),
    # then the supervisor (compose `restart:`, systemd `Restart=always`) starts a fresh one.
    rss = metrics.over_memory_limit(settings.worker_max_memory_mb)
    if rss is not None and not _memory_exceeded:
        _memory_exceeded = True
        log.warning(
            "resident memory %d MiB exceeds AGENTQ_WORKER_MAX_MEMORY_MB=%d; shutting down for a restart",
            rss // (1024 * 1024),
            settings.worker_max_memory_mb,
        )
        os.kill(os.getpid(), signal.SIGTERM)


__all__ = ["app"]
