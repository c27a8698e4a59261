"""Re-driving: failed, timed-out or cancelled executions run again as new executions.

A re-drive is a submission whose request is copied from its original's row (plugin,
command, params, queue, priority, timeout_s, max_retries, owner, webhook), with ``retry_of`` set
to the original's id and its ``concurrency_key`` kept (it is admitted under its limits
as a submission is). Its rows go in through the submit's own plan
(``executions._creating``), idempotency keys and all, and the caller publishes them as
it publishes submissions. The original is left as it is.

A bulk re-drive under an idempotency key K gives each new execution the key
``K#<original id>``: the same K again finds them by that prefix and answers them, not
what the filter would select by then.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from agentq.core.db import session_scope
from agentq.core.errors import ExecutionNotFound, InvalidRequest, NotRetryable
from agentq.core.models import Execution, ExecutionStatus
from agentq.core.store import admissions
from agentq.core.store._plans import Plan, run
from agentq.core.store._rows import EXECUTIONS, S, detached_row
from agentq.core.store.executions import Admit, NewExecution, Submitted, _creating

T = TypeVar("T")
RETRYABLE = (S.FAILED, S.TIMED_OUT, S.CANCELLED)
MAX_RETRY_BATCH = 1000
# A bulk re-drive's key, "#" and an original's id fit the column's 255 characters.
MAX_BULK_KEY = 255 - 1 - 26


@dataclass(frozen=True)
class RetryFilter:
    """Which executions a bulk re-drive runs again: the oldest ``limit`` that match."""

    statuses: Sequence[ExecutionStatus] = RETRYABLE
    plugin: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    limit: int = 100
    ids: Sequence[str] | None = None  # only these (the console's "retry these")

    def __post_init__(self) -> None:
        if not self.statuses or not set(self.statuses) <= set(RETRYABLE):
            raise InvalidRequest(f"Only {', '.join(RETRYABLE)} executions can be re-driven.")
        if not 1 <= self.limit <= MAX_RETRY_BATCH:
            raise InvalidRequest(f"A re-drive takes 1 to {MAX_RETRY_BATCH} executions.")


def retry_execution(execution_id: str, owner: str, *, idempotency_key: str | None = None) -> Submitted:
    """Run ``owner``'s execution again as a new one; a known key answers its execution.

    Raises ``ExecutionNotFound`` (another owner's too) and ``NotRetryable`` (it has not
    failed, timed out or been cancelled).
    """
    return _retried(lambda admit: _retrying_one(execution_id, owner, idempotency_key, admit))


def retry_executions(
    selection: RetryFilter, owner: str, *, idempotency_key: str | None = None
) -> list[Submitted]:
    """Run ``owner``'s executions that ``selection`` picks again, in one transaction, in
    the order of their originals (oldest first); a known key answers its executions."""
    if idempotency_key is not None and len(idempotency_key) > MAX_BULK_KEY:
        raise InvalidRequest(f"A bulk re-drive's Idempotency-Key is at most {MAX_BULK_KEY} characters.")
    return _retried(lambda admit: _retrying_many(selection, owner, idempotency_key, admit))


def _retried(plan: Callable[[Admit], Plan[T]]) -> T:
    # A concurrent request with the same key that won the unique-key race is answered
    # from its rows on the second pass (as ``create_executions`` does).
    try:
        return _in_transaction(plan)
    except IntegrityError:
        return _in_transaction(plan)


def _in_transaction(plan: Callable[[Admit], Plan[T]]) -> T:
    """The plan in a transaction, its new rows admitted under their limits as submitted ones are."""
    with session_scope() as session:
        connection = session.connection()
        return run(plan(partial(admissions.admit_new_gated, connection)), connection)


def _again(row: Execution, idempotency_key: str | None) -> NewExecution:
    """The submission that runs ``row`` again."""
    return NewExecution(
        row.plugin,
        row.command,
        row.params,
        queue=row.queue,
        priority=row.priority,
        timeout_s=row.timeout_s,
        max_retries=row.max_retries,
        idempotency_key=idempotency_key,
        owner=row.owner,
        retry_of=row.id,
        webhook_url=row.webhook_url,
        webhook_events=row.webhook_events,
        concurrency_key=row.concurrency_key,
    )


def _retrying_one(execution_id: str, owner: str, key: str | None, admit: Admit) -> Plan[Submitted]:
    found = yield select(EXECUTIONS).where(EXECUTIONS.c.id == execution_id), {}
    original = next(map(_detached, found), None)
    if original is None or original.owner != owner:
        raise ExecutionNotFound(execution_id)
    if original.status not in RETRYABLE:
        raise NotRetryable(
            f"Execution {execution_id} is {original.status.value}; only a failed, timed_out "
            "or cancelled execution can be retried."
        )
    (submitted,) = yield from _creating([_again(original, key)], admit)
    return submitted


def _retrying_many(
    selection: RetryFilter, owner: str, key: str | None, admit: Admit
) -> Plan[list[Submitted]]:
    if key is not None:
        prefix = f"{key}#"
        found = yield _by_key_prefix(owner, prefix), {}
        # SQLite's LIKE ignores case: the prefix is compared again, exactly.
        replayed = [row for row in map(_detached, found) if (row.idempotency_key or "").startswith(prefix)]
        if replayed:
            return [Submitted(row, created=False) for row in sorted(replayed, key=lambda r: r.retry_of or "")]
    found = yield _originals(selection, owner), {}
    specs = [_again(row, key and f"{key}#{row.id}") for row in map(_detached, found)]
    return (yield from _creating(specs, admit)) if specs else []


def _detached(row: Any) -> Execution:
    return detached_row(row._mapping)


def _by_key_prefix(owner: str, prefix: str) -> Select[Any]:
    return select(EXECUTIONS).where(
        EXECUTIONS.c.owner == owner, EXECUTIONS.c.idempotency_key.startswith(prefix, autoescape=True)
    )


def _originals(selection: RetryFilter, owner: str) -> Select[Any]:
    query = select(EXECUTIONS).where(
        EXECUTIONS.c.owner == owner, EXECUTIONS.c.status.in_(list(selection.statuses))
    )
    if selection.plugin is not None:
        query = query.where(EXECUTIONS.c.plugin == selection.plugin)
    if selection.created_after is not None:
        query = query.where(EXECUTIONS.c.created_at >= selection.created_after)
    if selection.created_before is not None:
        query = query.where(EXECUTIONS.c.created_at < selection.created_before)
    if selection.ids is not None:
        query = query.where(EXECUTIONS.c.id.in_(list(selection.ids)))
    return query.order_by(EXECUTIONS.c.id).limit(selection.limit)
