"""Every error answer is ``application/problem+json`` (RFC 9457).

One table maps agentq's error classes to statuses; a handler on the base class covers
every subclass. Each problem type has one title, in ``TITLES``: an error class's type
and title are its name (``InvalidRequest``: ``invalid-request``, "Invalid request").
"""

import logging
import math
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from agentq.core.errors import (
    AgentqError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)

MEDIA_TYPE = "application/problem+json"
STATUS: dict[type[AgentqError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidRequest: 422,
    RateLimited: 429,
    Unavailable: 503,
}
log = logging.getLogger("agentq.api")


def _words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z]*", name)


def _slug(name: str) -> str:
    return "-".join(_words(name)).lower()


def _title(name: str) -> str:
    return " ".join(_words(name)).capitalize()


def _subclasses(cls: type[AgentqError]) -> list[type[AgentqError]]:
    return [cls] + [c for sub in cls.__subclasses__() for c in _subclasses(sub)]


# Problem type (the end of its URN) -> its one title.
TITLES: dict[str, str] = {
    **{_slug(cls.__name__): _title(cls.__name__) for cls in _subclasses(AgentqError)},
    **{f"http-{s.value}": s.phrase.capitalize() for s in HTTPStatus},
    "malformed-json": "Malformed JSON",
    "internal": "Internal error",
}


def problem(
    status: int,
    kind: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The answer of problem type ``kind`` (a key of ``TITLES``)."""
    body: dict[str, Any] = {
        "type": f"urn:agentq:problem:{kind}",
        "title": TITLES[kind],
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def agentq_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentqError)
    status = next((STATUS[k] for k in type(exc).__mro__ if k in STATUS), 500)
    headers = {"Retry-After": "1"} if status == 503 else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="agentq"'}
    # An error class defined after this table is answered as the nearest one in it.
    kind = next(k for k in map(_slug, (c.__name__ for c in type(exc).__mro__)) if k in TITLES)
    return problem(status, kind, exc.detail, errors=exc.errors, headers=headers)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    malformed = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        # FastAPI's message is "JSON decode error"; the decoder's says what is wrong.
        why = malformed.get("ctx", {}).get("error") or malformed.get("msg", "")
        loc = list(malformed.get("loc", ()))
        return problem(
            400,
            "malformed-json",
            f"The body is not JSON: {why} (at character {loc[-1]}).",
            errors=[{"loc": loc, "msg": why, "type": "json_invalid"}],
        )
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem(422, "invalid-request", detail, errors=errors)


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(
        exc.status_code,
        f"http-{exc.status_code}",
        str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def database_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database error: %s", exc)
    return problem(
        503,
        "database-unavailable",
        "The database is unreachable; try again shortly.",
        headers={"Retry-After": "1"},
    )


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal", "An unexpected error occurred; it has been logged.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AgentqError, agentq_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(OperationalError, database_error)
    app.add_exception_handler(InterfaceError, database_error)
    app.add_exception_handler(Exception, unexpected_error)
