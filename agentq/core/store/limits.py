"""Concurrency limits as clients and the admin set them, and the passes that admit held
executions outside of a finish: a limit raised or removed, delayed runs that came due,
the reaper's sweep."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from agentq.core.db import autocommit_scope, session_scope
from agentq.core.models import HOLD_LIMIT, HOLD_RUN_AT, ApiKey, ConcurrencyLimit, Execution, utcnow
from agentq.core.scopes import api_key_scope, concurrency_key_scope
from agentq.core.store import admissions, held
from agentq.core.store._rows import EXECUTIONS, S


@dataclass(frozen=True)
class LimitState:
    """A concurrency key's limit, and how many of its executions run and wait now."""

    name: str
    max_running: int
    running: int
    waiting: int
    updated_at: datetime


def set_key_max_running(key_id: str, max_running: int | None) -> tuple[ApiKey | None, list[Execution]]:
    """Set (None: remove) a key's limit; returns the key (None if unknown) and the held
    executions a higher limit admits, to publish."""
    with session_scope() as session:
        connection = session.connection()
        admissions.lock_gate(connection)
        key = session.get(ApiKey, key_id)
        if key is None:
            return None, []
        key.max_running = max_running
        session.flush()
        return key, admissions.admit_waiting(connection, [api_key_scope(key_id)])


def put_limit(owner: str, name: str, max_running: int) -> tuple[LimitState, list[Execution]]:
    """Create or change an owner's limit on a concurrency key; returns it and the held
    executions a higher limit admits, to publish."""
    with session_scope() as session:
        connection = session.connection()
        admissions.lock_gate(connection)
        row = session.get(ConcurrencyLimit, (owner, name))
        if row is None:
            row = ConcurrencyLimit(owner=owner, name=name, max_running=max_running, updated_at=utcnow())
            session.add(row)
        else:
            row.max_running, row.updated_at = max_running, utcnow()
        session.flush()
        admitted = admissions.admit_waiting(connection, [concurrency_key_scope(owner, name)])
        state = _states(session.connection(), owner, [row])[0]
    return state, admitted


def delete_limit(owner: str, name: str) -> tuple[bool, list[Execution]]:
    """Remove an owner's limit on a concurrency key (its executions then run unlimited);
    returns whether it existed and the held executions it admits, to publish."""
    with session_scope() as session:
        connection = session.connection()
        admissions.lock_gate(connection)
        gone = connection.execute(
            delete(ConcurrencyLimit).where(ConcurrencyLimit.owner == owner, ConcurrencyLimit.name == name)
        ).rowcount
        if not gone:
            return False, []
        return True, admissions.admit_waiting(connection, [concurrency_key_scope(owner, name)])


def list_limits(owner: str) -> list[LimitState]:
    with autocommit_scope() as session:
        rows = list(
            session.scalars(
                select(ConcurrencyLimit)
                .where(ConcurrencyLimit.owner == owner)
                .order_by(ConcurrencyLimit.name)
            )
        )
        return _states(session.connection(), owner, rows)


def _states(connection: Connection, owner: str, rows: list[ConcurrencyLimit]) -> list[LimitState]:
    if not rows:
        return []
    scopes = {concurrency_key_scope(owner, r.name): r.name for r in rows}
    running: dict[str, int] = dict(
        connection.execute(
            select(admissions.ADMISSIONS.c.scope, func.count())
            .where(admissions.ADMISSIONS.c.scope.in_(list(scopes)))
            .group_by(admissions.ADMISSIONS.c.scope)
        ).all()
    )
    waiting: dict[str | None, int] = dict(
        connection.execute(
            select(EXECUTIONS.c.concurrency_key, func.count())
            .where(
                EXECUTIONS.c.owner == owner,
                EXECUTIONS.c.held.in_([HOLD_LIMIT, HOLD_RUN_AT]),
                EXECUTIONS.c.status == S.QUEUED,
                EXECUTIONS.c.concurrency_key.in_([r.name for r in rows]),
            )
            .group_by(EXECUTIONS.c.concurrency_key)
        ).all()
    )
    return [
        LimitState(
            r.name,
            r.max_running,
            int(running.get(concurrency_key_scope(owner, r.name), 0)),
            int(waiting.get(r.name, 0)),
            r.updated_at,
        )
        for r in rows
    ]


def release_due(now: datetime | None = None) -> list[Execution]:
    """Delayed executions whose ``run_at`` came: admitted (or held for a limit), returned to
    publish. A look without a lock first: when none is due, that is all it costs."""
    now = now or utcnow()
    with autocommit_scope() as session:
        earliest = held.next_due(session.connection())
    if earliest is None or earliest > now:
        return []
    with session_scope() as session:
        connection = session.connection()
        admissions.lock_gate(connection)
        return held.release_due(connection, now)


def admit_held() -> list[Execution]:
    """The reaper's pass: free the slots of executions that ended without freeing them (a
    lost write) and admit held executions wherever there is room; returns those to publish."""
    with session_scope() as session:
        connection = session.connection()
        admissions.lock_gate(connection)
        admitted = []
        stray = held.stray_admissions(connection, utcnow())
        if stray:
            admitted = admissions.release(connection, stray)
        return admitted + admissions.admit_waiting(connection, held.waiting_scopes(connection))
