"""Every SQL statement of agentq. Each function is one transaction.

Hot paths stay at a few round trips, for one execution or a chunk of many: submit (one
multi-row INSERT per table, plus one SELECT when idempotency keys are given), claim
(locking SELECT + UPDATE + event INSERT), finish (locking SELECT + one UPDATE, CASE on
the id where rows differ + event INSERT).

Every change of an execution is also an entry of its event log (``execution_events``),
numbered per execution. The UPDATE that changes the row raises its ``last_event_seq`` by
the number of events it records, and the INSERT of those events follows in the same
transaction: the row stays locked in between, so concurrent writers (a cancel and a
finish) get gap-free, ordered numbers, and an UPDATE that matched nothing records nothing.
"""

from collections import defaultdict
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    Connection,
    Result,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, configure_mappers
from sqlalchemy.sql import Executable
from ulid import ULID

from core.db import autocommit_scope, loop_connection, session_scope
from core.errors import ExecutionNotFound, IdempotencyConflict, NameTaken, NotCancellable, ScheduleNotFound
from core.models import (
    ADMIN_OWNER,
    TERMINAL,
    ApiKey,
    EventKind,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    PluginCommand,
    Schedule,
    UTCDateTime,
    utcnow,
)
from core.settings import settings

S = ExecutionStatus
_EXECUTIONS = cast(Table, Execution.__table__)
_EVENTS = cast(Table, ExecutionEvent.__table__)
_CLAIMABLE = (S.QUEUED, S.RETRYING)
_CANCELLABLE = (S.QUEUED, S.RUNNING, S.RETRYING)
# MySQL's dialect names: a mysql:// URL to MariaDB is "mysql", a mariadb:// one "mariadb".
_MYSQL_DIALECTS = ("mysql", "mariadb")
_Locking = TypeVar("_Locking", bound=Executable)
T = TypeVar("T")


def _by_primary_key(statement: _Locking) -> _Locking:
    """``statement`` (``id IN (…) AND status …``) reads its rows through the primary key.

    Writers lock the rows they share in id order, through the primary key, so that they
    never lock them in opposite orders. With few rows in a status, MySQL would rather scan
    the status index, locking its entries before the rows: against a finish's UPDATE by id
    (rows, then their index entries), the opposite order, and the two deadlock.
    """
    for dialect in _MYSQL_DIALECTS:
        if isinstance(statement, Select):
            statement = statement.with_hint(Execution, "FORCE INDEX (PRIMARY)", dialect)
        elif isinstance(statement, Update):
            statement = statement.with_hint("FORCE INDEX (PRIMARY)", dialect_name=dialect)
    return statement


# The statements of a store function apart from their I/O: a generator that yields each
# (statement, parameters), is sent its result, and returns the answer. One plan serves
# both a thread (``_run``) and the event loop (``_run_on_loop``).
_Plan = Generator[tuple[Executable, Any], Result[Any], T]


def _run(plan: _Plan[T], connection: Connection) -> T:
    try:
        step = next(plan)
        while True:
            step = plan.send(connection.execute(*step))
    except StopIteration as done:
        return cast(T, done.value)


async def _run_on_loop(plan: _Plan[T]) -> T:
    """``plan`` on a connection of ``db.async_engine`` (``db.loop_connection``), where each
    statement commits as it runs."""
    async with loop_connection() as connection:
        try:
            step = next(plan)
            while True:
                step = plan.send(await connection.execute(*step))
        except StopIteration as done:
            return cast(T, done.value)


def new_id() -> str:
    """A sortable id (ULID): keyset pagination orders by it."""
    return str(ULID())


@dataclass(frozen=True)
class NewExecution:
    plugin: str
    command: str
    params: dict[str, Any]
    queue: str
    priority: int
    timeout_s: float
    max_retries: int
    idempotency_key: str | None = None
    schedule_id: str | None = None
    slot_at: datetime | None = None
    owner: str = ADMIN_OWNER


