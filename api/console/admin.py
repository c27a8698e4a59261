"""The admin page (the admin key only): API keys, and links to Flower and /metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from agentq.core import store
from agentq.core.errors import Forbidden
from agentq.core.settings import settings
from api.console.rendering import page
from api.console.session import Viewer, ViewerDep, form
from api.routes import keys as api_keys
from api.schemas import ApiKeyCreate

router = APIRouter()


def _admin(viewer: Viewer) -> Viewer:
    if not viewer.admin:
        raise Forbidden("Only the admin key (AGENTQ_ADMIN_API_KEY) opens the admin page.")
    return viewer


def _flower_url(request: Request) -> str:
    return settings.ui_flower_url or f"{request.url.scheme}://{request.url.hostname}:{settings.flower_port}/"


def _page(request: Request, viewer: Viewer, status_code: int = 200, **context: object) -> HTMLResponse:
    return page(
        request,
        "admin.html",
        status_code=status_code,
        viewer=viewer,
        keys=store.list_api_keys(),
        flower_url=_flower_url(request),
        **context,
    )


@router.get("/admin", response_class=HTMLResponse)
def admin(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, _admin(viewer))


@router.post("/admin/keys", response_class=HTMLResponse)
async def create_key(request: Request, viewer: ViewerDep) -> HTMLResponse:
    _admin(viewer)
    try:
        key_in = ApiKeyCreate(name=(await form(request)).get("name", "").strip())
    except ValidationError as exc:
        message = "; ".join(str(e["msg"]) for e in exc.errors())
        return _page(request, viewer, 422, name_error=message)
    created = await run_in_threadpool(api_keys.create_key, key_in, Response(), viewer.owner)
    # The secret is in this answer only, as from POST /v1/keys.
    return _page(request, viewer, 201, created=created)


@router.post("/admin/keys/{key_id}/revoke")
async def revoke_key(key_id: str, viewer: ViewerDep) -> Response:
    _admin(viewer)
    await run_in_threadpool(api_keys.revoke_key, key_id, viewer.owner)
    return RedirectResponse("/ui/admin", status_code=303)
