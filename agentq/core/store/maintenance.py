"""What the reaper and the sweeper do: find expired leases, republish unclaimed rows, fail
end the runs whose worker died, purge old finished ones; and the
readiness ping."""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update

from agentq.core.db import session_scope
from agentq.core.models import (
    TERMINAL,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)
from agentq.core.store import admissions
from agentq.core.store._rows import CANCELLABLE, CLAIMABLE, S, by_primary_key
from agentq.core.store.claiming import end_attempt


def expired_leases(now: datetime, limit: int = 500) -> list[Execution]:
    """Live executions whose lease ran out: never published, retry lost, or worker gone."""
    query = (
        select(Execution)
        .where(Execution.status.in_(CANCELLABLE), Execution.lease_expires_at < now)
        .order_by(Execution.lease_expires_at)
        .limit(limit)
    )
    with session_scope() as session:
        return list(session.scalars(query))


def lease_unclaimed(execution_ids: Iterable[str], until: datetime) -> None:
    """Set when the reaper (re)publishes queued or retrying rows that no worker claimed."""
    with session_scope() as session:
        session.execute(
            by_primary_key(
                update(Execution)
                .where(Execution.id.in_(list(execution_ids)), Execution.status.in_(CLAIMABLE))
                .values(lease_expires_at=until)
                .execution_options(synchronize_session=False)
            )
        )


def end_lost(
    execution_id: str, attempts: int, status: ExecutionStatus, message: str, *, admitted: bool = False
) -> tuple[bool, list[Execution]]:
    """End a running attempt whose lease expired (its worker died, or lost the database):
    ``retrying`` to run it again, its lease still expired until the caller publishes it
    (``lease_unclaimed``), or ``failed`` when it has no attempts left. False when the row
    moved on meanwhile (its worker renewed the lease, or the run ended). An ``admitted`` one
    that fails frees its slots: returns the held executions admitted into them, to publish."""
    now = utcnow()
    with session_scope() as session:
        ended = end_attempt(
            session,
            execution_id,
            status,
            {"type": "WorkerLost", "message": message},
            attempts,
            now,
            Execution.status == S.RUNNING,
            Execution.lease_expires_at < now,
        )
        if ended and admitted and status in TERMINAL:
            return True, admissions.release(session.connection(), [execution_id])
        return ended, []


def purge_finished(before: datetime, batch: int = 1000) -> int:
    """Delete up to ``batch`` terminal executions that finished before ``before``, with their
    events and webhook deliveries."""
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(Execution.id)
                .where(Execution.status.in_(list(TERMINAL)), Execution.finished_at < before)
                .limit(batch)
            )
        )
        if ids:
            session.execute(delete(ExecutionEvent).where(ExecutionEvent.execution_id.in_(ids)))
            deliveries = select(WebhookDelivery.id).where(WebhookDelivery.execution_id.in_(ids))
            session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.execution_id.in_(ids)))
            session.execute(delete(Execution).where(Execution.id.in_(ids)))
        return len(ids)


def ping() -> None:
    """One round trip, for readiness."""
    with session_scope() as session:
        session.execute(select(1))
