"""The failed page: failed and timed-out executions grouped by plugin and error type."""

from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agentq.core import db, store
from agentq.core.models import ExecutionStatus
from api.console.rendering import page
from api.console.session import ViewerDep, form, idempotency_key
from api.onloop import LoopRoute
from api.submit import resubmit_many

router = APIRouter(route_class=LoopRoute)
# The newest this many failures are grouped; older ones are on the executions page.
GROUPED_ROWS = 1000


@dataclass
class Group:
    plugin: str
    error_type: str
    rows: list[store.Failure] = field(default_factory=list)

    @property
    def newest(self) -> store.Failure:
        return self.rows[0]


def error_type(row: store.Failure) -> str:
    if row.error and row.error.get("type"):
        return str(row.error["type"])
    return row.status.value


def grouped(rows: list[store.Failure]) -> list[Group]:
    """By plugin and error type, the largest group first (rows stay newest first)."""
    groups: dict[tuple[str, str], Group] = {}
    for row in rows:
        key = (row.plugin, error_type(row))
        groups.setdefault(key, Group(*key)).rows.append(row)
    return sorted(groups.values(), key=lambda g: (-len(g.rows), g.plugin, g.error_type))


@router.get("/failed", response_class=HTMLResponse)
def failed(request: Request, viewer: ViewerDep) -> HTMLResponse:
    rows = store.ended_badly(viewer.owner, GROUPED_ROWS)
    return page(
        request,
        "failed.html",
        viewer=viewer,
        groups=grouped(rows),
        capped=len(rows) == GROUPED_ROWS,
        retried=request.query_params.get("retried"),
    )


@router.post("/failed/retry")
async def retry_group(request: Request, viewer: ViewerDep) -> Response:
    """ "Retry these": the group's executions run again, in one transaction, through
    ``POST /v1/executions/retry``'s path (only those still failed or timed out)."""
    sent = await form(request)
    ids = [i for i in sent.get("ids", "").split(",") if i][:GROUPED_ROWS]
    if not ids:
        return RedirectResponse("/ui/failed", status_code=303)
    selection = store.RetryFilter(
        statuses=(ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT), ids=ids, limit=len(ids)
    )
    key = idempotency_key(sent)
    submitted = await db.run(lambda: resubmit_many(selection, viewer.owner, idempotency_key=key))
    return RedirectResponse(f"/ui/failed?retried={len(submitted)}", status_code=303)
