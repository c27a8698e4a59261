"""Console pages of executions: the list (live statuses), one execution (live log), cancel."""

from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from agentq.core import db, store
from agentq.core.errors import InvalidRequest, NotCancellable
from agentq.core.models import EventKind, Execution, ExecutionEvent, ExecutionStatus
from agentq.core.settings import settings
from api import polling
from api.catalog import catalog
from api.console.rendering import NO_STORE, page, render
from api.console.session import Viewer, ViewerDep, form, idempotency_key
from api.onloop import LoopRoute
from api.routes.executions import cancel
from api.routes.webhooks import read_execution_deliveries
from api.schemas import ExecutionPublic
from api.submit import resubmit
from api.webhook_schemas import DeliveryPublic

router = APIRouter(route_class=LoopRoute)
PAGE_ROWS = 50
# The list asks for the statuses of the rows on screen this often while any is live.
LIVE_POLL_S = 2
SHOWN_DELIVERIES = 20
# htmx stops polling on this status.
STOP_POLLING = 286


def _filters(**given: str | None) -> dict[str, Any]:
    """The filters for the template, and the query string that repeats them."""
    filters = {k: v for k, v in given.items() if v}
    return {**given, "any": bool(filters), "query": urlencode(filters)}


def _status(value: str) -> ExecutionStatus | None:
    try:
        return ExecutionStatus(value) if value else None
    except ValueError:
        offered = ", ".join(s.value for s in ExecutionStatus)
        raise InvalidRequest(f"Unknown status {value!r}; one of {offered}.") from None


@router.get("/executions", response_class=HTMLResponse)
def list_executions(
    request: Request,
    viewer: ViewerDep,
    status: Annotated[str, Query(max_length=16)] = "",
    plugin: Annotated[str | None, Query(max_length=64)] = None,
    schedule_id: Annotated[str | None, Query(max_length=26)] = None,
    waiting: bool = False,
    cursor: Annotated[str | None, Query(max_length=26)] = None,
) -> HTMLResponse:
    # The filter form sends every field, "" for "any".
    wanted = _status(status)
    filters = _filters(
        status=status or None,
        plugin=plugin or None,
        schedule_id=schedule_id or None,
        waiting="true" if waiting else None,
    )
    rows, next_cursor = store.list_executions(
        viewer.owner,
        status=wanted,
        plugin=plugin or None,
        schedule_id=schedule_id or None,
        waiting=True if waiting else None,
        limit=PAGE_ROWS,
        cursor=cursor or None,
    )
    return page(
        request,
        "executions.html",
        viewer=viewer,
        rows=rows,
        filters=filters,
        query=filters["query"],
        cursor=cursor,
        next_cursor=next_cursor,
        live=[r.id for r in rows if not r.status.terminal],
        plugins=sorted({p for p, _ in catalog.entries()}),
    )


@router.get("/executions/live", response_class=HTMLResponse)
def live_rows(viewer: ViewerDep, id: Annotated[list[str], Query(max_length=PAGE_ROWS)]) -> HTMLResponse:
    """The status, duration and attempts of the rows on screen, swapped in place (htmx OOB)."""
    found = store.get_executions([(i, viewer.owner) for i in id])
    rows = [r for r in found if isinstance(r, Execution)]
    live = any(not r.status.terminal for r in rows)
    return HTMLResponse(render("_live_rows.html", rows=rows), status_code=200 if live else STOP_POLLING)


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
async def read_execution(request: Request, execution_id: str, viewer: ViewerDep) -> HTMLResponse:
    row = await polling.read(execution_id, viewer.owner)
    facts = await _facts(row, viewer)
    return page(request, "execution.html", progress=row.progress, **facts)


@router.get("/executions/{execution_id}/raw")
async def raw_execution(execution_id: str, viewer: ViewerDep) -> JSONResponse:
    row = await polling.read(execution_id, viewer.owner)
    return JSONResponse(ExecutionPublic.model_validate(row).model_dump(mode="json"), headers=NO_STORE)


@router.get("/executions/{execution_id}/stream", response_class=EventSourceResponse)
async def stream_execution(
    execution_id: str,
    viewer: ViewerDep,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> EventSourceResponse:
    """The event stream of ``GET /v1/executions/{id}/events`` (``polling.follow``), each
    event as the HTML it adds to the page; ``end`` after the terminal status."""
    row = await polling.read(execution_id, viewer.owner)
    return EventSourceResponse(
        _fragments(row, last_event_id or 0, viewer),
        ping=settings.events_heartbeat_s,
        headers=NO_STORE,
    )


async def _fragments(row: Execution, after_seq: int, viewer: Viewer) -> AsyncIterator[ServerSentEvent]:
    async for event in polling.follow(row, after_seq):
        if event.kind is EventKind.STATUS:
            current = await polling.read(row.id, viewer.owner)
            summary = render("_summary.html", **await _facts(current, viewer))
            yield ServerSentEvent(data=summary, event="status")
        elif event.kind is EventKind.PROGRESS:
            yield ServerSentEvent(data=render("_progress.html", progress=event.data), event="progress")
        yield ServerSentEvent(data=_log_line(event), event="log", id=str(event.seq))
    # follow() returns after the terminal status only: the page closes its stream.
    yield ServerSentEvent(data="", event="end")


async def _facts(row: Execution, viewer: Viewer) -> dict[str, Any]:
    """What the summary shows: the row, and its webhook deliveries once it has ended
    (as ``GET /v1/executions/{id}/deliveries`` answers them)."""
    deliveries: list[DeliveryPublic] = []
    if row.status.terminal:
        answer = await db.run(
            read_execution_deliveries, row.id, viewer.owner, limit=SHOWN_DELIVERIES, cursor=None
        )
        deliveries = answer.deliveries
    return {"e": row, "viewer": viewer, "deliveries": deliveries}


def _log_line(event: ExecutionEvent) -> str:
    data = event.data
    if event.kind is EventKind.STATUS:
        text = str(data.get("status", "")).replace("_", " ")
        if data.get("error"):
            text += f" — {data['error'].get('type', '')}: {data['error'].get('message', '')}"
    elif event.kind is EventKind.PROGRESS:
        text = f"{float(data.get('percent', 0)):.0f}% {data.get('message', '')}"
    else:
        text = f"{data.get('level', '')} {data.get('message', '')}"
    return render("_event.html", kind=event.kind.value, at=event.at, text=text.strip())


@router.post("/executions/{execution_id}/cancel")
async def cancel_execution(execution_id: str, viewer: ViewerDep) -> Response:
    # One that ended meanwhile is not cancelled: its page shows how it ended.
    with suppress(NotCancellable):
        await db.run(cancel, execution_id, viewer.owner)
    return RedirectResponse(f"/ui/executions/{execution_id}", status_code=303)


@router.post("/executions/{execution_id}/retry")
async def retry_execution(request: Request, execution_id: str, viewer: ViewerDep) -> Response:
    """Run it again as a new execution (``POST /v1/executions/{id}/retry``'s path); the
    form's key makes a second click answer the same new execution."""
    key = idempotency_key(await form(request))
    submitted = await db.run(lambda: resubmit(execution_id, viewer.owner, idempotency_key=key))
    return RedirectResponse(f"/ui/executions/{submitted.execution.id}", status_code=303)
