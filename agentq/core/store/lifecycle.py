"""An attempt's life on a worker after its claim (``claiming``): heartbeat, finish.

Each is one transaction of a few round trips, for one execution or a chunk of many: a
finish is a locking SELECT, one UPDATE (a CASE on the id where the rows differ) and the
INSERT of the events.
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from agentq.core.db import session_scope
from agentq.core.models import TERMINAL, EventKind, Execution, ExecutionStatus, utcnow
from agentq.core.store import admissions
from agentq.core.store._rows import EXECUTIONS, S, by_primary_key
from agentq.core.store.claiming import claim_in
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
    """What ``finish`` wrote: the ids, the held executions admitted into the slots that the
    ended ones freed (to publish), and those of them it claimed for the finishing worker
    (to start at once: ``Starter``)."""

    written: set[str]
    admitted: list[Execution]
    started: list[Execution] = field(default_factory=list)


@dataclass(frozen=True)
class Starter:
    """The finishing worker: an execution admitted into a slot its run freed that it can
    run (``runs``: its plugin is loaded and its queue consumed there) is claimed for it in
    the finish's transaction, so the slot is refilled without a trip through the broker."""

    worker: str
    lease_s: float
    runs: Callable[[Execution], bool]


def finish(finishes: Sequence[Finish], starter: Starter | None = None) -> Finished:
    """Record the outcomes of attempts in one transaction (one UPDATE, then the INSERTs of
    their events); an attempt whose row moved on (cancelled, reclaimed) writes nothing.
    The slots of admitted executions that ended go to held ones in the same transaction;
    with a ``starter``, those it can run are claimed for it there too."""
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
        return _refill(session, written, admitted, starter, now)


def _refill(
    session: Session, written: set[str], admitted: list[Execution], starter: Starter | None, now: datetime
) -> Finished:
    """Claim for the finishing worker the admitted executions it runs (``Starter``)."""
    if starter is None or not (mine := [e for e in admitted if starter.runs(e)]):
        return Finished(written, admitted)
    by_attempts: dict[int, list[str]] = defaultdict(list)
    for execution in mine:
        by_attempts[execution.attempts].append(execution.id)
    claimed = [
        row
        for rows in claim_in(
            session, [(ids, n) for n, ids in by_attempts.items()], starter.worker, starter.lease_s, now
        )
        for row in rows
    ]
    taken = {row.id for row in claimed}
    return Finished(written, [e for e in admitted if e.id not in taken], claimed)
