"""Who is calling: the Bearer API key, resolved to an owner, then rate-limited.

The key is declared in the OpenAPI schema as an HTTP bearer security scheme on every
route that takes it, so the docs page has an Authorize button and "Try it out" sends it.
"""

import hmac
import time
from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from agentq.core import db, keys, store
from agentq.core.errors import Forbidden, Unauthorized
from agentq.core.models import ADMIN_OWNER
from agentq.core.settings import settings
from api.ratelimit import limiter

# key hash -> (owner or None, cached until): one database lookup per key per few seconds.
_cache: dict[str, tuple[str | None, float]] = {}


async def _owner_of(secret: str) -> str | None:
    if settings.admin_api_key and hmac.compare_digest(secret.encode(), settings.admin_api_key.encode()):
        return ADMIN_OWNER
    return await _owner_of_stored(keys.hash_key(secret))


@cache
def _admin_digest() -> str:
    return keys.hash_key(settings.admin_api_key) if settings.admin_api_key else ""


async def owner_of_digest(digest: str) -> str | None:
    """The owner of the key whose hash is ``digest`` (what the console's session keeps
    instead of the secret), as ``authenticate`` resolves it; None if unknown or revoked."""
    admin = _admin_digest()
    if admin and hmac.compare_digest(digest.encode(), admin.encode()):
        return ADMIN_OWNER
    return await _owner_of_stored(digest)


async def _owner_of_stored(digest: str) -> str | None:
    cached = _cache.get(digest)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    owner = await db.run(store.owner_of_key, digest)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (owner, time.monotonic() + settings.key_cache_s)
    return owner


class BearerKey(SecurityBase):
    """The dependency that answers who calls, declared as a security scheme.

    What ``fastapi.security.HTTPBearer`` declares, without a dependency of its own to
    solve per request before this one: the scheme is this dependency itself.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description="An API key (the admin key, or one made with `POST /v1/keys`)."
        )
        self.scheme_name = "ApiKey"

    async def __call__(self, request: Request) -> str:
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("Send an API key: `Authorization: Bearer <key>`.")
        owner = await _owner_of(secret.strip())
        if owner is None:
            raise Unauthorized("The API key is unknown or revoked.")
        await limiter.check(owner)
        return owner


authenticate = BearerKey()


OwnerDep = Annotated[str, Depends(authenticate)]


async def require_admin(owner: OwnerDep) -> str:
    if owner != ADMIN_OWNER:
        raise Forbidden("Only the admin key (AGENTQ_ADMIN_API_KEY) manages API keys.")
    return owner


AdminDep = Annotated[str, Depends(require_admin)]
