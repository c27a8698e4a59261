"""The task that runs executions by id, and the one that creates them for static beat entries."""

from typing import Any

from celery import Task
from celery.exceptions import Reject

from core import queue, store
from core.errors import DatabaseUnavailable
from core.queue import RUN_EXECUTION, SUBMIT_EXECUTION, app
from core.settings import settings
from workers.process import registry, runtime


@app.task(name=RUN_EXECUTION, bind=True)
def run_execution(self: Task, execution_ids: list[str] | str) -> dict[str, str]:
    """Run the executions of one message; Celery's retry count is the attempt they are for.

    Returns each execution's recorded status (Flower shows it as the task's result).
    """
    ids = [execution_ids] if isinstance(execution_ids, str) else execution_ids
    try:
        return runtime().execute(ids, attempt=self.request.retries)
    except DatabaseUnavailable as exc:
        # Not acked: the broker delivers the message again once the database is back.
        raise Reject(str(exc), requeue=True) from exc


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
    queue.publish([submitted.execution])
    return submitted.execution.id
