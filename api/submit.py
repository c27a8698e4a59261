"""Submitting executions: validate against the catalog, insert, then publish.

Retries (re-drives) copy their original's request, checked when it was submitted, and
are written and published the same way.

The rows are committed before any message is sent, so a worker never races the INSERT.
When the broker is down the submission is still accepted: the rows are the outbox. They
are marked due at once, and the reaper publishes them as soon as the broker is back.

Single submissions that arrive while others are being written are written together (see
``agentq/core/grouping.py``): one transaction, each answered on its own as soon as it is written.
A group whose write fails for what one request holds is written again a request at a
time, so that no request fails for another's.
Their messages go out from a publisher thread, those of the groups written while it sent
the previous ones in one message per chunk: a worker's cost is largely per message, so
fuller messages are cheaper. A process that dies before publishing loses nothing: the
reaper publishes its rows.
"""

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from agentq.core import db, queue, store, webhook_secrets
from agentq.core.db import out_of_reach
from agentq.core.errors import IdempotencyConflict, InvalidRequest
from agentq.core.grouping import GroupingLoop, GroupingThread
from agentq.core.public import event_flags
from agentq.core.settings import settings
from api import metrics
from api.catalog import catalog
from api.schemas import ExecutionCreate

log = logging.getLogger("agentq.api.submit")


def submit(
    items: Sequence[ExecutionCreate], owner: str, *, idempotency_key: str | None = None, batch: bool = False
) -> list[store.Submitted]:
    """Submit ``items`` in one transaction: one invalid item, and nothing is written."""
    submitted = store.create_executions(prepare(items, owner, idempotency_key=idempotency_key, batch=batch))
    publish(submitted)
    return submitted


def prepare(
    items: Sequence[ExecutionCreate], owner: str, *, idempotency_key: str | None = None, batch: bool = False
) -> list[store.NewExecution]:
    """The rows to insert; raises the first item's problem that the catalog finds."""
    specs = []
    if any(item.webhook for item in items):
        webhook_secrets.check_configured()
    for index, item in enumerate(items):
        at: tuple[str | int, ...] = ("body", "executions", index) if batch else ("body",)
        try:
            entry = catalog.resolve(item.plugin, item.command, at)
            catalog.validate(entry, item.params, (*at, "params"))
        except InvalidRequest:
            metrics.count_rejected([i.plugin for i in items])
            raise
        specs.append(
            store.NewExecution.with_defaults(
                item.plugin,
                item.command,
                item.params,
                queue=entry.queue,
                priority=item.priority,
                timeout_s=item.timeout_s,
                max_retries=item.max_retries,
                idempotency_key=idempotency_key or item.idempotency_key,
                owner=owner,
                webhook_url=item.webhook,
                webhook_events=event_flags(item.webhook_events),
                concurrency_key=item.concurrency_key,
                run_at=item.starts_at(),
            )
        )
    return specs


def resubmit(execution_id: str, owner: str, *, idempotency_key: str | None = None) -> store.Submitted:
    """Run a failed, timed-out or cancelled execution again as a new one (its request copied)."""
    submitted = store.retry_execution(execution_id, owner, idempotency_key=idempotency_key)
    publish([submitted])
    return submitted


def resubmit_many(
    selection: store.RetryFilter, owner: str, *, idempotency_key: str | None = None
) -> list[store.Submitted]:
    """Run the executions ``selection`` picks again, in one transaction."""
    submitted = store.retry_executions(selection, owner, idempotency_key=idempotency_key)
    publish(submitted)
    return submitted


def publish(submitted: Sequence[store.Submitted]) -> None:
    """Send the new executions to the broker (or leave them to the reaper) and count them."""
    deferred = queue.publish([s.execution for s in submitted if s.created])
    metrics.count_submissions(submitted, deferred)


@dataclass(frozen=True)
class Single:
    """One ``POST /v1/executions``."""

    item: ExecutionCreate
    owner: str
    idempotency_key: str | None = None


def submit_singles(singles: Sequence[Single]) -> list[store.Submitted | Exception]:
    """Submit independent requests together; each is answered with its execution or its error."""
    outcomes: list[store.Submitted | Exception | None] = []  # None: answered once written
    specs: list[store.NewExecution] = []
    for single in singles:
        try:
            specs.append(prepare([single.item], single.owner, idempotency_key=single.idempotency_key)[0])
            outcomes.append(None)
        except InvalidRequest as exc:
            outcomes.append(exc)
    written: Sequence[store.Submitted | Exception] = []
    try:
        written = store.create_executions(specs) if specs else []
    except Exception as exc:
        if len(specs) > 1 and not out_of_reach(exc):
            # Maybe one request's fault (a reused key, a row the database refuses): each
            # is written alone, and answered for its own.
            if not isinstance(exc, IdempotencyConflict):
                log.warning("writing %d submissions together failed, so each alone: %s", len(specs), exc)
            written = _create_each_alone(specs)
        else:  # the database is out of reach: it is for every request alike
            written = [exc] * len(specs)
    submitted = [s for s in written if isinstance(s, store.Submitted)]
    if submitted:
        publisher.submit(submitted)
    answers = iter(written)
    return [next(answers) if outcome is None else outcome for outcome in outcomes]


async def _submit_on_loop(singles: list[Single]) -> Sequence[store.Submitted | Exception]:
    """One submission is written by its plan, awaited on the event loop; more, in one
    transaction, through the greenlet bridge (``db.run``)."""
    if len(singles) > 1:
        return await db.run(submit_singles, singles)
    (single,) = singles
    await catalog.refresh()
    spec = prepare([single.item], single.owner, idempotency_key=single.idempotency_key)[0]
    submitted = await store.create_execution_on_loop(spec)
    # Handed over once this request's step on the loop, which sends the answer, is done:
    # the publisher's thread would otherwise hold the GIL while the answer waits for it.
    asyncio.get_running_loop().call_soon(publisher.submit, [submitted])
    return [submitted]


def _create_each_alone(specs: Sequence[store.NewExecution]) -> list[store.Submitted | Exception]:
    written: list[store.Submitted | Exception] = []
    for spec in specs:
        try:
            written.append(store.create_executions([spec])[0])
        except Exception as exc:
            if out_of_reach(exc):  # for this one and the rest
                return written + [exc] * (len(specs) - len(written))
            written.append(exc)
    return written


def _publish_groups(groups: list[list[store.Submitted]]) -> list[None]:
    publish([submitted for group in groups for submitted in group])
    return [None] * len(groups)


def flush_publishes(timeout_s: float = 10.0) -> None:
    """Wait until the messages of the submissions answered so far are sent (at shutdown)."""
    with suppress(TimeoutError):
        publisher.submit([]).result(timeout_s)


# At most one chunk of a batch: a group is then one broker message per queue and priority.
submit_single = GroupingLoop("agentq-submissions", _submit_on_loop, max_weight=settings.chunk_size)
publisher = GroupingThread("agentq-publisher", _publish_groups, settings.chunk_size, weight=len)
