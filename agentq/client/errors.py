"""The errors a client raises, one per kind of problem+json answer."""

import email.utils
from datetime import UTC, datetime
from typing import Any

import httpx


class AgentqClientError(Exception):
    """Base of the client's errors."""


class AgentqConnectionError(AgentqClientError):
    """The API could not be reached (refused, reset, timed out)."""


class AgentqHTTPError(AgentqClientError):
    """The API answered with an error; the fields come from its problem+json body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors = errors or []
        self.retry_after = retry_after
        self.body = body or {}


class AuthError(AgentqHTTPError):
    """No key, an unknown or revoked key, or a key that may not do this."""


class NotFoundError(AgentqHTTPError):
    pass


class ConflictError(AgentqHTTPError):
    """E.g. cancelling a finished execution, or an Idempotency-Key reused for another request."""


class ValidationError(AgentqHTTPError):
    """The request was invalid; ``errors`` names the fields."""


class RateLimitedError(AgentqHTTPError):
    """Too many requests; try again after ``retry_after`` seconds."""


class UnavailableError(AgentqHTTPError):
    """A dependency of the API is down; try again after ``retry_after`` seconds."""


_ERRORS: dict[int, type[AgentqHTTPError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
    429: RateLimitedError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> AgentqHTTPError:
    """The typed error for an error answer; its body must have been read."""
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        body = parsed
    status = response.status_code
    title = str(body.get("title") or response.reason_phrase or f"HTTP {status}")
    # Not problem+json (a proxy's error page, say): the start of the text says what happened.
    detail = str(body.get("detail") or (response.text.strip()[:500] if not body else "") or title)
    errors = body.get("errors")
    cls = _ERRORS.get(status, AgentqHTTPError)
    return cls(
        status,
        title,
        detail,
        type=str(body.get("type") or "about:blank"),
        errors=errors if isinstance(errors, list) else None,
        retry_after=_retry_after(response.headers.get("Retry-After")),
        body=body,
    )
