"""The admin page (the admin key only): API keys, concurrency limits, and links to Flower
and /metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from agentq.core import db, store
from agentq.core.errors import Forbidden
from agentq.core.settings import settings
from api.console.rendering import page
from api.console.session import Viewer, ViewerDep, form
from api.limit_schemas import ApiKeyUpdate, ConcurrencyKey, LimitUpdate
from api.onloop import LoopRoute
from api.routes import keys as api_keys
from api.routes import limits as api_limits
from api.schemas import ApiKeyCreate

router = APIRouter(route_class=LoopRoute)


def _admin(viewer: Viewer) -> Viewer:
    if not viewer.admin:
        raise Forbidden("Only the admin key (AGENTQ_ADMIN_API_KEY) opens the admin page.")
    return viewer


def _refusal(exc: ValidationError) -> str:
    return "; ".join(str(e["msg"]) for e in exc.errors())


def _flower_url(request: Request) -> str:
    return settings.ui_flower_url or f"{request.url.scheme}://{request.url.hostname}:{settings.flower_port}/"


def _page(request: Request, viewer: Viewer, status_code: int = 200, **context: object) -> HTMLResponse:
    """The admin page; it reads the store: from a coroutine, through ``db.run``."""
    return page(
        request,
        "admin.html",
        status_code=status_code,
        viewer=viewer,
        keys=store.list_api_keys(),
        limits=api_limits.read_limits(viewer.owner).limits,
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
        return await db.run(_page, request, viewer, 422, name_error=_refusal(exc))
    created = await db.run(api_keys.create_key, key_in, Response(), viewer.owner)
    # The secret is in this answer only, as from POST /v1/keys.
    return await db.run(_page, request, viewer, 201, created=created)


@router.post("/admin/keys/{key_id}/revoke")
async def revoke_key(key_id: str, viewer: ViewerDep) -> Response:
    _admin(viewer)
    await db.run(api_keys.revoke_key, key_id, viewer.owner)
    return RedirectResponse("/ui/admin", status_code=303)


@router.post("/admin/keys/{key_id}/max-running", response_class=HTMLResponse)
async def set_key_max_running(key_id: str, request: Request, viewer: ViewerDep) -> Response:
    _admin(viewer)
    value = (await form(request)).get("max_running", "").strip()
    try:
        key_in = ApiKeyUpdate.model_validate({"max_running": value or None})
    except ValidationError as exc:
        return await db.run(_page, request, viewer, 422, key_limit_error=(key_id, _refusal(exc)))
    await db.run(api_keys.update_key, key_id, key_in, viewer.owner)
    return RedirectResponse("/ui/admin", status_code=303)


_CONCURRENCY_KEY: TypeAdapter[str] = TypeAdapter(ConcurrencyKey)


@router.post("/admin/limits", response_class=HTMLResponse)
async def put_limit(request: Request, viewer: ViewerDep) -> Response:
    _admin(viewer)
    fields = await form(request)
    try:
        key = _CONCURRENCY_KEY.validate_python(fields.get("concurrency_key", "").strip())
        limit_in = LimitUpdate.model_validate({"max_running": fields.get("max_running", "").strip()})
    except ValidationError as exc:
        return await db.run(_page, request, viewer, 422, limit_error=_refusal(exc))
    await api_limits.put_limit(key, limit_in, viewer.owner)
    return RedirectResponse("/ui/admin", status_code=303)


@router.post("/admin/limits/remove")
async def remove_limit(request: Request, viewer: ViewerDep) -> Response:
    _admin(viewer)
    await api_limits.delete_limit((await form(request)).get("concurrency_key", ""), viewer.owner)
    return RedirectResponse("/ui/admin", status_code=303)
