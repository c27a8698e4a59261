"""Schedules: their CRUD, and firing the due ones (advance them, insert their executions).

Beat fires due schedules a set at a time, in one transaction (``fire_set``): a locking
read of the set (``FOR UPDATE SKIP LOCKED`` where the server has it: a second firer
takes the next set, never waits), one UPDATE advancing every ``next_run_at`` with a
compare-and-set on the value read, one multi-row INSERT of the executions. Exactly once
per slot rests on the compare-and-set and on the unique key (schedule, slot), not on
the lock: where the read locks nothing (SQLite) and another firer won a row, the UPDATE
matches fewer rows, nothing is written, and the caller fires that set one by one
(``fire``); a slot fired before is ignored by the INSERT.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Select, Table, bindparam, delete, func, insert, select, true
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError

from core.db import autocommit_scope, session_scope
from core.errors import NameTaken, ScheduleNotFound
from core.models import Execution, Schedule, utcnow
from core.settings import settings
from core.store._rows import _MYSQL_DIALECTS, CANCELLABLE, EXECUTIONS, page
from core.store.executions import NewExecution, _inserted_row, new_values

SCHEDULES = cast(Table, Schedule.__table__)


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
        return page(session, query, limit)


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


# -- firing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """What firing one due schedule writes: its executions, and when it is due next."""

    schedule_id: str
    read_next_run_at: datetime  # the compare-and-set: the slot it was due for when read
    next_run_at: datetime
    next_fire_at: datetime
    last_run_at: datetime
    specs: Sequence[NewExecution]
    skip_if_active: bool  # overlap policy ``skip``: no executions while one of its runs is live


@dataclass
class Fired:
    """What a set of firings wrote."""

    executions: list[Execution] = field(default_factory=list)
    overlapped: set[str] = field(default_factory=set)  # schedules that skipped: a run was live
    duplicates: int = 0  # slots fired before (the unique key ignored them)


class _Missed(Exception):
    """The compare-and-set matched fewer schedules than were read: another firer or an edit won."""


_CONFIGURED = sa_inspect(Schedule).class_manager


def _detached(columns: dict[str, Any]) -> Schedule:
    # As ``_rows.detached_row``: the ORM object of a row read through Core, without a session.
    row: Schedule = _CONFIGURED.new_instance()
    row.__dict__.update(columns)
    return row


def _skip_locked(dialect: Dialect) -> bool:
    """Whether the server takes ``SKIP LOCKED``: MariaDB 10.6, MySQL 8.0.1 on."""
    if dialect.name not in _MYSQL_DIALECTS:
        return False
    version = tuple(v for v in dialect.server_version_info or () if isinstance(v, int))
    return version >= ((10, 6) if getattr(dialect, "is_mariadb", False) else (8, 0, 1))


# What firing reads of a due schedule (a row of PyMySQL's costs 4 µs a datetime column).
_FIRING_COLUMNS = [
    c for c in SCHEDULES.c if c.key not in ("name", "enabled", "next_fire_at", "last_run_at", "created_at", "updated_at")
]


@cache
def _due_query(locking: bool, skip_locked: bool) -> Select[Any]:
    query = (
        select(*_FIRING_COLUMNS)
        .where(SCHEDULES.c.enabled == true(), SCHEDULES.c.next_fire_at <= bindparam("now"))
        .order_by(SCHEDULES.c.next_fire_at)
        .limit(bindparam("limit"))
    )
    return query.with_for_update(skip_locked=skip_locked) if locking else query


def fire_set(
    now: datetime, limit: int, planner: Callable[[Schedule], Firing]
) -> tuple[list[Firing], Fired | None]:
    """Fire up to ``limit`` schedules due at ``now`` (their ``next_fire_at``), in one transaction.

    ``planner`` says what each fires. Returns the firings and what they wrote, or None
    when the compare-and-set missed: then nothing was written, and the caller fires them
    one by one (``fire``).
    """
    firings: list[Firing] = []
    try:
        with session_scope() as session:
            connection = session.connection()
            dialect = connection.dialect
            locking = dialect.name in _MYSQL_DIALECTS
            query = _due_query(locking, locking and _skip_locked(dialect))
            rows = connection.execute(query, {"now": now, "limit": limit}).mappings().all()
            firings = [planner(_detached(dict(row))) for row in rows]
            return firings, _write(connection, firings)
    except _Missed:
        return firings, None


def fire(firing: Firing) -> Fired | None:
    """Fire one schedule in a transaction of its own; None when another firer or an edit won."""
    try:
        with session_scope() as session:
            return _write(session.connection(), [firing])
    except _Missed:
        return None


def _write(connection: Connection, firings: Sequence[Firing]) -> Fired:
    if not firings:
        return Fired()
    sql, params = _advance(connection.dialect, firings)
    if connection.exec_driver_sql(sql, tuple(params)).rowcount != len(firings):
        raise _Missed
    fired = Fired()
    watched = [f.schedule_id for f in firings if f.skip_if_active and f.specs]
    if watched:
        fired.overlapped = set(connection.execute(_LIVE_RUNS, {"ids": watched}).scalars())
    now = utcnow()
    publish_by = now + timedelta(seconds=settings.queued_lease_s)
    new = [
        new_values(spec, now, publish_by)
        for f in firings
        if f.schedule_id not in fired.overlapped
        for spec in f.specs
    ]
    if new:
        inserted = connection.execute(_INSERT_FIRED, new).rowcount
        if inserted != len(new):  # some slots were fired before: keep the rows that went in
            went_in = set(connection.execute(_IDS_IN, {"ids": [v["id"] for v in new]}).scalars())
            fired.duplicates = len(new) - len(went_in)
            new = [v for v in new if v["id"] in went_in]
    fired.executions = [_inserted_row(values) for values in new]
    return fired


_LIVE_RUNS = (
    select(EXECUTIONS.c.schedule_id)
    .where(
        EXECUTIONS.c.schedule_id.in_(bindparam("ids", expanding=True)), EXECUTIONS.c.status.in_(CANCELLABLE)
    )
    .distinct()
)
_INSERT_FIRED = (
    insert(EXECUTIONS)
    .prefix_with("IGNORE", dialect="mysql")
    .prefix_with("IGNORE", dialect="mariadb")
    .prefix_with("OR IGNORE", dialect="sqlite")
)
_IDS_IN = select(EXECUTIONS.c.id).where(EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))


def _advance(dialect: Dialect, firings: Sequence[Firing]) -> tuple[str, list[Any]]:
    """One UPDATE advancing every schedule of ``firings`` if its ``next_run_at`` is still
    the one read: each column set to one value when the set shares it (schedules due in
    the same minute do), else to a ``CASE`` on the id.

    Written as SQL for the driver: SQLAlchemy spends 40 µs compiling each ``WHEN`` of a
    ``case()``, 80 ms for a set of 500, longer than the database takes to run it.
    """
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    processor = SCHEDULES.c.next_run_at.type.bind_processor(dialect)
    params: list[Any] = []

    def value(column: str) -> str:
        values = [getattr(f, column) for f in firings]
        if processor is not None:  # as SQLAlchemy binds them (SQLite: strings)
            values = [processor(v) for v in values]
        if all(v == values[0] for v in values):
            params.append(values[0])
            return mark
        for firing, bound in zip(firings, values, strict=True):
            params.extend((firing.schedule_id, bound))
        return f"CASE id {' '.join([f'WHEN {mark} THEN {mark}'] * len(firings))} END"

    sets = ", ".join(f"{column} = {value(column)}" for column in ("next_run_at", "next_fire_at", "last_run_at"))
    params.extend(f.schedule_id for f in firings)
    ids = ", ".join([mark] * len(firings))
    expected = value("read_next_run_at")
    sql = f"UPDATE schedules SET {sets} WHERE id IN ({ids}) AND enabled = 1 AND next_run_at = {expected}"
    return sql, params


def due_summary(now: datetime) -> tuple[int, datetime | None]:
    """How many enabled schedules are due at ``now`` (their fire time passed), and the
    earliest fire time of all."""
    with autocommit_scope() as session:
        due = session.scalar(_DUE_COUNT, {"now": now})
        earliest = session.scalar(_EARLIEST)
    return int(due or 0), earliest


_DUE_COUNT = (
    select(func.count())
    .select_from(SCHEDULES)
    .where(SCHEDULES.c.enabled == true(), SCHEDULES.c.next_fire_at <= bindparam("now"))
)
_EARLIEST = select(func.min(SCHEDULES.c.next_fire_at)).where(SCHEDULES.c.enabled == true())
