"""Submitting executions: validate against the catalog, insert, then publish.

The rows are committed before any message is sent, so a worker never races the INSERT.
When the broker is down the unpublished rows are taken back and the client gets a 503:
nothing durable is left that no message will ever run.
"""

from collections.abc import Sequence

from api.catalog import catalog
from api.schemas import ExecutionCreate
from core import queue, store
from core.errors import BrokerUnavailable
from core.models import Execution
from core.settings import settings


def submit(
    items: Sequence[ExecutionCreate], *, idempotency_key: str | None = None, batch: bool = False
) -> list[store.Submitted]:
    specs = []
    for index, item in enumerate(items):
        entry = catalog.resolve(item.plugin, item.command)
        catalog.validate(
            entry, item.params, ("body", "executions", index, "params") if batch else ("body", "params")
        )
        specs.append(
            store.NewExecution(
                plugin=item.plugin,
                command=item.command,
                params=item.params,
                queue=entry.queue,
                priority=item.priority,
                timeout_s=item.timeout_s or settings.default_timeout_s,
                max_retries=settings.default_max_retries if item.max_retries is None else item.max_retries,
                idempotency_key=idempotency_key or item.idempotency_key,
            )
        )
    submitted = store.create_executions(specs)
    fresh: list[Execution] = [s.execution for s in submitted if s.created]
    if fresh:
        try:
            queue.enqueue(fresh)
        except BrokerUnavailable as exc:
            store.delete_unstarted(e.id for e in fresh if e.id not in set(exc.published))
            raise
    return submitted
