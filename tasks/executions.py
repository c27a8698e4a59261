"""The task that runs one execution, by id."""

from typing import Any

from celery import Task
from celery.exceptions import Reject

from core import queue, store
from core.errors import DatabaseUnavailable
from core.queue import RUN_EXECUTION, SUBMIT_EXECUTION, app
from core.settings import settings
from workers.process import registry, runtime


@app.task(name=RUN_EXECUTION, bind=True)
def run_execution(self: Task, execution_id: str) -> str | None:
    """Run execution ``execution_id``; Celery's retry count is the attempt it is for."""
    try:
        outcome = runtime().execute(execution_id, attempt=self.request.retries)
    except DatabaseUnavailable as exc:
        # Not acked: the broker delivers the message again once the database is back.
        raise Reject(str(exc), requeue=True) from exc
    if outcome.retry_in_s is not None:
        # Same task id, retries + 1: the next claim expects attempts to have moved on.
        raise self.retry(countdown=outcome.retry_in_s, max_retries=None)
    return outcome.status.value if outcome.status else None


@app.task(name=SUBMIT_EXECUTION)
def submit_execution(plugin: str, command: str, params: dict[str, Any], priority: int = 5) -> str:
    """Create and queue an execution (for static beat entries)."""
    found, _ = registry().command(plugin, command)
    (submitted,) = store.create_executions(
        [
            store.NewExecution(
                plugin=plugin,
                command=command,
                params=params,
                queue=found.queue or settings.default_queue,
                priority=priority,
                timeout_s=settings.default_timeout_s,
                max_retries=settings.default_max_retries,
            )
        ]
    )
    queue.enqueue([submitted.execution])
    return submitted.execution.id
