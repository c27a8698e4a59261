"""The event log of executions (``execution_events``): its one writer, ``append``, and its
readers.

Every change of an execution is also an entry of its log (a status change, a progress
update or a log line), numbered per execution from 1, in order and without gaps: an SSE
client resumes after the last ``seq`` it saw. The row's ``last_event_seq`` is the seq of
its newest event. Whoever records events raises it by their count in the UPDATE that
changes the row (``advanced``), then inserts them with ``append`` in the same transaction,
numbered as the newest: the row stays locked in between, so concurrent writers (a cancel
and a finish) get gap-free, ordered numbers, and an UPDATE that matched nothing records
nothing.

The first event, ``queued``, is the new row itself (``QUEUED_SEQ``): a submission writes
no event, which saves it a statement.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from sqlalchemy import (
    JSON,
    ColumnElement,
    Insert,
    String,
    and_,
    bindparam,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from agentq.core.db import autocommit_scope, session_scope
from agentq.core.models import EventKind, Execution, ExecutionEvent, ExecutionStatus, UTCDateTime, utcnow
from agentq.core.store._rows import EVENTS, EXECUTIONS, S

QUEUED_SEQ = 1  # the seq of a new row's own event, ``queued``


@dataclass(frozen=True)
class NewEvent:
    """An event to record: ``data`` is the status, the progress, or the log line."""

    kind: EventKind
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


def status_event(status: ExecutionStatus, **details: Any) -> NewEvent:
    return NewEvent(EventKind.STATUS, {"status": status.value, **{k: v for k, v in details.items() if v}})


# -- the numbers ---------------------------------------------------------------------


@overload
def advanced(count: Any) -> ColumnElement[Any]: ...
@overload
def advanced(count: int, seq: int) -> int: ...
def advanced(count: Any, seq: Any = EXECUTIONS.c.last_event_seq) -> Any:
    """``last_event_seq`` once ``count`` more events are recorded: the UPDATE's new value of
    the column (``count`` may be a CASE on the id), or, with ``seq`` read off a locked
    row, the number itself."""
    return seq + count


def _seq(last: Any, count: int, i: int) -> Any:
    """The seq of the ``i``-th of the ``count`` newest events of a row whose
    ``last_event_seq`` is ``last``: a number read here, or the column itself in SQL."""
    back = count - 1 - i
    return last - back if back else last


# -- the writer ----------------------------------------------------------------------


@dataclass(frozen=True)
class Newest:
    """Events of one execution to append, in order, as its newest: the UPDATE of its row in
    this transaction raised ``last_event_seq`` by their count (``advanced``). ``last_seq``
    is that raised value when it was read here; None numbers them from the row in the
    database."""

    execution_id: str
    events: Sequence[NewEvent]
    last_seq: int | None = None


@dataclass(frozen=True)
class RowsStatus:
    """The status event of each row ``ids``, newest of its log, written by ``statement``
    (``status_from_rows``) with ``params`` and the time ``at``."""

    statement: Insert
    ids: Sequence[str]
    at: datetime
    params: Mapping[str, Any] = field(default_factory=dict)


_EVENT_COLUMNS = ["execution_id", "seq", "at", "kind", "data"]


def status_from_rows(data: ColumnElement[Any]) -> Insert:
    """An INSERT … SELECT of the status event of the rows ``ids`` just written: numbered
    and filled in (``data``, from their columns) by the database from the rows
    themselves, so no per-row work here. Built once; ``ids`` and ``at`` are parameters."""
    t = EXECUTIONS.c
    at = bindparam("at", type_=UTCDateTime())
    status = literal(EventKind.STATUS.value, String(16))
    source = select(t.id, _seq(t.last_event_seq, 1, 0), at, status, data).where(
        t.id.in_(bindparam("ids", expanding=True))
    )
    return insert(EVENTS).from_select(_EVENT_COLUMNS, source)


def append(session: Session, newest: Sequence[Newest] = (), rows_status: RowsStatus | None = None) -> None:
    """Insert events into the log, numbered as the newest of their executions: the one
    writer of ``execution_events``. The status events of ``rows_status`` come last, after
    those of the same rows in ``newest``.

    Events numbered here go in one multi-row INSERT (Core executemany: no unit-of-work
    bookkeeping); those numbered from their row, in an INSERT … SELECT each.
    """
    status_last = set(rows_status.ids) if rows_status and newest else set()
    numbered: list[dict[str, Any]] = []
    for entry in newest:
        if not entry.events:
            continue
        count = len(entry.events) + (entry.execution_id in status_last)
        if entry.last_seq is None:
            _insert_from_row(session, entry, count)
            continue
        numbered += [
            _event_values(entry.execution_id, _seq(entry.last_seq, count, i), event)
            for i, event in enumerate(entry.events)
        ]
    if numbered:
        session.connection().execute(insert(EVENTS), numbered)
    if rows_status and rows_status.ids:
        params = {"ids": list(rows_status.ids), "at": rows_status.at, **rows_status.params}
        session.execute(rows_status.statement, params)


# An INSERT … SELECT unions at most this many rows (SQLite allows 500 SELECTs in a compound).
_UNION_MAX = 100


def _insert_from_row(session: Session, entry: Newest, count: int) -> None:
    """``entry.events``, numbered from the row's ``last_event_seq`` in the database: no read."""
    for start in range(0, len(entry.events), _UNION_MAX):
        rows = [
            select(
                Execution.id,
                _seq(Execution.last_event_seq, count, start + i),
                literal(event.at, UTCDateTime()),
                literal(event.kind.value, String(16)),
                literal(event.data, JSON()),
            ).where(Execution.id == entry.execution_id)
            for i, event in enumerate(entry.events[start : start + _UNION_MAX])
        ]
        source = rows[0] if len(rows) == 1 else union_all(*rows)
        session.execute(insert(ExecutionEvent).from_select(_EVENT_COLUMNS, source))


