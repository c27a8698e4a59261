"""Claiming executions for a run: the step between queued (or retrying) and running.

A claim is a locking SELECT, an UPDATE and the INSERT of the running events, in one
transaction: of the messages that arrived together, or of the finish that admitted the
executions (``lifecycle.finish`` with a ``Starter``).
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from agentq.core.db import session_scope
from agentq.core.models import TERMINAL, Execution, ExecutionStatus, utcnow
from agentq.core.store import admissions
from agentq.core.store._rows import CLAIMABLE, EXECUTIONS, S, by_primary_key, detached_row
from agentq.core.store.deliveries import Change, write_outbox
from agentq.core.store.events import Newest, RowsStatus, advanced, append, status_event, status_from_rows

# What a worker reads of a claimed row: the command, its limits, what a retry publishes.
_CLAIMED_COLUMNS = (
    *(Execution.id, Execution.status, Execution.attempts, Execution.plugin, Execution.command),
    *(Execution.params, Execution.queue, Execution.priority, Execution.timeout_s),
    *(Execution.max_retries, Execution.log_lines, Execution.owner, Execution.webhook_events),
    Execution.admitted,
)
_CLAIMED_KEYS = [column.key for column in _CLAIMED_COLUMNS]
# The claim's statements, built once (the hot path): ``ids`` and ``attempts`` are lists.
_CLAIMABLE_ROWS = by_primary_key(
    select(*_CLAIMED_COLUMNS)
    .where(
        Execution.id.in_(bindparam("ids", expanding=True)),
        Execution.status.in_(CLAIMABLE),
        Execution.attempts.in_(bindparam("attempts", expanding=True)),
        Execution.held.is_(None),  # never published; a message naming one is stale or forged
    )
    .order_by(Execution.id)
    .with_for_update()
)
_START_RUNNING = (
    update(EXECUTIONS)
    .where(EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=S.RUNNING,
        attempts=EXECUTIONS.c.attempts + 1,
        started_at=bindparam("now"),
        worker=bindparam("worker"),
        lease_expires_at=bindparam("lease_expires_at"),
        last_event_seq=advanced(1),
    )
)
_RUNNING_EVENTS = status_from_rows(
    func.json_object(
        "status", S.RUNNING.value, "attempt", EXECUTIONS.c.attempts, "worker", bindparam("worker")
    )
)


def claim(
    messages: Sequence[tuple[Sequence[str], int]], worker: str, lease_s: float
) -> list[list[Execution]]:
    """Take the executions of messages, each ``(ids, attempt)``, in one transaction; returns
    the rows each message took, with the columns a worker reads (``_CLAIMED_COLUMNS``):
    running, or failed when no attempt was left (``max_retries + 1`` made already). Those
    another delivery (or an earlier message of the same call) already took are left out.

    Claimable: queued or retrying at exactly the message's attempt count, so a duplicate
    or stale message finds attempts already moved on. A running row is never taken, not
    even one whose lease expired: the reaper decides about those (``end_lost``). The rows
    are locked as they are read, so the UPDATE changes exactly the rows returned.
    """
    now = utcnow()
    with session_scope() as session:
        return claim_in(session, messages, worker, lease_s, now)


def claim_in(
    session: Session,
    messages: Sequence[tuple[Sequence[str], int]],
    worker: str,
    lease_s: float,
    now: datetime,
) -> list[list[Execution]]:
    """``claim`` in the caller's transaction (a finish starting what it admitted, too)."""
    wanted = {
        "ids": list({i for ids, _ in messages for i in ids}),
        "attempts": list({attempt for _, attempt in messages}),
    }
    found = {row.id: row for row in session.connection().execute(_CLAIMABLE_ROWS, wanted)}
    taken = [
        [found.pop(i) for i in dict.fromkeys(ids) if i in found and found[i].attempts == attempt]
        for ids, attempt in messages
    ]
    ids: list[str] = []
    exhausted: set[str] = set()  # out of attempts (left so by an older worker): failed, not run
    freed: list[str] = []  # their slots, if they held any
    for row in (row for message_rows in taken for row in message_rows):
        if row.attempts <= row.max_retries:
            ids.append(row.id)
            continue
        exhausted.add(row.id)
        message = (
            f"Attempt {row.attempts + 1} would exceed max_retries={row.max_retries}; "
            "the execution is failed instead of run again."
        )
        end_attempt(
            session, row.id, S.FAILED, {"type": "RetriesExhausted", "message": message}, row.attempts, now
        )
        if row.admitted:
            freed.append(row.id)
    if freed:  # rare: what takes their slots is left to the reaper's next pass to publish
        due = [e.id for e in admissions.release(session.connection(), freed)]
        if due:
            session.execute(update(EXECUTIONS).where(EXECUTIONS.c.id.in_(due)).values(lease_expires_at=now))
    if ids:
        lease_expires_at = now + timedelta(seconds=lease_s)
        session.execute(
            _START_RUNNING,
            {"ids": ids, "now": now, "worker": worker, "lease_expires_at": lease_expires_at},
        )
        append(session, rows_status=RowsStatus(_RUNNING_EVENTS, ids, now, {"worker": worker}))
        started = (row for message_rows in taken for row in message_rows if row.id not in exhausted)
        write_outbox(session, (Change(r.id, r.owner, r.webhook_events, S.RUNNING) for r in started), now)
    # The rows as the UPDATE left them; only the claimed columns are set.
    return [
        [
            detached_row(zip(_CLAIMED_KEYS, row, strict=True), status=S.FAILED)
            if row.id in exhausted
            else detached_row(
                zip(_CLAIMED_KEYS, row, strict=True), status=S.RUNNING, attempts=row.attempts + 1
            )
            for row in message_rows
        ]
        for message_rows in taken
    ]


def end_attempt(
    session: Session,
    execution_id: str,
    status: ExecutionStatus,
    error: dict[str, Any],
    attempts: int,
    now: datetime,
    *conditions: Any,
) -> bool:
    """Set an execution at ``attempts`` (and ``conditions``) to ``status`` (failed, or
    retrying under an expired lease) with ``error``, and log it; False if no row matched.
    The caller frees the slots of an admitted one that ended (``admissions.release``)."""
    done = session.execute(
        update(Execution)
        .where(Execution.id == execution_id, Execution.attempts == attempts, *conditions)
        .values(
            status=status,
            finished_at=now if status in TERMINAL else None,
            lease_expires_at=None if status in TERMINAL else now,
            error=error,
            last_event_seq=advanced(1),
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    append(session, [Newest(execution_id, [status_event(status, attempt=attempts, error=error)])])
    if status in TERMINAL:  # rare (a lost worker, no attempts left): one more read is fine
        owner, flags = session.execute(
            select(Execution.owner, Execution.webhook_events).where(Execution.id == execution_id)
        ).one()
        write_outbox(session, [Change(execution_id, owner, flags, status)], now)
    return True
