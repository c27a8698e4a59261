"""Held executions outside of a finish: delayed runs whose time came, and the reaper's
sweep that mends what a lost write may leave. Each runs holding the admission gate."""

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, update

from agentq.core.models import HOLD_LIMIT, HOLD_RUN_AT, Execution
from agentq.core.scopes import plugin_scope, public_name
from agentq.core.settings import settings
from agentq.core.store._rows import EXECUTIONS, S, detached_row
from agentq.core.store.admissions import (
    ADMISSIONS,
    PASS_MOST,
    ROW_COLUMNS,
    Limits,
    Load,
    insert_admissions,
)

_DUE = (
    select(*ROW_COLUMNS, EXECUTIONS.c.run_at)
    .where(EXECUTIONS.c.held == HOLD_RUN_AT, EXECUTIONS.c.status == S.QUEUED)
    .order_by(EXECUTIONS.c.run_at)
)


def release_due(connection: Connection, now: datetime, most: int = 500) -> list[Execution]:
    """Holding the gate: the delayed executions whose ``run_at`` came, admitted (or held for
    a limit now); returns those to publish once it commits."""
    rows = connection.execute(_DUE.where(EXECUTIONS.c.run_at <= now).limit(most).with_for_update()).all()
    if not rows:
        return []
    limits, load = Limits(connection), Load(connection)
    lease = now + timedelta(seconds=settings.queued_lease_s)
    free, waiting, admissions = [], defaultdict(list), []
    published = []
    for row in rows:
        scopes = limits.scopes(row.owner, row.plugin, row.concurrency_key)
        full = limits.full(scopes, load)
        if full:
            waiting[tuple(public_name(s) for s in full)].append(row.id)
            continue
        free.append((row.id, bool(scopes)))
        for scope in scopes:
            load.add(scope, row.owner)
            admissions.append({"scope": scope, "execution_id": row.id, "owner": row.owner})
        published.append(
            detached_row(
                row._mapping, held=None, waiting_on=None, admitted=bool(scopes), lease_expires_at=lease
            )
        )
    for admitted in (True, False):
        ids = [i for i, a in free if a is admitted]
        if ids:
            connection.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.id.in_(ids))
                .values(held=None, waiting_on=None, admitted=admitted, lease_expires_at=lease)
            )
    for names, ids in waiting.items():
        connection.execute(
            update(EXECUTIONS).where(EXECUTIONS.c.id.in_(ids)).values(held=HOLD_LIMIT, waiting_on=list(names))
        )
    insert_admissions(connection, admissions)
    return published


def next_due(connection: Connection) -> datetime | None:
    """When the earliest delayed execution is due."""
    return connection.execute(
        select(func.min(EXECUTIONS.c.run_at)).where(EXECUTIONS.c.held == HOLD_RUN_AT)
    ).scalar()


def stray_admissions(connection: Connection, now: datetime) -> list[str]:
    """Executions that hold admissions though they ended more than a lease ago (or are
    gone): none unless a write was lost; the reaper frees them. A run cancelled while
    running ends at once but keeps its slots until its worker has stopped it, which its
    next heartbeat does well within a lease."""
    ended = (
        select(ADMISSIONS.c.execution_id)
        .outerjoin(EXECUTIONS, EXECUTIONS.c.id == ADMISSIONS.c.execution_id)
        .where(
            EXECUTIONS.c.id.is_(None)
            | (
                EXECUTIONS.c.status.in_([s.value for s in S if s.terminal])
                & (EXECUTIONS.c.finished_at < now - timedelta(seconds=settings.lease_s))
            )
        )
        .distinct()
        .limit(PASS_MOST)
    )
    return list(connection.execute(ended).scalars())


def waiting_scopes(connection: Connection) -> set[str]:
    """Every scope some held execution waits in (for the reaper's pass)."""
    rows = connection.execute(
        select(EXECUTIONS.c.owner, EXECUTIONS.c.plugin, EXECUTIONS.c.concurrency_key)
        .where(EXECUTIONS.c.held == HOLD_LIMIT, EXECUTIONS.c.status == S.QUEUED)
        .distinct()
        .limit(PASS_MOST)
    )
    limits = Limits(connection)
    return {scope for row in rows for scope in limits.scopes(*row)} | {
        # a held row whose limits all went away is admitted through its plugin's scope
        plugin_scope(row.plugin)
        for row in connection.execute(
            select(EXECUTIONS.c.plugin)
            .where(EXECUTIONS.c.held == HOLD_LIMIT, EXECUTIONS.c.status == S.QUEUED)
            .distinct()
        )
    }
