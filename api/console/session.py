"""Who uses the console: a signed session cookie made from an API key, and its CSRF token.

The cookie holds the key's SHA-256 (never the key) and a random CSRF token, signed with
itsdangerous; each request resolves the hash to its owner as the API resolves a Bearer
key (``api.auth.owner_of_digest``), so a revoked key signs its sessions out within
AGENTQ_KEY_CACHE_S. The cookie is HttpOnly and SameSite=Strict; every state-changing
form also carries the token, compared in constant time.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from agentq.core import keys
from agentq.core.models import ADMIN_OWNER
from agentq.core.settings import settings
from api.auth import owner_of_digest
from api.ratelimit import limiter

COOKIE = "agentq_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class SignInRequired(Exception):
    """No valid session: answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


@dataclass(frozen=True)
class Viewer:
    owner: str
    csrf: str

    @property
    def admin(self) -> bool:
        return self.owner == ADMIN_OWNER


@cache
def _serializer() -> URLSafeTimedSerializer:
    secret = settings.ui_secret_key
    if not secret:
        # Every API process derives the same key from the admin key; with neither set,
        # a random one (sessions then last as long as the process).
        base = settings.admin_api_key or secrets.token_hex(32)
        secret = hashlib.sha256(b"agentq-ui-session:" + base.encode()).hexdigest()
    return URLSafeTimedSerializer(secret, salt="agentq.console.session")


def session_cookie(api_key: str) -> str:
    """The cookie value of a session signed in with ``api_key``."""
    return _serializer().dumps({"k": keys.hash_key(api_key), "c": secrets.token_urlsafe(24)})


def cookie_options(request: Request) -> dict[str, Any]:
    return {
        "key": COOKIE,
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/ui",
        "max_age": int(settings.ui_session_s),
    }


def _session(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=int(settings.ui_session_s))
    except BadSignature:
        return None
    return data if isinstance(data, dict) and {"k", "c"} <= data.keys() else None


async def viewer(request: Request) -> Viewer:
    """The signed-in owner, or a redirect to the sign-in page; POSTs must carry the token."""
    data = _session(request)
    owner = await owner_of_digest(data["k"]) if data else None
    if data is None or owner is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(quote(target, safe=""))
    await limiter.check(owner)
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get(CSRF_HEADER) or (await form(request)).get(CSRF_FIELD, "")
        if not hmac.compare_digest(sent.encode(), data["c"].encode()):
            raise CsrfRefused
    return Viewer(owner, data["c"])


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each), read once per request."""
    cached: dict[str, str] | None = request.scope.get("agentq.form")
    if cached is None:
        body = (await request.body()).decode("utf-8", "replace")
        cached = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        request.scope["agentq.form"] = cached
    return cached


ViewerDep = Annotated[Viewer, Depends(viewer)]


KEY_FIELD = "idempotency_key"


def new_idempotency_key() -> str:
    """A form's own Idempotency-Key: sending the same form twice acts once."""
    return "console:" + secrets.token_urlsafe(16)


def idempotency_key(sent: dict[str, str]) -> str | None:
    key = sent.get(KEY_FIELD, "")
    return key if key.startswith("console:") and len(key) <= 64 else None
