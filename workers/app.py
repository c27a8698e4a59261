"""The Celery app as a worker (and beat) runs it: ``celery -A workers.app worker``.

Adds to ``core.queue.app`` the tasks, the pool, and the start-up work: publishing the
plugin catalog so the API can validate submissions without plugin code.
"""

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

import tasks.executions  # noqa: F401  (registers the tasks)
import tasks.maintenance  # noqa: F401
from beat_schedule import beat_schedule
from core import store
from core.queue import app
from core.settings import settings
from workers.process import drain, registry, runtime, shutdown

# A thread pool: sync commands run on its threads; async commands share one event loop
# per process (see workers/runtime.py), so one process holds many I/O-bound executions.
app.conf.worker_pool = "threads"
app.conf.worker_concurrency = settings.worker_concurrency
app.conf.beat_schedule = beat_schedule
app.conf.beat_scheduler = "beat_schedule:DatabaseScheduler"

log = logging.getLogger("agentq.worker")
registry()  # load plugins now: a broken plugin stops the worker at start, not at first use


@worker_ready.connect
def publish_catalog(**_: Any) -> None:
    entries = registry().catalog(settings.default_queue)
    store.publish_catalog(entries)
    runtime()  # start the loop before the first message
    log.info("published %d plugin commands", len(entries))


@worker_shutting_down.connect
def hand_back_after_grace(**_: Any) -> None:
    drain()


@worker_shutdown.connect
def stop_runtime(**_: Any) -> None:
    shutdown()


__all__ = ["app"]