@dataclass
class Submitted:
    execution: Execution
    created: bool = field(default=True)


@dataclass(frozen=True)
class NewEvent:
    """An event to record: ``data`` is the status, the progress, or the log line."""

    kind: EventKind
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


def status_event(status: ExecutionStatus, **details: Any) -> NewEvent:
    return NewEvent(EventKind.STATUS, {"status": status.value, **{k: v for k, v in details.items() if v}})


# An INSERT … SELECT unions at most this many rows (SQLite allows 500 SELECTs in a compound).
_UNION_MAX = 100
_EVENT_COLUMNS = ["execution_id", "seq", "at", "kind", "data"]


def _insert_newest_events(session: Session, execution_id: str, events: Sequence[NewEvent]) -> None:
    """Insert ``events`` as the newest of an execution whose UPDATE in this transaction
    raised ``last_event_seq`` by ``len(events)``: numbered from the row itself, so no read."""
    total = len(events)
    for start in range(0, total, _UNION_MAX):
        rows = [
            select(
                Execution.id,
                Execution.last_event_seq - (total - 1 - start - i),
                literal(event.at, UTCDateTime()),
                literal(event.kind.value, String(16)),
                literal(event.data, JSON()),
            ).where(Execution.id == execution_id)
            for i, event in enumerate(events[start : start + _UNION_MAX])
        ]
        source = rows[0] if len(rows) == 1 else union_all(*rows)
        session.execute(insert(ExecutionEvent).from_select(_EVENT_COLUMNS, source))


def _event_row(execution_id: str, seq: int, event: NewEvent) -> ExecutionEvent:
    return ExecutionEvent(**_event_values(execution_id, seq, event))


def _event_values(execution_id: str, seq: int, event: NewEvent) -> dict[str, Any]:
    return {"execution_id": execution_id, "seq": seq, "at": event.at, "kind": event.kind, "data": event.data}


def _status_events(data: Any, at: Any) -> Any:
    """An INSERT … SELECT of the status event of the rows ``ids`` just written: numbered
    (``last_event_seq``) and filled in by the database from the rows themselves, so no
    per-row work here. Built once; ``ids`` is a parameter."""
    t = _EXECUTIONS.c
    status = literal(EventKind.STATUS.value, String(16))
    source = select(t.id, t.last_event_seq, at, status, data).where(
        t.id.in_(bindparam("ids", expanding=True))
    )
    return insert(_EVENTS).from_select(_EVENT_COLUMNS, source)


_RUNNING_EVENTS = _status_events(
    func.json_object(
        "status", S.RUNNING.value, "attempt", _EXECUTIONS.c.attempts, "worker", bindparam("worker")
    ),
    bindparam("at", type_=UTCDateTime()),
)


