"""The task that runs executions by id, and the one that creates them for static beat entries."""

import logging
from collections import Counter
from typing import Any

from celery import Task
from celery.exceptions import Reject

from agentq.core import queue, store
from agentq.core.errors import DatabaseUnavailable
from agentq.core.models import DEFAULT_PRIORITY
from agentq.core.queue import ARGS_SHOWN, RUN_EXECUTION, SUBMIT_EXECUTION, app
from workers.process import registry, runtime
from workers.runtime import ShuttingDown

log = logging.getLogger("agentq.worker")

# The recorded outcomes that make a message a FAILURE in Flower.
FAILED = ("failed", "timed_out")


class ExecutionsFailed(Exception):
    """Executions of a message ended failed or timed out; their outcome is recorded already.

    Raised so that Flower shows the task as FAILURE. It is in the task's ``throws``: the
    worker logs it at INFO, as an expected outcome, not as an error of its own.
    """


@app.task(name=RUN_EXECUTION, bind=True, throws=(ExecutionsFailed,))
def run_execution(self: Task, execution_ids: list[str] | str) -> dict[str, str]:
    """Run the executions of one message; Celery's retry count is the attempt they are for.

    Returns each execution's recorded status, which Flower shows as the task's result
    (SUCCESS). When any of them ended ``failed`` or ``timed_out`` it raises
    ``ExecutionsFailed`` instead, naming them with their error types, which Flower shows
    as the task's exception (FAILURE). Raising changes nothing for the message: with
    ``task_acks_on_failure_or_timeout`` it is acked like a returned one, and Celery does
    not retry it (the task has no ``autoretry_for``); retries are the executions' own.
    """
    ids = [execution_ids] if isinstance(execution_ids, str) else execution_ids
    try:
        statuses = runtime().execute(ids, attempt=self.request.retries)
    except (DatabaseUnavailable, ShuttingDown) as exc:
        # Not acked: the broker delivers the message again, once the database is back, or
        # to another worker.
        raise Reject(str(exc), requeue=True) from exc
    failed = [i for i, status in statuses.items() if status in FAILED]
    if failed:
        raise ExecutionsFailed(failure_summary(statuses, _error_types(failed)))
    return statuses


def _error_types(execution_ids: list[str]) -> dict[str, str]:
    try:
        return store.error_types(execution_ids)
    except Exception as exc:  # only the label in Flower is at stake: the outcomes are written
        log.warning("cannot read the error types of %s: %s", " ".join(execution_ids), exc)
        return {}


def failure_summary(statuses: dict[str, str], error_types: dict[str, str]) -> str:
    """``2 of 3 executions ended failed or timed_out: <id> failed (PluginCrashed), <id>
    timed_out (timed_out); the others: 1 succeeded`` (at most ``ARGS_SHOWN`` ids named)."""
    failed = [(i, status) for i, status in statuses.items() if status in FAILED]
    named = ", ".join(f"{i} {status} ({error_types.get(i, 'unknown')})" for i, status in failed[:ARGS_SHOWN])
    if len(failed) > ARGS_SHOWN:
        named += f", … {len(failed) - ARGS_SHOWN:,} more"
    summary = f"{len(failed)} of {len(statuses)} executions ended failed or timed_out: {named}"
    others = Counter(status for status in statuses.values() if status not in FAILED)
    if others:
        summary += "; the others: " + ", ".join(f"{n} {status}" for status, n in others.items())
    return summary


@app.task(name=SUBMIT_EXECUTION)
def submit_execution(
    plugin: str, command: str, params: dict[str, Any], priority: int = DEFAULT_PRIORITY
) -> str:
    """Create and queue an execution (for static beat entries)."""
    found, _ = registry().command(plugin, command)
    spec = store.NewExecution.with_defaults(plugin, command, params, queue=found.queue, priority=priority)
    (submitted,) = store.create_executions([spec])
    queue.publish([submitted.execution])
    return submitted.execution.id