def _event_values(execution_id: str, seq: int, event: NewEvent) -> dict[str, Any]:
    return {"execution_id": execution_id, "seq": seq, "at": event.at, "kind": event.kind, "data": event.data}


# -- progress and log lines ----------------------------------------------------------


def _event_counters(events: Sequence[NewEvent]) -> dict[str, Any]:
    values: dict[str, Any] = {"last_event_seq": advanced(len(events))}
    lines = sum(1 for e in events if e.kind is EventKind.LOG)
    if lines:
        values["log_lines"] = Execution.log_lines + lines
    return values


def _running_attempt(execution_id: str, attempt: int) -> Any:
    return and_(Execution.id == execution_id, Execution.status == S.RUNNING, Execution.attempts == attempt)


def record_events(batches: Mapping[tuple[str, int], Sequence[NewEvent]]) -> set[str]:
    """Record progress and log lines of running attempts, in one transaction; the row's
    ``progress`` becomes the newest progress. Returns the ids whose events were recorded
    (an attempt that was cancelled or reclaimed meanwhile records nothing).
    """
    recorded: dict[str, Sequence[NewEvent]] = {}
    with session_scope() as session:
        # In id order, so that two writers never lock the same rows in opposite orders.
        for (execution_id, attempt), events in sorted(batches.items()):
            if not events:
                continue
            values = _event_counters(events)
            progress = [e.data for e in events if e.kind is EventKind.PROGRESS]
            if progress:
                values["progress"] = progress[-1]
            done = session.execute(
                update(Execution)
                .where(_running_attempt(execution_id, attempt))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                recorded[execution_id] = events
        if recorded:
            # Our UPDATEs hold these rows: their counters are ours until the commit.
            rows = session.execute(
                select(Execution.id, Execution.last_event_seq).where(Execution.id.in_(list(recorded)))
            )
            # .all(): a Result has keys(), so dict() would index it like a mapping (and fail).
            last = dict(rows.tuples().all())
            append(session, [Newest(i, events, last[i]) for i, events in recorded.items()])
    return set(recorded)


# -- the reader ----------------------------------------------------------------------


def read_events(row: Execution, after_seq: int, limit: int = 500) -> list[ExecutionEvent]:
    """Events of the execution ``row`` numbered after ``after_seq``, in order (owner checked
    by the caller).

    The first, ``queued`` at ``created_at``, is read off the row: a submission writes no
    event, which saves it a statement. Rows written before that have theirs stored as seq 1.
    """
    query = (
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == row.id, ExecutionEvent.seq > after_seq)
        .order_by(ExecutionEvent.seq)
        .limit(limit)
    )
    with autocommit_scope() as session:
        events = list(session.scalars(query))
    if after_seq < QUEUED_SEQ and not (events and events[0].seq == QUEUED_SEQ):
        queued = NewEvent(EventKind.STATUS, {"status": S.QUEUED.value}, row.created_at)
        events = [ExecutionEvent(**_event_values(row.id, QUEUED_SEQ, queued)), *events][:limit]
    return events