def _insert_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Core executemany: one multi-row INSERT, no unit-of-work bookkeeping."""
    session.connection().execute(insert(_EVENTS), events)


def _same_request(row: Execution, spec: NewExecution) -> bool:
    return (row.plugin, row.command, row.params) == (spec.plugin, spec.command, spec.params)


def create_executions(specs: Sequence[NewExecution]) -> list[Submitted]:
    """Insert executions in one transaction; a known idempotency key returns its execution.

    A concurrent submit with the same key loses the unique-key race and is answered
    from the winner's row on the second pass.
    """
    try:
        return _create_executions(specs)
    except IntegrityError:
        return _create_executions(specs)


def _create_executions(specs: Sequence[NewExecution]) -> list[Submitted]:
    # One row is one INSERT, atomic by itself: written in autocommit, it saves the COMMIT's
    # round trip (a known key's SELECT before it needs none either: the unique key settles
    # a race). More rows may go as several INSERTs (PyMySQL splits an executemany at
    # 1 MB), which must commit together.
    with autocommit_scope() if len(specs) == 1 else session_scope() as session:
        return _run(_creating(specs), session.connection())


async def create_execution_on_loop(spec: NewExecution) -> Submitted:
    """``create_executions([spec])[0]``, awaited on the event loop (``db.async_engine``)."""
    try:
        (submitted,) = await _run_on_loop(_creating([spec]))
    except IntegrityError:
        (submitted,) = await _run_on_loop(_creating([spec]))
    return submitted


def _creating(specs: Sequence[NewExecution]) -> _Plan[list[Submitted]]:
    keys = {s.idempotency_key for s in specs if s.idempotency_key}
    now = utcnow()
    # Not claimed by then, the reaper publishes it again: a crash between the commit and
    # the publish loses no execution.
    publish_by = now + timedelta(seconds=settings.queued_lease_s)
    # Keys are per owner: (owner, key) -> its execution.
    known: dict[tuple[str, str], Execution] = {}
    if keys:
        owners = list({s.owner for s in specs if s.idempotency_key})
        rows = yield _ROWS_BY_KEY, {"owners": owners, "keys": list(keys)}
        known = {(row.owner, row.idempotency_key): _detached_row(row._mapping) for row in rows}
    out: list[Submitted] = []
    new: list[dict[str, Any]] = []  # the columns of the rows to insert
    for spec in specs:
        key = spec.idempotency_key
        if key and (spec.owner, key) in known:
            row = known[(spec.owner, key)]
            if not _same_request(row, spec):
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used for a different request "
                    f"({row.plugin}/{row.command}, execution {row.id}); use a new key."
                )
            out.append(Submitted(row, created=False))
            continue
        values = _new_values(spec, now, publish_by)
        new.append(values)
        row = _inserted_row(values)
        if key:
            known[(spec.owner, key)] = row
        out.append(Submitted(row))
    if new:
        yield _INSERT_EXECUTIONS, new
    return out


_ROWS_BY_KEY = select(_EXECUTIONS).where(
    _EXECUTIONS.c.owner.in_(bindparam("owners", expanding=True)),
    _EXECUTIONS.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)


def _new_values(spec: NewExecution, now: datetime, publish_by: datetime) -> dict[str, Any]:
    """The columns of a new execution: inserted as they are, and the ORM row built from them."""
    return {
        "id": new_id(),
        "owner": spec.owner,
        "plugin": spec.plugin,
        "command": spec.command,
        "params": spec.params,
        "queue": spec.queue,
        "status": S.QUEUED,
        "attempts": 0,
        "max_retries": spec.max_retries,
        "priority": spec.priority,
        "timeout_s": spec.timeout_s,
        "schedule_id": spec.schedule_id,
        "slot_at": spec.slot_at,
        "idempotency_key": spec.idempotency_key,
        "created_at": now,
        "lease_expires_at": publish_by,
        "last_event_seq": 1,
        "log_lines": 0,
    }


# The columns a new row leaves NULL, and how ORM objects are made without __init__.
_NULL_WHEN_NEW = dict.fromkeys(("result", "error", "progress", "worker", "started_at", "finished_at"))
configure_mappers()  # as the first ORM query would: objects built below need the attributes set up
_EXECUTION_CLASS = sa_inspect(Execution).class_manager


def _detached_row(columns: Mapping[Any, Any] | Iterable[tuple[str, Any]], **more: Any) -> Execution:
    """The ORM object (in no session) of a row whose columns are ``columns`` and ``more``,
    built the way the ORM builds the rows it loads: its attributes set in its
    ``__dict__``, no constructor or attribute events. ``Execution(**values)`` costs 25
    times as much, and answers read its attributes 3 times slower, those left unset
    taking the slow path."""
    row: Execution = _EXECUTION_CLASS.new_instance()
    state = row.__dict__
    state.update(columns)
    state.update(more)
    return row


def _inserted_row(values: dict[str, Any]) -> Execution:
    """The ORM object of a row inserted from ``values``."""
    return _detached_row(values, **_NULL_WHEN_NEW)


# New executions (their columns) in one multi-row INSERT: Core executemany of plain dicts,
# no unit of work, no attribute reads. Their first event is the row itself (see
# ``read_events``): nothing else to write.
_INSERT_EXECUTIONS = insert(_EXECUTIONS)


def _insert_new(session: Session, new: Sequence[dict[str, Any]]) -> None:
    if new:
        session.connection().execute(_INSERT_EXECUTIONS, new)


def _page(session: Session, query: Any, limit: int) -> tuple[list[Any], str | None]:
    """Run a keyset query that asked for ``limit + 1`` rows: the page and the next cursor."""
    rows = list(session.scalars(query))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def get_execution(execution_id: str, owner: str) -> Execution:
    """An execution of ``owner``'s; another owner's id is as unknown as a wrong one."""
    return _the_one(get_executions([(execution_id, owner)]))


async def get_execution_on_loop(execution_id: str, owner: str) -> Execution:
    """``get_execution``, awaited on the event loop (``db.async_engine``)."""
    return _the_one(await get_executions_on_loop([(execution_id, owner)]))


async def get_executions_on_loop(wanted: Sequence[tuple[str, str]]) -> list[Execution | ExecutionNotFound]:
    """``get_executions``, awaited on the event loop (``db.async_engine``)."""
    return await _run_on_loop(_reading(wanted))


def _the_one(found: Sequence[Execution | ExecutionNotFound]) -> Execution:
    (row,) = found
    if isinstance(row, ExecutionNotFound):
        raise row
    return row


def get_executions(wanted: Sequence[tuple[str, str]]) -> list[Execution | ExecutionNotFound]:
    """Executions by (id, owner), in one SELECT: each found, or the error of one not found."""
    with autocommit_scope() as session:
        return _run(_reading(wanted), session.connection())


_ROWS_BY_ID = select(_EXECUTIONS).where(_EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))


def _reading(wanted: Sequence[tuple[str, str]]) -> _Plan[list[Execution | ExecutionNotFound]]:
    found = yield _ROWS_BY_ID, {"ids": list({i for i, _ in wanted})}
    rows = {row.id: _detached_row(row._mapping) for row in found}
    return [
        row if (row := rows.get(i)) is not None and row.owner == owner else ExecutionNotFound(i)
        for i, owner in wanted
    ]


def list_executions(
    owner: str,
    *,
    status: ExecutionStatus | None = None,
    plugin: str | None = None,
    schedule_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Execution], str | None]:
    """Newest first, by keyset on the id; returns the page and the cursor of the next one."""
    query = select(Execution).where(Execution.owner == owner).order_by(Execution.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(Execution.status == status)
    if plugin is not None:
        query = query.where(Execution.plugin == plugin)
    if schedule_id is not None:
        query = query.where(Execution.schedule_id == schedule_id)
    if cursor:
        query = query.where(Execution.id < cursor)
    with session_scope() as session:
        return _page(session, query, limit)


def cancel_execution(execution_id: str, owner: str) -> Execution:
    """Cancel a queued, retrying or running execution; the row turns terminal at once.

    The worker running it sees the status on its next heartbeat and stops the plugin.
    Cancelling a cancelled execution again is a no-op; a finished one is a conflict.
    """
    now = utcnow()
    error = {"type": "cancelled", "message": "Cancelled on request."}
    with session_scope() as session:
        cancelled = session.execute(
            update(Execution)
            .where(Execution.id == execution_id, Execution.owner == owner, Execution.status.in_(_CANCELLABLE))
            .values(
                status=S.CANCELLED,
                finished_at=now,
                lease_expires_at=None,
                error=error,
                last_event_seq=Execution.last_event_seq + 1,
            )
            .execution_options(synchronize_session=False)
        )
        row = session.get(Execution, execution_id)
        if cancelled.rowcount == 1 and row is not None:  # type: ignore[attr-defined]
            session.add(_event_row(row.id, row.last_event_seq, status_event(S.CANCELLED, error=error)))
    if row is None or row.owner != owner:
        raise ExecutionNotFound(execution_id)
    if row.status != S.CANCELLED:
        raise NotCancellable(f"Execution {execution_id} already ended as {row.status.value}.")
    return row


# What a worker reads of a claimed row: the command, its limits, what a retry publishes.
_CLAIMED_COLUMNS = (
    *(Execution.id, Execution.status, Execution.attempts, Execution.plugin, Execution.command),
    *(Execution.params, Execution.queue, Execution.priority, Execution.timeout_s),
    *(Execution.max_retries, Execution.log_lines),
)
_CLAIMED_KEYS = [column.key for column in _CLAIMED_COLUMNS]
# The claim's statements, built once (the hot path): ``ids`` and ``attempts`` are lists.
_CLAIMABLE_ROWS = _by_primary_key(
    select(*_CLAIMED_COLUMNS)
    .where(
        Execution.id.in_(bindparam("ids", expanding=True)),
        or_(
            and_(
                Execution.status.in_(_CLAIMABLE),
                Execution.attempts.in_(bindparam("attempts", expanding=True)),
            ),
            and_(Execution.status == S.RUNNING, Execution.lease_expires_at < bindparam("now")),
        ),
    )
    .order_by(Execution.id)
    .with_for_update()
)
_START_RUNNING = (
    update(_EXECUTIONS)
    .where(_EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=S.RUNNING,
        attempts=_EXECUTIONS.c.attempts + 1,
        started_at=bindparam("now"),
        worker=bindparam("worker"),
        lease_expires_at=bindparam("lease_expires_at"),
        last_event_seq=_EXECUTIONS.c.last_event_seq + 1,
    )
)


def claim(
    messages: Sequence[tuple[Sequence[str], int]], worker: str, lease_s: float
) -> list[list[Execution]]:
    """Take the executions of messages, each ``(ids, attempt)``, in one transaction; returns
    the rows each message took, with the columns a worker reads (``_CLAIMED_COLUMNS``).
    Those another delivery (or an earlier message of the same call) already took are left
    out.

    Claimable: queued/retrying at exactly the message's attempt count (so a duplicate
    message finds attempts already moved on), or running under a lease that has expired
    (its worker died; the lost run counts as an attempt). The rows are locked as they are
    read, so the UPDATE changes exactly the rows returned.
    """
    now = utcnow()
    with session_scope() as session:
        wanted = {
            "ids": list({i for ids, _ in messages for i in ids}),
            "attempts": list({attempt for _, attempt in messages}),
            "now": now,
        }
        found = {row.id: row for row in session.connection().execute(_CLAIMABLE_ROWS, wanted)}
        taken = [
            [
                found.pop(i)
                for i in dict.fromkeys(ids)
                if i in found and (found[i].status is S.RUNNING or found[i].attempts == attempt)
            ]
            for ids, attempt in messages
        ]
        ids = [row.id for message_rows in taken for row in message_rows]
        if not ids:
            return [[] for _ in messages]
        lease_expires_at = now + timedelta(seconds=lease_s)
        session.execute(
            _START_RUNNING, {"ids": ids, "now": now, "worker": worker, "lease_expires_at": lease_expires_at}
        )
        session.execute(_RUNNING_EVENTS, {"ids": ids, "worker": worker, "at": now})
    # The rows as the UPDATE left them; only the claimed columns are set.
    return [
        [
            _detached_row(zip(_CLAIMED_KEYS, row, strict=True), status=S.RUNNING, attempts=row.attempts + 1)
            for row in message_rows
        ]
        for message_rows in taken
    ]


def _running_attempt(execution_id: str, attempt: int) -> Any:
    return and_(Execution.id == execution_id, Execution.status == S.RUNNING, Execution.attempts == attempt)


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
    kind = _EXECUTIONS.c[column].type
    return case(
        {i: bindparam(None, value, type_=kind) for i, value in values.items()},
        value=_EXECUTIONS.c.id,
        else_=otherwise,
    )


# Locked in id order, so that two writers never lock the same rows in opposite orders.
# Core, not the ORM: plain columns need none of its loading machinery.
_FINISHING_ROWS = (
    select(_EXECUTIONS.c.id, _EXECUTIONS.c.status, _EXECUTIONS.c.attempts, _EXECUTIONS.c.last_event_seq)
    .where(_EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_EXECUTIONS.c.id)
    .with_for_update()
)


# The status event of a finished row whose outcome has no error (it succeeded), numbered
# and filled in from the row just updated, like the queued and running events.
_FINISHED_EVENTS = _status_events(
    func.json_object("status", _EXECUTIONS.c.status, "attempt", _EXECUTIONS.c.attempts),
    bindparam("at", type_=UTCDateTime()),
)


def finish(finishes: Sequence[Finish]) -> set[str]:
    """Record the outcomes of attempts in one transaction (one UPDATE, then the INSERTs of
    their events); returns the ids written. An attempt whose row moved on (cancelled,
    reclaimed) writes nothing."""
    if not finishes:
        return set()
    by_id = {f.execution_id: f for f in finishes}
    now = utcnow()
    with session_scope() as session:
        t = _EXECUTIONS.c
        current = session.connection().execute(_FINISHING_ROWS, {"ids": list(by_id)}).all()
        # Per column, each row's new value (the counters: what is added to them). Written
        # as one value where the rows agree, so the UPDATE stays short in the usual case.
        columns: dict[str, dict[str, Any]] = defaultdict(dict)
        progress = {}
        events = []
        plain = []  # rows whose status event, carrying no error, the database writes
        for row in current:
            done = by_id[row.id]
            if (row.status, row.attempts) != (S.RUNNING, done.attempt):
                continue
            logged = list(done.events)
            if done.error is None:
                plain.append(row.id)
            else:
                logged.append(status_event(done.status, attempt=done.attempt, error=done.error))
            events += [_event_values(row.id, row.last_event_seq + 1 + i, e) for i, e in enumerate(logged)]
            for column, value in (
                ("status", done.status),
                ("result", done.result),
                ("error", done.error),
                ("lease_expires_at", done.lease_expires_at),
                ("finished_at", now if done.status in TERMINAL else None),
                ("last_event_seq", len(logged) + (done.error is None)),
                ("log_lines", sum(1 for e in logged if e.kind is EventKind.LOG)),
            ):
                columns[column][row.id] = value
            if done.progress is not None:
                progress[row.id] = done.progress
        written = set(columns["status"])
        if written:
            values = {column: _per_row(column, by_row) for column, by_row in columns.items()}
            values["last_event_seq"] = t.last_event_seq + values["last_event_seq"]
            values["log_lines"] = t.log_lines + values["log_lines"]
            if progress:  # the others keep theirs
                values["progress"] = _per_row("progress", progress, otherwise=t.progress)
            session.execute(update(_EXECUTIONS).where(t.id.in_(written)).values(values))
            if events:
                _insert_events(session, events)
            if plain:
                session.execute(_FINISHED_EVENTS, {"ids": plain, "at": now})
        return written


def _event_counters(events: Sequence[NewEvent]) -> dict[str, Any]:
    values: dict[str, Any] = {"last_event_seq": Execution.last_event_seq + len(events)}
    lines = sum(1 for e in events if e.kind is EventKind.LOG)
    if lines:
        values["log_lines"] = Execution.log_lines + lines
    return values


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
            last = {execution_id: seq for execution_id, seq in rows}
            session.add_all(
                _event_row(execution_id, last[execution_id] - len(events) + 1 + i, event)
                for execution_id, events in recorded.items()
                for i, event in enumerate(events)
            )
    return set(recorded)


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
    if after_seq < 1 and not (events and events[0].seq == 1):
        queued = NewEvent(EventKind.STATUS, {"status": S.QUEUED.value}, row.created_at)
        events = [_event_row(row.id, 1, queued), *events][:limit]
    return events


def heartbeat(running: dict[str, int], lease_s: float | None) -> set[str]:
    """Renew the leases of running attempts (when ``lease_s``) and return those to stop.

    An attempt must stop when its row is no longer running at that attempt: cancelled,
    or reclaimed by another worker after this one lost its lease.
    """
    ids = list(running)
    with session_scope() as session:
        if lease_s is not None:
            session.execute(
                _by_primary_key(
                    update(Execution)
                    .where(Execution.id.in_(ids), Execution.status == S.RUNNING)
                    .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
                    .execution_options(synchronize_session=False)
                )
            )
        rows = session.execute(
            select(Execution.id, Execution.status, Execution.attempts).where(Execution.id.in_(ids))
        ).all()
    current = {row.id: (row.status, row.attempts) for row in rows}
    return {i for i, attempt in running.items() if current.get(i) != (S.RUNNING, attempt)}


def publish_catalog(entries: Sequence[PluginCommand]) -> None:
    """Upsert the plugin commands a worker offers."""
    with session_scope() as session:
        for entry in entries:
            session.merge(entry)


def read_catalog() -> list[PluginCommand]:
    with session_scope() as session:
        return list(
            session.scalars(select(PluginCommand).order_by(PluginCommand.plugin, PluginCommand.command))
        )


def count_executions_by_status() -> dict[str, int]:
    with session_scope() as session:
        rows = session.execute(select(Execution.status, func.count()).group_by(Execution.status)).all()
    return {ExecutionStatus(status).value: int(n) for status, n in rows}


def error_types(execution_ids: Sequence[str]) -> dict[str, str]:
    """The ``error.type`` each execution recorded, by id (those with none are left out)."""
    query = select(Execution.id, Execution.error).where(Execution.id.in_(list(execution_ids)))
    with autocommit_scope() as session:
        rows = session.execute(query).all()
    return {i: str(error["type"]) for i, error in rows if isinstance(error, dict) and "type" in error}


def ping() -> None:
    """One round trip, for readiness."""
    with session_scope() as session:
        session.execute(select(1))


# -- schedules ---------------------------------------------------------------------


def create_schedule(schedule: Schedule) -> Schedule:
    try:
        with session_scope() as session:
            session.add(schedule)
    except IntegrityError:
        raise NameTaken(f"A schedule named {schedule.name!r} already exists; pick another name.") from None
    return schedule


def get_schedule(schedule_id: str, owner: str) -> Schedule:
    with session_scope() as session:
        row = session.get(Schedule, schedule_id)
    if row is None or row.owner != owner:
        raise ScheduleNotFound(schedule_id)
    return row


def list_schedules(
    owner: str, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Schedule], str | None]:
    query = select(Schedule).where(Schedule.owner == owner).order_by(Schedule.id.desc()).limit(limit + 1)
    if cursor:
        query = query.where(Schedule.id < cursor)
    with session_scope() as session:
        return _page(session, query, limit)


def update_schedule(schedule_id: str, owner: str, changes: dict[str, Any]) -> Schedule:
    try:
        with session_scope() as session:
            row = session.get(Schedule, schedule_id, with_for_update=True)
            if row is None or row.owner != owner:
                raise ScheduleNotFound(schedule_id)
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
    except IntegrityError:
        raise NameTaken(
            f"A schedule named {changes.get('name')!r} already exists; pick another name."
        ) from None
    return row


def delete_schedule(schedule_id: str, owner: str) -> None:
    with session_scope() as session:
        deleted = session.execute(delete(Schedule).where(Schedule.id == schedule_id, Schedule.owner == owner))
        if deleted.rowcount != 1:  # type: ignore[attr-defined]
            raise ScheduleNotFound(schedule_id)


def due_schedules(now: datetime, limit: int = 100) -> list[Schedule]:
    with session_scope() as session:
        query = (
            select(Schedule)
            .where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at)
            .limit(limit)
        )
        return list(session.scalars(query))


def fire(
    schedule: Schedule, specs: Sequence[NewExecution], next_run_at: datetime, *, skip_if_active: bool
) -> list[Execution] | None:
    """Advance a due schedule and insert its executions, in one transaction.

    Compare-and-set on ``next_run_at``: of several beats, one wins; the unique key on
    (schedule, slot) backs it up. Returns None when another fire or an edit won,
    and [] when an active run made this slot skip (``skip_if_active``).
    """
    try:
        return _fire(schedule, specs, next_run_at, skip_if_active)
    except IntegrityError:  # the (schedule, slot) key: another firer inserted it first
        return None


def _fire(
    schedule: Schedule, specs: Sequence[NewExecution], next_run_at: datetime, skip_if_active: bool
) -> list[Execution] | None:
    with session_scope() as session:
        advanced = session.execute(
            update(Schedule)
            .where(
                Schedule.id == schedule.id,
                Schedule.enabled.is_(True),
                Schedule.next_run_at == schedule.next_run_at,
            )
            .values(next_run_at=next_run_at, last_run_at=specs[-1].slot_at if specs else schedule.last_run_at)
            .execution_options(synchronize_session=False)
        )
        if advanced.rowcount != 1:  # type: ignore[attr-defined]
            return None
        if skip_if_active and session.scalar(
            select(Execution.id)
            .where(Execution.schedule_id == schedule.id, Execution.status.in_(_CANCELLABLE))
            .limit(1)
        ):
            return []
        now = utcnow()
        new = [_new_values(spec, now, now + timedelta(seconds=settings.queued_lease_s)) for spec in specs]
        _insert_new(session, new)
    return [Execution(**values) for values in new]


# -- maintenance -------------------------------------------------------------------


def expired_leases(now: datetime, limit: int = 500) -> list[Execution]:
    """Live executions whose lease ran out: never published, retry lost, or worker gone."""
    query = (
        select(Execution)
        .where(Execution.status.in_(_CANCELLABLE), Execution.lease_expires_at < now)
        .order_by(Execution.lease_expires_at)
        .limit(limit)
    )
    with session_scope() as session:
        return list(session.scalars(query))


def lease_unclaimed(execution_ids: Iterable[str], until: datetime) -> None:
    """Set when the reaper (re)publishes queued or retrying rows that no worker claimed."""
    with session_scope() as session:
        session.execute(
            _by_primary_key(
                update(Execution)
                .where(Execution.id.in_(list(execution_ids)), Execution.status.in_(_CLAIMABLE))
                .values(lease_expires_at=until)
                .execution_options(synchronize_session=False)
            )
        )


def fail_lost(execution_id: str, attempts: int, message: str) -> bool:
    """Fail a running execution whose worker died and that has no attempts left."""
    now = utcnow()
    error = {"type": "WorkerLost", "message": message}
    with session_scope() as session:
        done = session.execute(
            update(Execution)
            .where(
                Execution.id == execution_id,
                Execution.status == S.RUNNING,
                Execution.attempts == attempts,
                Execution.lease_expires_at < now,
            )
            .values(
                status=S.FAILED,
                finished_at=now,
                lease_expires_at=None,
                error=error,
                last_event_seq=Execution.last_event_seq + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return False
        _insert_newest_events(session, execution_id, [status_event(S.FAILED, attempt=attempts, error=error)])
        return True


def purge_finished(before: datetime, batch: int = 1000) -> int:
    """Delete up to ``batch`` terminal executions that finished before ``before``, with their events."""
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
            session.execute(delete(Execution).where(Execution.id.in_(ids)))
        return len(ids)


# -- API keys ----------------------------------------------------------------------


def create_api_key(key: ApiKey) -> ApiKey:
    with session_scope() as session:
        session.add(key)
    return key


def list_api_keys() -> list[ApiKey]:
    with session_scope() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(key_id: str) -> ApiKey | None:
    with session_scope() as session:
        row = session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
        return row


def owner_of_key(key_hash: str) -> str | None:
    """The owner (key id) of a live key with this hash."""
    with session_scope() as session:
        return session.scalar(
            select(ApiKey.id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
