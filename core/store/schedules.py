"""Schedules: their CRUD, and firing a due one (advance it and insert its executions)."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from core.db import session_scope
from core.errors import NameTaken, ScheduleNotFound
from core.models import Execution, Schedule, utcnow
from core.settings import settings
from core.store._rows import CANCELLABLE, page
from core.store.executions import NewExecution, insert_new, new_values


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
            .where(Execution.schedule_id == schedule.id, Execution.status.in_(CANCELLABLE))
            .limit(1)
        ):
            return []
        now = utcnow()
        new = [new_values(spec, now, now + timedelta(seconds=settings.queued_lease_s)) for spec in specs]
        insert_new(session, new)
    return [Execution(**values) for values in new]
