"""An attempt's life on a worker: claim, heartbeat, finish.

Each is one transaction of a few round trips, for one execution or a chunk of many: a
claim is a locking SELECT, an UPDATE and the INSERT of the running events; a finish a
locking SELECT, one UPDATE (a CASE on the id where the rows differ) and the INSERT of
the events.
"""

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from agentq.core.db import session_scope
from agentq.core.models import TERMINAL, EventKind, Execution, ExecutionStatus, utcnow
from agentq.core.store import admissions
from agentq.core.store._rows import CLAIMABLE, EXECUTIONS, S, by_primary_key, detached_row
from agentq.core.store.deliveries import Change, write_outbox
from agentq.core.store.events import (
    Newest,
    NewEvent,
    RowsStatus,
    advanced,
    append,
    status_event,
    status_from_rows,
)

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
                session.execute(
                    update(EXECUTIONS).where(EXECUTIONS.c.id.in_(due)).values(lease_expires_at=now)
                )
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


def heartbeat(
    running: Collection[tuple[str, int]], worker: str, lease_s: float | None
) -> set[tuple[str, int]]:
    """Renew the leases of ``worker``'s running attempts, each ``(id, attempt)`` (when
    ``lease_s``), and return those to stop.

    An attempt must stop when its row is no longer running at that attempt: cancelled,
    or given to another attempt after this one lost its lease. Only rows ``worker``
    claimed are renewed: a run that lost its row never keeps another worker's alive.
    """
    ids = list({i for i, _ in running})
    with session_scope() as session:
        if lease_s is not None:
            session.execute(
                by_primary_key(
                    update(Execution)
                    .where(Execution.id.in_(ids), Execution.status == S.RUNNING, Execution.worker == worker)
                    .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
                    .execution_options(synchronize_session=False)
                )
            )
        rows = session.execute(
            select(Execution.id, Execution.status, Execution.attempts).where(Execution.id.in_(ids))
        ).all()
    current = {row.id: (row.status, row.attempts) for row in rows}
    return {(i, attempt) for i, attempt in running if current.get(i) != (S.RUNNING, attempt)}


@dataclass(frozen=True)
class Finish:
    """The outcome of one attempt. ``events`` (progress and log lines not recorded yet) go
    into the log before the status. A retrying row keeps a lease: if its retry message is
    lost, the reaper publishes it."""

    execution_id: str
    attempt: int
    status: ExecutionStatus
    result: Any = None
    error: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    lease_expires_at: datetime | None = None
    events: Sequence[NewEvent] = ()


def _per_row(column: str, values: Mapping[str, Any], otherwise: Any = None) -> Any:
    """The value of ``column`` for rows by id: one value when all agree, else a CASE on the
    id; with ``otherwise``, the rows that ``values`` leaves out get that."""
    first = next(iter(values.values()))
    if otherwise is None and all(value == first for value in values.values()):
        return first
    kind = EXECUTIONS.c[column].type
    return case(
        {i: bindparam(None, value, type_=kind) for i, value in values.items()},
        value=EXECUTIONS.c.id,
        else_=otherwise,
    )


# Locked in id order, so that two writers never lock the same rows in opposite orders.
# Core, not the ORM: plain columns need none of its loading machinery.
_FINISHING_ROWS = (
    select(
        *(EXECUTIONS.c.id, EXECUTIONS.c.status, EXECUTIONS.c.attempts, EXECUTIONS.c.last_event_seq),
        *(EXECUTIONS.c.owner, EXECUTIONS.c.webhook_events),
        EXECUTIONS.c.admitted,
    )
    .where(EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(EXECUTIONS.c.id)
    .with_for_update()
)


# The status event of a finished row whose outcome has no error (it succeeded), numbered
# and filled in from the row just updated, like the running events.
_FINISHED_EVENTS = status_from_rows(
    func.json_object("status", EXECUTIONS.c.status, "attempt", EXECUTIONS.c.attempts)
)


@dataclass(frozen=True)
class Finished:
    """What ``finish`` wrote: the ids, and the held executions admitted into the slots that
    the ended ones freed (to publish)."""

    written: set[str]
    admitted: list[Execution]


def finish(finishes: Sequence[Finish]) -> Finished:
    """Record the outcomes of attempts in one transaction (one UPDATE, then the INSERTs of
    their events); an attempt whose row moved on (cancelled, reclaimed) writes nothing.
    The slots of admitted executions that ended go to held ones in the same transaction."""
    if not finishes:
        return Finished(set(), [])
    by_id = {f.execution_id: f for f in finishes}
    now = utcnow()
    with session_scope() as session:
        t = EXECUTIONS.c
        current = session.connection().execute(_FINISHING_ROWS, {"ids": list(by_id)}).all()
        # Per column, each row's new value (the counters: what is added to them). Written
        # as one value where the rows agree, so the UPDATE stays short in the usual case.
        columns: dict[str, dict[str, Any]] = defaultdict(dict)
        progress = {}
        newest = []
        plain = []  # rows whose status event, carrying no error, the database writes
        changes = []  # the webhooks' outbox
        freed = []  # admitted rows that end: their slots go to held ones
        for row in current:
            done = by_id[row.id]
            if (row.status, row.attempts) != (S.RUNNING, done.attempt):
                if row.status is S.CANCELLED and row.admitted:  # its run has stopped now
                    freed.append(row.id)
                continue
            changes.append(Change(row.id, row.owner, row.webhook_events, done.status))
            logged = list(done.events)
            if done.error is None:
                plain.append(row.id)
            else:
                logged.append(status_event(done.status, attempt=done.attempt, error=done.error))
            count = len(logged) + (done.error is None)
            if logged:
                newest.append(Newest(row.id, logged, advanced(count, row.last_event_seq)))
            for column, value in (
                ("status", done.status),
                ("result", done.result),
                ("error", done.error),
                ("lease_expires_at", done.lease_expires_at),
                ("finished_at", now if done.status in TERMINAL else None),
                ("last_event_seq", count),
                ("log_lines", sum(1 for e in logged if e.kind is EventKind.LOG)),
            ):
                columns[column][row.id] = value
            if done.progress is not None:
                progress[row.id] = done.progress
            if row.admitted and done.status in TERMINAL:
                freed.append(row.id)
        written = set(columns["status"])
        if written:
            values = {column: _per_row(column, by_row) for column, by_row in columns.items()}
            values["last_event_seq"] = advanced(values["last_event_seq"])
            values["log_lines"] = t.log_lines + values["log_lines"]
            if progress:  # the others keep theirs
                values["progress"] = _per_row("progress", progress, otherwise=t.progress)
            session.execute(update(EXECUTIONS).where(t.id.in_(written)).values(values))
            append(session, newest, RowsStatus(_FINISHED_EVENTS, plain, now))
            write_outbox(session, changes, now)
        admitted = admissions.release(session.connection(), freed) if freed else []
        return Finished(written, admitted)
