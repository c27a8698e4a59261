"""Cancelling an execution, and freeing the slots of a cancelled run once it has stopped."""

from collections.abc import Sequence

from sqlalchemy import select, update

from agentq.core.db import session_scope
from agentq.core.errors import ExecutionNotFound, NotCancellable
from agentq.core.models import Execution, utcnow
from agentq.core.store import admissions
from agentq.core.store._rows import CANCELLABLE, S
from agentq.core.store.deliveries import Change, write_outbox
from agentq.core.store.events import Newest, advanced, append, status_event


def free_slots(execution_ids: Sequence[str]) -> list[Execution]:
    """Free the slots of admitted executions whose runs stopped after they were cancelled;
    returns the held executions admitted into them, to publish."""
    with session_scope() as session:
        return admissions.release(session.connection(), execution_ids)


def cancel_execution(execution_id: str, owner: str) -> tuple[Execution, list[Execution]]:
    """Cancel a queued, retrying or running execution; the row turns terminal at once.
    Returns it, and the held executions admitted into the slot it freed (to publish).

    The worker running it sees the status on its next heartbeat and stops the plugin; a
    running one keeps its slots until then (the worker frees them: ``free_slots``), so a
    limit is never exceeded by a run still stopping.
    Cancelling a cancelled execution again is a no-op; a finished one is a conflict.
    """
    now = utcnow()
    error = {"type": "cancelled", "message": "Cancelled on request."}
    admitted: list[Execution] = []
    with session_scope() as session:
        was = session.execute(
            select(Execution.status).where(Execution.id == execution_id).with_for_update()
        ).scalar()
        cancelled = session.execute(
            update(Execution)
            .where(Execution.id == execution_id, Execution.owner == owner, Execution.status.in_(CANCELLABLE))
            .values(
                status=S.CANCELLED,
                finished_at=now,
                lease_expires_at=None,
                held=None,
                waiting_on=None,
                error=error,
                last_event_seq=advanced(1),
            )
            .execution_options(synchronize_session=False)
        )
        row = session.get(Execution, execution_id)
        if cancelled.rowcount == 1 and row is not None:  # type: ignore[attr-defined]
            append(session, [Newest(row.id, [status_event(S.CANCELLED, error=error)], row.last_event_seq)])
            write_outbox(session, [Change(row.id, row.owner, row.webhook_events, S.CANCELLED)], now)
            if row.admitted and was is not S.RUNNING:
                admitted = admissions.release(session.connection(), [row.id])
    if row is None or row.owner != owner:
        raise ExecutionNotFound(execution_id)
    if row.status != S.CANCELLED:
        raise NotCancellable(f"Execution {execution_id} already ended as {row.status.value}.")
    return row, admitted
