"""Signing in (an API key for a session cookie) and out.

The sign-in form has no session to carry a CSRF token in yet: a short-lived cookie of its
own holds one (double submit), so another site cannot sign a browser in with its key.
"""

import hmac
import secrets
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agentq.core import keys
from api.auth import owner_of_digest
from api.console.rendering import page
from api.console.session import COOKIE, CSRF_FIELD, ViewerDep, cookie_options, form, session_cookie
from api.onloop import LoopRoute

router = APIRouter(route_class=LoopRoute)
SIGN_IN_COOKIE = "agentq_sign_in"


def _safe_next(target: str) -> str:
    """Only a path of the console: never an open redirect to another site."""
    target = unquote(target or "")
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/executions"


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/executions", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "") -> HTMLResponse:
    return _form(request, next, None, 200)


def _form(request: Request, next_url: str, error: str | None, status_code: int) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(request, "sign_in.html", token=token, next=next_url, error=error, status_code=status_code)
    options = cookie_options(request) | {"key": SIGN_IN_COOKIE, "max_age": 3600}
    response.set_cookie(value=token, **options)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    fields = await form(request)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    sent = fields.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _form(request, fields.get("next", ""), "The form expired; sign in again.", 403)
    secret = fields.get("api_key", "").strip()
    if not secret or await owner_of_digest(keys.hash_key(secret)) is None:
        return _form(request, fields.get("next", ""), "This API key is unknown or revoked.", 401)
    response = RedirectResponse(_safe_next(fields.get("next", "")), status_code=303)
    response.set_cookie(value=session_cookie(secret), **cookie_options(request))
    response.delete_cookie(SIGN_IN_COOKIE, path="/ui")
    return response


@router.post("/sign-out")
def sign_out(_: ViewerDep) -> RedirectResponse:
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
