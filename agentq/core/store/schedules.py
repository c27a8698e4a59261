"""Schedules: create, read, list, update, delete. Firing them is ``agentq/core/store/firing.py``."""

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from agentq.core.db import session_scope
from agentq.core.errors import NameTaken, ScheduleNotFound
from agentq.core.models import Schedule, utcnow
from agentq.core.store._rows import page


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
