"""Every error answer is ``application/problem+json`` (RFC 9457).

One table maps agentq's error classes to statuses; a handler on the base class covers
every subclass.
"""

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from core.errors import (
    AgentqError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)

MEDIA_TYPE = "application/problem+json"
STATUS: dict[type[AgentqError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    InvalidRequest: 422,
    RateLimited: 429,
    Unavailable: 503,
}
log = logging.getLogger("agentq.api")


def _slug(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:agentq:problem:{kind}",
        "title": title,
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
    name = type(exc).__name__
    return problem(status, name, exc.detail, kind=_slug(name), errors=exc.errors, headers=headers)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    malformed = [e for e in errors if e["type"] == "json_invalid"]
    if malformed:
        return problem(
            400,
            "Malformed JSON",
            f"The body is not valid JSON: {malformed[0]['msg']}.",
            kind="malformed-json",
            errors=malformed,
        )
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem(422, "Invalid request", detail, kind="invalid-request", errors=errors)


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(
        exc.status_code,
        str(exc.detail),
        str(exc.detail),
        kind=f"http-{exc.status_code}",
        headers=dict(exc.headers) if exc.headers else None,
    )


async def database_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database error: %s", exc)
    return problem(
        503,
        "Database unavailable",
        "The database is unreachable; try again shortly.",
        kind="database-unavailable",
        headers={"Retry-After": "1"},
    )


async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(
        500, "Internal error", "An unexpected error occurred; it has been logged.", kind="internal"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AgentqError, agentq_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(OperationalError, database_error)
    app.add_exception_handler(InterfaceError, database_error)
    app.add_exception_handler(Exception, unexpected_error)
