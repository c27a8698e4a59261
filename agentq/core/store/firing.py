"""Firing due schedules: advance a set of them and insert its executions, in one transaction.

Beat fires due schedules a set at a time (``fire_set``): a locking read of the set
(``FOR UPDATE SKIP LOCKED`` where the server has it: a second firer never waits on the
first), one UPDATE advancing every ``next_run_at`` with a compare-and-set on the value
read, one INSERT of the executions (``_bulk``). Exactly once per slot rests on the
compare-and-set and on the unique key (schedule, slot), not on the lock: where the read
locks nothing (SQLite) and another firer won a row, the UPDATE matches fewer rows,
nothing is written, and the caller fires that set one by one (``fire``); a slot fired
before is ignored by the INSERT. The active beat also plans ahead what is about to fire
(``upcoming``), builds its statements then (``prepare``), and fires it at its time with a
check of what it read (``fire_planned``).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, Select, and_, bindparam, func, or_, select, true
from sqlalchemy import inspect as sa_inspect

from agentq.core.db import autocommit_scope, engine, session_scope
from agentq.core.models import Execution, Schedule, utcnow
from agentq.core.settings import settings
from agentq.core.store import admissions
from agentq.core.store._bulk import SCHEDULES, FiredInsert, advance, build_insert
from agentq.core.store._rows import _MYSQL_DIALECTS, CANCELLABLE, EXECUTIONS
from agentq.core.store.executions import NewExecution, _inserted_row, new_values
from agentq.core.store.limited import may_be_limited


@dataclass(frozen=True)
class Firing:
    """What firing one due schedule writes: its executions, and when it is due next."""

    schedule_id: str
    read_next_run_at: datetime  # the compare-and-set: the slot it was due for when read
    read_updated_at: datetime  # planned ahead, it fires only if not edited since (``fire_planned``)
    next_run_at: datetime
    next_fire_at: datetime
    last_run_at: datetime
    specs: Sequence[NewExecution]
    skip_if_active: bool  # overlap policy ``skip``: no executions while one of its runs is live


@dataclass
class Fired:
    """What a set of firings wrote."""

    values: list[dict[str, Any]] = field(default_factory=list)  # the columns of each execution
    overlapped: set[str] = field(default_factory=set)  # schedules that skipped: a run was live
    duplicates: int = 0  # slots fired before (the unique key ignored them)

    @property
    def executions(self) -> list[Execution]:
        """The executions inserted, built when asked (beat builds them as it publishes them)."""
        return [_inserted_row(values) for values in self.values]


@dataclass(frozen=True)
class Prepared:
    """Firings planned ahead with their statements built (``prepare``): firing them at their
    time binds only that time."""

    firings: list[Firing]
    update: tuple[str, list[Any]]  # ``advance``, its compare-and-set checking for edits too
    new: list[dict[str, Any]]  # each execution's values; ids of the time it fires
    insert: FiredInsert | None  # None: no executions (no slot fires)


def prepare(firings: Sequence[Firing], at: datetime) -> Prepared | None:
    """The statements of firing ``firings`` (planned to fire at ``at``), built ahead; None where
    firing needs a read first (overlap policy ``skip``: whether a run is live)."""
    if any(f.skip_if_active and f.specs for f in firings):
        return None
    dialect = engine().dialect
    new = [new_values(spec, at, at, id_at=at) for f in firings for spec in f.specs]
    update = advance(dialect, firings, unedited=True)
    return Prepared(list(firings), update, new, build_insert(dialect, new) if new else None)


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


# What firing reads of a due schedule (PyMySQL spends 4 µs on a datetime column of a row).
_FIRING_COLUMNS = [c for c in SCHEDULES.c if c.key not in ("name", "enabled", "last_run_at", "created_at")]


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


def upcoming(until: datetime, after: tuple[datetime, str] | None, limit: int) -> list[Schedule]:
    """Enabled schedules that fire by ``until``, by (fire time, id) from past ``after``;
    read without a lock, to plan them ahead."""
    query, params = _UPCOMING, {"until": until, "limit": limit}
    if after is not None:
        query, params = _UPCOMING_AFTER, params | {"after_at": after[0], "after_id": after[1]}
    with autocommit_scope() as session:
        rows = session.connection().execute(query, params)
        return [_detached(dict(row)) for row in rows.mappings()]


_UPCOMING = (
    select(*_FIRING_COLUMNS)
    .where(SCHEDULES.c.enabled == true(), SCHEDULES.c.next_fire_at <= bindparam("until"))
    .order_by(SCHEDULES.c.next_fire_at, SCHEDULES.c.id)
    .limit(bindparam("limit"))
)
_UPCOMING_AFTER = _UPCOMING.where(
    or_(
        SCHEDULES.c.next_fire_at > bindparam("after_at"),
        and_(SCHEDULES.c.next_fire_at == bindparam("after_at"), SCHEDULES.c.id > bindparam("after_id")),
    )
)


@cache
def _as_planned_query(locking: bool, skip_locked: bool) -> Select[Any]:
    query = select(SCHEDULES.c.id, SCHEDULES.c.next_run_at, SCHEDULES.c.updated_at).where(
        SCHEDULES.c.id.in_(bindparam("ids", expanding=True)), SCHEDULES.c.enabled == true()
    )
    return query.with_for_update(skip_locked=skip_locked) if locking else query


def fire_planned(firings: Sequence[Firing], prepared: Prepared | None = None) -> tuple[list[Firing], Fired]:
    """Fire schedules planned ahead (``upcoming``) that are still as they were read (the same
    slot due, no edit since: ``updated_at``), in one transaction. Returns those and what they
    wrote; the others are left as they are, due.

    First in one UPDATE whose compare-and-set takes ``updated_at`` too (with ``prepared``,
    the statements of these very firings, built ahead); if any schedule changed, that is
    undone, and the set is read under lock to keep those that did not.
    """
    assert prepared is None or len(prepared.firings) == len(firings)
    try:
        with session_scope() as session:
            return list(firings), _write(session.connection(), firings, unedited=True, prepared=prepared)
    except _Missed:
        pass
    try:
        with session_scope() as session:
            connection = session.connection()
            dialect = connection.dialect
            locking = dialect.name in _MYSQL_DIALECTS
            query = _as_planned_query(locking, locking and _skip_locked(dialect))
            rows = connection.execute(query, {"ids": [f.schedule_id for f in firings]})
            now = {row.id: (row.next_run_at, row.updated_at) for row in rows}
            kept = [f for f in firings if now.get(f.schedule_id) == (f.read_next_run_at, f.read_updated_at)]
            return kept, _write(connection, kept)
    except _Missed:  # SQLite: another firer won between the check and the update
        return [], Fired()


def fire(firing: Firing) -> Fired | None:
    """Fire one schedule in a transaction of its own; None when another firer or an edit won."""
    try:
        with session_scope() as session:
            return _write(session.connection(), [firing])
    except _Missed:
        return None


def _write(
    connection: Connection,
    firings: Sequence[Firing],
    *,
    unedited: bool = False,
    prepared: Prepared | None = None,
) -> Fired:
    if not firings:
        return Fired()
    dialect = connection.dialect
    sql, params = prepared.update if prepared else advance(dialect, firings, unedited=unedited)
    if connection.exec_driver_sql(sql, tuple(params)).rowcount != len(firings):
        raise _Missed
    fired = Fired()
    watched = [f.schedule_id for f in firings if f.skip_if_active and f.specs]
    if watched:
        fired.overlapped = set(connection.execute(_LIVE_RUNS, {"ids": watched}).scalars())
    now = utcnow()
    publish_by = now + timedelta(seconds=settings.queued_lease_s)
    if prepared is not None:
        new, insert = prepared.new, prepared.insert
    else:
        new = [
            new_values(spec, now, publish_by)
            for f in firings
            if f.schedule_id not in fired.overlapped
            for spec in f.specs
        ]
        insert = build_insert(dialect, new) if new else None
    # Fired executions are admitted as submitted ones are, at the time they fire (the gate
    # after the schedules' locks: no admission waits on a schedule); their held state
    # differs from row to row, so the statement is built for them now.
    admitted: list[dict[str, str]] = []
    limited = any(may_be_limited(v["owner"], v["plugin"], v["concurrency_key"]) for v in new)
    if limited:
        for values in new:
            values["created_at"], values["lease_expires_at"] = now, publish_by
        admissions.lock_gate(connection)
        admitted = admissions.admit_new(connection, new)
        insert = build_insert(dialect, new)
    if insert is not None:
        moment = new[0] if limited else {**new[0], "created_at": now, "lease_expires_at": publish_by}
        inserted = connection.exec_driver_sql(insert.sql, tuple(insert.params(moment))).rowcount
        if inserted != len(new):  # some slots were fired before: keep the rows that went in
            went_in = set(connection.execute(_IDS_IN, {"ids": [v["id"] for v in new]}).scalars())
            fired.duplicates = len(new) - len(went_in)
            new = [v for v in new if v["id"] in went_in]
            admitted = [a for a in admitted if a["execution_id"] in went_in]
    admissions.insert_admissions(connection, admitted)
    if prepared is not None and not limited:
        for values in new:
            values["created_at"], values["lease_expires_at"] = now, publish_by
    fired.values = new
    return fired


_LIVE_RUNS = (
    select(EXECUTIONS.c.schedule_id)
    .where(
        EXECUTIONS.c.schedule_id.in_(bindparam("ids", expanding=True)), EXECUTIONS.c.status.in_(CANCELLABLE)
    )
    .distinct()
)
_IDS_IN = select(EXECUTIONS.c.id).where(EXECUTIONS.c.id.in_(bindparam("ids", expanding=True)))


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
