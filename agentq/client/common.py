"""What the sync and async clients share: defaults, request bodies, checking answers."""

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from agentq.client.errors import AgentqConnectionError, error_from_response
from agentq.client.models import Submission

DEFAULT_URL = "http://127.0.0.1:8000"
# One long-poll request waits this long at most; the server's own cap (AGENTQ_MAX_WAIT_S) is 60.
LONG_POLL_S = 30.0
# A stream with nothing on it for this long is taken as dropped and resumed; the server
# sends a heartbeat comment every 15 s.
STREAM_READ_TIMEOUT_S = 60.0


def _config(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("AGENTQ_URL") or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get("AGENTQ_API_KEY", "")
    headers = {"Accept": "application/json", "User-Agent": "agentq-client/1"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _submission(
    plugin: str,
    command: str,
    params: Mapping[str, Any] | None,
    priority: int | None,
    timeout_s: float | None,
    max_retries: int | None,
    webhook: str | None = None,
    webhook_events: Sequence[str] | None = None,
    **later: Any,
) -> dict[str, Any]:
    """A submission's body; ``later``: ``concurrency_key``, ``run_at``, ``delay_s``."""
    run_at = later.get("run_at")
    if isinstance(run_at, datetime):
        later["run_at"] = run_at.isoformat()
    return _drop_none(
        {
            "plugin": plugin,
            "command": command,
            "params": dict(params or {}),
            "priority": priority,
            "timeout_s": timeout_s,
            "max_retries": max_retries,
            "webhook": webhook,
            "webhook_events": list(webhook_events) if webhook_events else None,
            **later,
        }
    )


def _webhook(url: str, events: Sequence[str] | None, description: str) -> dict[str, Any]:
    return _drop_none({"url": url, "events": list(events) if events else None, "description": description})


def _batch(items: Iterable[Submission | Mapping[str, Any]]) -> dict[str, Any]:
    executions = [
        (item if isinstance(item, Submission) else Submission.model_validate(item)).model_dump(
            exclude_none=True, exclude_unset=False
        )
        for item in items
    ]
    return {"executions": executions}


def _retry_filter(
    status: str | Sequence[str] | None,
    plugin: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int | None,
) -> dict[str, Any]:
    return _drop_none(
        {
            "status": [status] if isinstance(status, str) else None if status is None else list(status),
            "plugin": plugin,
            "created_after": created_after.isoformat() if created_after else None,
            "created_before": created_before.isoformat() if created_before else None,
            "limit": limit,
        }
    )


def _key_header(idempotency_key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else None


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_from_response(response)
    return response


def _connection_error(base: str, exc: httpx.TransportError) -> AgentqConnectionError:
    return AgentqConnectionError(f"Cannot reach agentq at {base}: {exc or type(exc).__name__}")
