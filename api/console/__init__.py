"""The web console at ``/ui``: server-rendered pages over the same store functions and
owner scoping as the HTTP API, with vendored htmx for live updates (no build step).

Mounted by ``api.main`` unless ``AGENTQ_UI=0``; it adds routes and error handlers, no
middleware, so the JSON API's requests do no work for it (an error answer checks its path).
"""

import json

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from agentq.core.errors import AgentqError, NotFound
from api import problems
from api.console import admin, executions, failed, plugins, schedules, signin
from api.console.rendering import STATIC_FILES, page
from api.console.session import CsrfRefused, SignInRequired
from api.onloop import LoopRoute

# A versioned file never changes: browsers and proxies keep it for good.
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=LoopRoute)
for module in (signin, executions, failed, schedules, plugins, admin):
    router.include_router(module.router)


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(f"No static file {name!r} in this version of the console.")
    return FileResponse(path, headers=IMMUTABLE)


async def _sign_in_first(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/ui/sign-in?next={exc.next_url}", status_code=303)


async def _csrf_refused(request: Request, _: Exception) -> HTMLResponse:
    message = "This form was not sent from this console (its CSRF token is missing or stale); reload the page and try again."
    return page(request, "refused.html", status_code=403, title="Refused", message=message)


async def _agentq_error(request: Request, exc: Exception) -> Response:
    """The API's problem answers; on the console's pages, the same as a page."""
    answer = await problems.agentq_error(request, exc)
    if not request.url.path.startswith("/ui/"):
        return answer
    assert isinstance(exc, AgentqError)
    title = problems.TITLES.get(json.loads(bytes(answer.body))["type"].rsplit(":", 1)[1], "Refused")
    return page(request, "refused.html", status_code=answer.status_code, title=title, message=exc.detail)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(AgentqError, _agentq_error)
