"""Submitting executions: validate against the catalog, insert, then publish.

The rows are committed before any message is sent, so a worker never races the INSERT.
When the broker is down the submission is still accepted: the rows are the outbox. They
are marked due at once, and the reaper publishes them as soon as the broker is back.
"""

import logging
from collections.abc import Sequence

from api import metrics
from api.catalog import catalog
from api.schemas import ExecutionCreate
from core import queue, store
from core.errors import BrokerUnavailable, InvalidRequest
from core.models import Execution, utcnow
from core.settings import settings

log = logging.getLogger("agentq.api.submit")


def submit(
    items: Sequence[ExecutionCreate], owner: str, *, idempotency_key: str | None = None, batch: bool = False
) -> list[store.Submitted]:
    specs = []
    for index, item in enumerate(items):
        try:
            entry = catalog.resolve(item.plugin, item.command)
            catalog.validate(
                entry, item.params, ("body", "executions", index, "params") if batch else ("body", "params")
            )
        except InvalidRequest:
            metrics.count_rejected([i.plugin for i in items])
            raise
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
                owner=owner,
            )
        )
    submitted = store.create_executions(specs)
    fresh: list[Execution] = [s.execution for s in submitted if s.created]
    deferred: set[str] = set()
    if fresh:
        try:
            queue.enqueue(fresh)
        except BrokerUnavailable as exc:
            published = set(exc.published)
            deferred = {e.id for e in fresh} - published
            store.lease_unclaimed((e.id for e in fresh if e.id not in published), utcnow())
            log.warning("accepted %d executions for later publishing: %s", len(fresh) - len(published), exc)
    metrics.count_submissions(submitted, deferred)
    return submitted
