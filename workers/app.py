"""The Celery app as a worker (and beat) runs it: ``celery -A workers.app worker``.

The app and all of its configuration are ``agentq.core.queue``'s (the tasks it registers too,
through its ``include``); this adds a worker's start-up and shutdown work: loading the
plugins and publishing their catalog, so the API can validate submissions without plugin
code, starting and stopping the runtime, and the memory limit.
"""

import logging
import os
import signal
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    setup_logging,
    task_postrun,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from agentq.core import broker, heap, logs, store
from agentq.core.queue import RUN_EXECUTION, app
from agentq.core.settings import settings
from workers import metrics
from workers.process import consume, drain, registry, runtime, shutdown

log = logging.getLogger("agentq.worker")
registry()  # load plugins at start, not at first use (one that cannot be imported is left out)
heap.fix_mmap_threshold()  # before the pool's threads allocate


@celeryd_after_setup.connect
def consume_queues(instance: Any, **_: Any) -> None:
    """A worker of a queue consumes each of its shards (``broker.shard``: one per group of
    API keys), in turn. Every worker sends webhooks too, whatever queues it was given
    (unless AGENTQ_WEBHOOK_SENDER is off): a delivery's task only claims it, and its
    request goes out on the worker's webhook loop."""
    queues = instance.app.amqp.queues
    given = [name for name in queues.consume_from if name != settings.webhook_queue]
    for name in given:
        for shard in broker.shards(name)[1:]:
            queues.select_add(shard)
    if settings.webhook_sender:
        queues.select_add(settings.webhook_queue)
    consume(frozenset(given))


@worker_ready.connect
def publish_catalog(**_: Any) -> None:
    entries = registry().catalog(settings.default_queue)
    store.publish_catalog(entries)
    runtime().after_run = after_runs  # (starting the loop before the first message)
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
def after_task(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) != RUN_EXECUTION:
        heap.trim_if_due()
        return  # what a worker holds grows with the plugins it runs, not with a reaper pass
    after_runs()


def after_runs() -> None:
    """After a message's runs, or a run a finish started (``Runtime.after_run``)."""
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
