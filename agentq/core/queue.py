"""The Celery app and all of its configuration, task names, and publishing executions by name.

Every Celery setting is here, the worker's and beat's too: API, worker, beat and Flower
make the same app. The API and beat import this module, never ``tasks/`` or
``workers/``: they send tasks by name, so they carry no plugin code. A worker or beat
imports the tasks when it starts (the app's ``include``).
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.app import amqp
from kombu.exceptions import BatchPublishError
from kombu.exceptions import OperationalError as KombuOperationalError

from agentq.core import broker, db, store
from agentq.core.errors import BrokerUnavailable
from agentq.core.models import DEFAULT_PRIORITY, Execution, utcnow
from agentq.core.settings import settings

RUN_EXECUTION = "agentq.run_execution"
SUBMIT_EXECUTION = "agentq.submit_execution"
REAP_EXECUTIONS = "agentq.reap_executions"
PURGE_EXECUTIONS = "agentq.purge_executions"
# Webhooks: send deliveries (on their own queue, AGENTQ_WEBHOOK_QUEUE), publish due ones.
DELIVER_WEBHOOKS = "agentq.deliver_webhooks"
SWEEP_WEBHOOKS = "agentq.sweep_webhooks"
# The modules that register those tasks, imported by a worker or beat as it starts.
TASK_MODULES = ["tasks.executions", "tasks.maintenance", "tasks.webhooks"]

# Housekeeping that beat fires every few seconds, and webhook deliveries. They send no
# task events (neither task-sent nor the worker's), so Flower's task list holds
# executions only.
MAINTENANCE_TASKS = frozenset({REAP_EXECUTIONS, PURGE_EXECUTIONS, DELIVER_WEBHOOKS, SWEEP_WEBHOOKS})

# The execution ids of a message that Flower shows (its args).
ARGS_SHOWN = 10

log = logging.getLogger("agentq.queue")

# Our priority runs 0..9 with 9 highest; the Redis transport consumes 0 first.
PRIORITY_LEVELS = 10


def broker_priority(priority: int) -> int:
    if settings.broker_url.startswith("redis"):
        return PRIORITY_LEVELS - 1 - priority
    return priority


# Beat's static entries; beat_schedule.py's scheduler adds the schedules in the database.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Publish again what was never published, lost its retry, or lost its worker.
    # A pass not taken before the next is sent is dropped: a worker back after a while runs
    # one pass, not every one beat sent meanwhile.
    "reap-expired-leases": {
        "task": REAP_EXECUTIONS,
        "schedule": settings.reaper_interval_s,
        "options": {"expires": settings.reaper_interval_s},
    },
    # Delete executions older than AGENTQ_RETENTION_DAYS, in small batches.
    "purge-old-executions": {"task": PURGE_EXECUTIONS, "schedule": 3600.0, "options": {"expires": 3600.0}},
    # Publish webhook deliveries that are due: retries, and any whose message was lost.
    "sweep-webhook-deliveries": {
        "task": SWEEP_WEBHOOKS,
        "schedule": settings.webhook_sweep_s,
        "options": {"queue": settings.webhook_queue, "expires": settings.webhook_sweep_s},
    },
    # A harmless example agent: echo a heartbeat every 10 minutes.
    "example-heartbeat-agent": {
        "task": SUBMIT_EXECUTION,
        "schedule": 600.0,
        "kwargs": {"plugin": "echo", "command": "echo", "params": {"agent": "heartbeat"}},
    },
}


def celery_config() -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Longer than any timeout_s, or a long run would be delivered to a second worker.
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "unacked_restore_interval": settings.broker_restore_sweep_s,
            "unacked_restore_throttle": 1,
            "priority_steps": list(range(PRIORITY_LEVELS)),
            "sep": broker.QUEUE_SEP,
            # Of the queues a worker consumes, the one it just took a message from goes
            # last: a key's shard (broker.shard) waits for one message of each other
            # key's at most, at the same priority (kombu reads every queue's highest
            # priority list before any lower one).
            "queue_order_strategy": "round_robin",
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,  # the execution row is the result
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_send_sent_event": True,
        "task_default_queue": settings.default_queue,
        "task_queue_max_priority": PRIORITY_LEVELS - 1,
        "task_default_priority": broker_priority(DEFAULT_PRIORITY),
        # A thread pool: sync commands run on its threads; async commands share one event
        # loop per process (workers/runtime.py), so one process holds many I/O-bound runs.
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": BEAT_SCHEDULE,
        "beat_scheduler": "beat_schedule:DatabaseScheduler",
        "enable_utc": True,
        "timezone": "UTC",
    }


class AMQP(amqp.AMQP):  # type: ignore[misc]
    """Celery's messaging, where a maintenance task's message goes without a task-sent event."""

    def as_task_v2(self, task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        return message._replace(sent_event=None) if name in MAINTENANCE_TASKS else message


broker.install()  # kombu as agentq runs it (agentq/core/broker.py), before the app connects
app = Celery("agentq", amqp=AMQP, include=TASK_MODULES)
app.config_from_object(celery_config())


def chunks(executions: Iterable[Execution], size: int) -> Iterator[list[Execution]]:
    """Executions that can share a message (same queue, owner, priority and attempt),
    ``size`` at most."""
    groups: dict[tuple[str, str, int, int], list[Execution]] = defaultdict(list)
    for execution in executions:
        group = groups[(execution.queue, execution.owner, execution.priority, execution.attempts)]
        group.append(execution)
        if len(group) == size:
            yield group[:]
            group.clear()
    yield from (group for group in groups.values() if group)


def args_repr(ids: list[str]) -> str:
    """How Flower shows a message's arguments; Celery's own ``saferepr`` of them costs the
    producer more than the rest of building the message."""
    if len(ids) <= ARGS_SHOWN:
        return repr([ids])
    shown = ", ".join(map(repr, ids[:ARGS_SHOWN]))
    return f"[[{shown}, … {len(ids) - ARGS_SHOWN:,} more]]"


def agents_repr(chunk: list[Execution]) -> str:
    """What Flower shows as a message's keyword arguments (it has none): the agents it runs.

    ``{'plugin': 'echo', 'command': 'echo'}`` when they are all one (Flower's search finds
    them by ``kwargs:plugin=echo``), else each ``plugin/command`` with how many run it.
    """
    plugin, command = chunk[0].plugin, chunk[0].command
    if all(e.plugin == plugin and e.command == command for e in chunk):
        return repr({"plugin": plugin, "command": command})
    counts = Counter(f"{e.plugin}/{e.command}" for e in chunk)
    return repr({"agents": ", ".join(f"{agent} ×{n}" for agent, n in counts.items())})


def publish(executions: Sequence[Execution], countdown: float | None = None) -> set[str]:
    """Publish executions whose rows are committed, or, with the broker down, mark them due
    now (``countdown`` later) so that the reaper's next pass publishes them. Returns the ids
    left to the reaper.

    Every publisher (the API, beat, run-now, the reaper, retries and hand-backs) goes
    through here: an accepted execution is never lost to a broker outage, and the caller
    answers as if it had been published. Executions held back (``held``: for their
    ``run_at``, or a full concurrency limit) are not published: they start when admitted.
    """
    executions = [e for e in executions if e.held is None]
    if not executions:
        return set()
    try:
        db.blocking(enqueue, executions, countdown)
    except BrokerUnavailable as exc:
        deferred = {e.id for e in executions}
        try:
            db.call(store.lease_unclaimed, deferred, utcnow() + timedelta(seconds=countdown or 0))
        except Exception:  # the database too: the rows' own lease brings them back, later
            log.exception("cannot mark %d executions due for the reaper", len(deferred))
        log.warning("broker down, left %d executions for the reaper: %s", len(deferred), exc)
        return deferred
    return set()


def enqueue(executions: Iterable[Execution], countdown: float | None = None) -> None:
    """Publish executions over one producer connection.

    A message carries up to ``AGENTQ_CHUNK_SIZE`` execution ids, so a batch costs the
    broker and the worker one message per chunk; it goes to its owner's shard of the
    execution's queue (``broker.shard``). In Flower, its task id is the first
    execution's, its args the first ids (search them for any other) and its kwargs the
    agents it runs (``agents_repr``). The message's retry count is the
    attempts its rows have made: the claim expects it, so a republished (reaped,
    handed-back) execution runs its next attempt exactly once.

    On Redis the messages and their task-sent events go out in one pipeline, one round
    trip, as the batch ends (kombu's retries then cover transports that publish at once).
    Whether any went out when that fails is not known, so the error counts none as
    published: ``publish`` leaves them all to the reaper, and an execution published twice
    is claimed once.
    """
    try:
        with app.producer_or_acquire() as producer, producer.batch():
            for chunk in chunks(executions, settings.chunk_size):
                first = chunk[0]
                ids = [execution.id for execution in chunk]
                app.send_task(
                    RUN_EXECUTION,
                    args=[ids],
                    argsrepr=args_repr(ids),
                    kwargsrepr=agents_repr(chunk),
                    task_id=first.id,
                    queue=broker.shard(first.queue, first.owner),
                    priority=broker_priority(first.priority),
                    producer=producer,
                    retries=first.attempts,
                    countdown=countdown,
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
                )
    except (KombuOperationalError, BatchPublishError, ConnectionError, OSError) as exc:
        raise BrokerUnavailable(f"The broker is unreachable ({exc}); try again shortly.") from exc


def publish_deliveries(deliveries: list[tuple[str, int]]) -> None:
    """Send webhook deliveries, each ``(id, attempts)``, to a sender; with the broker down
    they stay due in the outbox and the sweeper publishes them later."""
    try:
        db.blocking(_send_deliveries, deliveries)
    except (KombuOperationalError, BatchPublishError, ConnectionError, OSError) as exc:
        log.warning("broker down, left %d webhook deliveries to the sweeper: %s", len(deliveries), exc)
        try:
            db.call(store.deliveries.mark_due, deliveries)
        except Exception:  # the database too: their lease brings them back, later
            log.exception("cannot mark %d webhook deliveries due", len(deliveries))


def _send_deliveries(deliveries: list[tuple[str, int]]) -> None:
    for start in range(0, len(deliveries), settings.chunk_size):
        app.send_task(
            DELIVER_WEBHOOKS,
            args=[deliveries[start : start + settings.chunk_size]],
            queue=settings.webhook_queue,
            retry=False,
        )


# Deliveries go out as soon as the transaction that wrote them commits.
store.deliveries.on_written(publish_deliveries)
