"""Who is calling: the Bearer API key, resolved to an owner, then rate-limited."""

import hmac
import time
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.ratelimit import limiter
from core import keys, store
from core.errors import Forbidden, Unauthorized
from core.models import ADMIN_OWNER
from core.settings import settings

# key hash -> (owner or None, cached until): one database lookup per key per few seconds.
_cache: dict[str, tuple[str | None, float]] = {}


async def _owner_of(secret: str) -> str | None:
    if settings.admin_api_key and hmac.compare_digest(secret.encode(), settings.admin_api_key.encode()):
        return ADMIN_OWNER
    digest = keys.hash_key(secret)
    cached = _cache.get(digest)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    owner = await run_in_threadpool(store.owner_of_key, digest)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (owner, time.monotonic() + settings.key_cache_s)
    return owner


async def authenticate(request: Request) -> str:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("Send an API key: `Authorization: Bearer <key>`.")
    owner = await _owner_of(secret.strip())
    if owner is None:
        raise Unauthorized("The API key is unknown or revoked.")
    await limiter.check(owner)
    return owner


OwnerDep = Annotated[str, Depends(authenticate)]


async def require_admin(owner: OwnerDep) -> str:
    if owner != ADMIN_OWNER:
        raise Forbidden("Only the admin key (AGENTQ_ADMIN_API_KEY) manages API keys.")
    return owner


AdminDep = Annotated[str, Depends(require_admin)]
