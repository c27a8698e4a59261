"""``/v1/schedules``: periodic agents that beat fires."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from agentq.core import db, schedules, store
from agentq.core.errors import InvalidRequest
from agentq.core.models import Schedule, utcnow
from agentq.core.public import event_names, webhook_columns
from api.auth import OwnerDep
from api.catalog import catalog
from api.jsonbody import JSONRoute
from api.schedule_schemas import ScheduleCreate, SchedulePublic, SchedulesPublic, ScheduleUpdate
from api.schemas import Cursor, ExecutionPublic

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=JSONRoute)
TIMING = {"cron", "interval_s", "timezone", "enabled"}


def _public(schedule: Schedule) -> SchedulePublic:
    return SchedulePublic.model_validate(schedule).model_copy(
        update={"next_fire_times": schedules.upcoming(schedule, 5)}
    )


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, [{"loc": ["body", field], "msg": message, "type": f"invalid_{field}"}])


def _check(schedule: Schedule) -> None:
    """Timing and params of a schedule as it would be stored; 422 naming the field."""
    if (schedule.cron is None) == (schedule.interval_s is None):
        raise _invalid("cron", "Give exactly one of `cron` (5-field cron) or `interval_s` (seconds).")
    try:
        schedules.zone(schedule.timezone)
    except schedules.InvalidTiming as exc:
        raise _invalid("timezone", str(exc)) from None
    if schedule.cron is not None:
        try:
            schedules.validate_cron(schedule.cron)
        except schedules.InvalidTiming as exc:
            raise _invalid("cron", str(exc)) from None
    entry = catalog.resolve(schedule.plugin, schedule.command)
    catalog.validate(entry, schedule.params, ("body", "params"))
    schedule.queue = entry.queue


def _next_run_at(schedule: Schedule) -> Any:
    return schedules.next_fire(schedule, utcnow()) if schedule.enabled else None


def _next_fire_at(schedule: Schedule, next_run_at: Any) -> Any:
    """When beat fires the next slot: the slot plus its jitter."""
    return None if next_run_at is None else schedules.fire_at(schedule, next_run_at)


@router.post("", status_code=201)
def create_schedule(schedule_in: ScheduleCreate, response: Response, owner: OwnerDep) -> SchedulePublic:
    """Create a periodic agent; it fires from its next slot on."""
    now = utcnow()
    fields = schedule_in.model_dump(exclude={"webhook", "webhook_events"})
    hook = webhook_columns(schedule_in.webhook, schedule_in.webhook_events)
    schedule = Schedule(id=store.new_id(), owner=owner, **fields, **hook, created_at=now, updated_at=now)
    _check(schedule)
    schedule.next_run_at = _next_run_at(schedule)
    schedule.next_fire_at = _next_fire_at(schedule, schedule.next_run_at)
    store.create_schedule(schedule)
    response.headers["Location"] = f"/v1/schedules/{schedule.id}"
    return _public(schedule)


@router.get("")
def read_schedules(
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> SchedulesPublic:
    """List schedules, newest first."""
    rows, next_cursor = store.list_schedules(owner, limit=limit, cursor=cursor)
    return SchedulesPublic(schedules=[_public(r) for r in rows], next_cursor=next_cursor)


@router.get("/{schedule_id}")
def read_schedule(schedule_id: str, owner: OwnerDep) -> SchedulePublic:
    """A schedule with its next 5 fire times."""
    return _public(store.get_schedule(schedule_id, owner))


@router.patch("/{schedule_id}")
def update_schedule(schedule_id: str, schedule_in: ScheduleUpdate, owner: OwnerDep) -> SchedulePublic:
    """Change a schedule; beat picks the change up on its next tick."""
    changes = schedule_in.model_dump(exclude_unset=True)
    if "webhook" in changes or "webhook_events" in changes:
        current_hook = store.get_schedule(schedule_id, owner)
        url = changes.pop("webhook", current_hook.webhook_url)
        events = (
            changes.pop("webhook_events", None) or event_names(current_hook.webhook_events) or ["completed"]
        )
        changes |= webhook_columns(url, events)
    if changes.get("cron") is not None and "interval_s" not in changes:
        changes["interval_s"] = None  # switching to cron
    if changes.get("interval_s") is not None and "cron" not in changes:
        changes["cron"] = None
    current = store.get_schedule(schedule_id, owner)
    merged = Schedule(**{c.key: getattr(current, c.key) for c in Schedule.__table__.columns} | changes)
    _check(merged)
    changes["queue"] = merged.queue
    if TIMING & changes.keys():
        changes["next_run_at"] = merged.next_run_at = _next_run_at(merged)
    if {"next_run_at", "jitter_s"} & changes.keys():
        changes["next_fire_at"] = _next_fire_at(merged, merged.next_run_at)
    return _public(store.update_schedule(schedule_id, owner, changes))


@router.delete("/{schedule_id}", status_code=204)
def delete_schedule(schedule_id: str, owner: OwnerDep) -> None:
    """Delete a schedule; executions it created stay."""
    store.delete_schedule(schedule_id, owner)


@router.post("/{schedule_id}/run", status_code=202)
async def run_schedule(schedule_id: str, response: Response, owner: OwnerDep) -> ExecutionPublic:
    """Fire a schedule now, outside its timing."""
    execution = await db.run(lambda: schedules.run_now(store.get_schedule(schedule_id, owner)))
    response.headers["Location"] = f"/v1/executions/{execution.id}"
    return ExecutionPublic.model_validate(execution)
