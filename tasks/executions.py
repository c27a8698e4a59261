"""The task that runs one execution, by id."""

from celery import Task

from core.queue import RUN_EXECUTION, app
from workers.process import runtime


@app.task(name=RUN_EXECUTION, bind=True)
def run_execution(self: Task, execution_id: str) -> str | None:
    """Run execution ``execution_id``; Celery's retry count is the attempt it is for."""
    outcome = runtime().execute(execution_id, attempt=self.request.retries)
    if outcome.retry_in_s is not None:
        # Same task id, retries + 1: the next claim expects attempts to have moved on.
        raise self.retry(countdown=outcome.retry_in_s, max_retries=None)
    return outcome.status.value if outcome.status else None
