"""The schedules page: timing, next five fire times, last runs; enable/disable, run now,
create and edit (the API's own route functions, so the same checks and messages)."""

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from agentq.core import db, schedules, store
from agentq.core.errors import Conflict, InvalidRequest
from api.catalog import catalog
from api.console.rendering import page
from api.console.session import Viewer, ViewerDep, form
from api.onloop import LoopRoute
from api.routes import schedules as api_schedules
from api.schedule_schemas import ScheduleCreate, SchedulePublic, ScheduleUpdate

router = APIRouter(route_class=LoopRoute)
LAST_RUNS = 5
FIELDS = ("name", "plugin", "command", "params", "cron", "interval_s", "timezone", "enabled")


@router.get("/schedules", response_class=HTMLResponse)
def list_schedules(request: Request, viewer: ViewerDep, cursor: str | None = None) -> HTMLResponse:
    listed = api_schedules.read_schedules(viewer.owner, limit=50, cursor=cursor or None)
    last_runs = {
        s.id: store.list_executions(viewer.owner, schedule_id=s.id, limit=LAST_RUNS)[0]
        for s in listed.schedules
    }
    return page(
        request,
        "schedules.html",
        viewer=viewer,
        schedules=listed.schedules,
        next_cursor=listed.next_cursor,
        last_runs=last_runs,
    )


def _fields_of(schedule: SchedulePublic | None) -> dict[str, str]:
    if schedule is None:
        return {"timezone": "UTC", "enabled": "true", "params": "{}"}
    return {
        "name": schedule.name,
        "plugin": schedule.plugin,
        "command": schedule.command,
        "params": json.dumps(schedule.params, indent=2),
        "cron": schedule.cron or "",
        "interval_s": f"{schedule.interval_s:g}" if schedule.interval_s is not None else "",
        "timezone": schedule.timezone,
        "enabled": "true" if schedule.enabled else "",
    }


def _edit_page(
    request: Request,
    viewer: Viewer,
    schedule_id: str | None,
    sent: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    """The form; the catalog it lists may be read: from a coroutine, through ``db.run``."""
    return page(
        request,
        "schedule_form.html",
        status_code=status_code,
        viewer=viewer,
        schedule_id=schedule_id,
        sent=sent,
        errors=errors,
        commands=sorted(catalog.entries()),
    )


@router.get("/schedules/new", response_class=HTMLResponse)
def new_schedule(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _edit_page(request, viewer, None, _fields_of(None), {})


@router.get("/schedules/{schedule_id}/edit", response_class=HTMLResponse)
def edit_schedule(request: Request, schedule_id: str, viewer: ViewerDep) -> HTMLResponse:
    current = api_schedules.read_schedule(schedule_id, viewer.owner)
    return _edit_page(request, viewer, schedule_id, _fields_of(current), {})


def _body(sent: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body the form stands for, and the fields it could not read."""
    body: dict[str, Any] = {
        name: sent.get(name, "").strip() for name in ("name", "plugin", "command", "timezone")
    }
    body["cron"] = sent.get("cron", "").strip() or None
    body["interval_s"] = sent.get("interval_s", "").strip() or None
    body["enabled"] = sent.get("enabled") == "true"
    try:
        body["params"] = json.loads(sent.get("params", "").strip() or "{}")
    except ValueError as exc:
        return body, {"params": f"Not JSON: {exc}"}
    return body, {}


def _field_errors(problems: list[dict[str, Any]], detail: str) -> dict[str, str]:
    """Problems by the form field their ``loc`` names; the others under ``""``."""
    out: dict[str, str] = {}
    for problem in problems:
        loc = [str(p) for p in problem.get("loc", ()) if p != "body"]
        name = loc[0] if loc and loc[0] in FIELDS else ""
        out[name] = (out.get(name, "") + " " + str(problem.get("msg", ""))).strip()
    return out or {"": detail}


def _saved(viewer: Viewer, schedule_id: str | None, body: dict[str, Any]) -> dict[str, str]:
    """Create or change the schedule; the problems by field, none when it was saved."""
    try:
        if schedule_id is None:
            api_schedules.create_schedule(ScheduleCreate.model_validate(body), Response(), viewer.owner)
        else:
            api_schedules.update_schedule(schedule_id, ScheduleUpdate.model_validate(body), viewer.owner)
    except ValidationError as exc:
        return _field_errors([{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()], str(exc))
    except InvalidRequest as exc:
        return _field_errors(exc.errors, exc.detail)
    except Conflict as exc:  # a name taken
        return {"name": exc.detail}
    return {}


@router.post("/schedules/new", response_class=HTMLResponse)
async def create_schedule(request: Request, viewer: ViewerDep) -> Response:
    return await _save(request, viewer, None)


@router.post("/schedules/{schedule_id}/edit", response_class=HTMLResponse)
async def update_schedule(request: Request, schedule_id: str, viewer: ViewerDep) -> Response:
    return await _save(request, viewer, schedule_id)


async def _save(request: Request, viewer: Viewer, schedule_id: str | None) -> Response:
    sent = await form(request)
    body, errors = _body(sent)
    if not errors:
        errors = await db.run(_saved, viewer, schedule_id, body)
    if errors:
        return await db.run(_edit_page, request, viewer, schedule_id, sent, errors, 422)
    return RedirectResponse("/ui/schedules", status_code=303)


@router.post("/schedules/{schedule_id}/enabled")
async def set_enabled(request: Request, schedule_id: str, viewer: ViewerDep) -> Response:
    enabled = (await form(request)).get("enabled") == "true"
    change = ScheduleUpdate(enabled=enabled)
    await db.run(api_schedules.update_schedule, schedule_id, change, viewer.owner)
    return RedirectResponse("/ui/schedules", status_code=303)


@router.post("/schedules/{schedule_id}/run")
async def run_now(schedule_id: str, viewer: ViewerDep) -> Response:
    execution = await db.run(lambda: schedules.run_now(store.get_schedule(schedule_id, viewer.owner)))
    return RedirectResponse(f"/ui/executions/{execution.id}", status_code=303)
