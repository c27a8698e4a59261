"""``AsyncClient``: ``Client`` for asyncio."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from agentq.client.common import (
    LONG_POLL_S,
    STREAM_READ_TIMEOUT_S,
    _batch,
    _check,
    _config,
    _connection_error,
    _drop_none,
    _key_header,
    _retry_filter,
    _submission,
    _webhook,
)
from agentq.client.errors import UnavailableError, error_from_response
from agentq.client.models import (
    ApiKey,
    ApiKeyCreated,
    DeliveryPage,
    Event,
    Execution,
    ExecutionPage,
    Limit,
    PluginInfo,
    Schedule,
    SchedulePage,
    Submission,
    Webhook,
    WebhookCreated,
    WebhookPage,
)
from agentq.client.sse import SSEDecoder, _Resume, _StreamEnded, parse_event


class AsyncClient:
    """``Client`` for asyncio: the same methods, awaited; ``events`` is an async iterator."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, headers = _config(url, api_key)
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=_drop_none(params or {}),
                headers=headers,
                timeout=timeout_s or self.timeout_s,
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.url, exc) from exc
        return _check(response)

    async def submit(
        self,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        priority: int | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> Execution:
        body = _submission(plugin, command, params, priority, timeout_s, max_retries, webhook, webhook_events)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._request("POST", "/v1/executions", json=body, headers=headers)
        return Execution.model_validate(response.json())

    async def submit_batch(self, items: Iterable[Submission | Mapping[str, Any]]) -> list[Execution]:
        response = await self._request("POST", "/v1/executions/batch", json=_batch(items))
        return ExecutionPage.model_validate(response.json()).executions

    async def get(self, execution_id: str, *, wait_s: float = 0) -> Execution:
        response = await self._request(
            "GET",
            f"/v1/executions/{execution_id}",
            params={"wait": wait_s or None},
            timeout_s=self.timeout_s + wait_s,
        )
        return Execution.model_validate(response.json())

    async def wait(self, execution_id: str, timeout_s: float | None = None) -> Execution:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = LONG_POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
            execution = await self.get(execution_id, wait_s=min(LONG_POLL_S, left))
            if execution.terminal or (deadline is not None and time.monotonic() >= deadline):
                return execution

    async def list_executions(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        schedule_id: str | None = None,
        waiting: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        params = {
            "status": status,
            "plugin": plugin,
            "schedule_id": schedule_id,
            "waiting": None if waiting is None else str(waiting).lower(),
            "limit": limit,
            "cursor": cursor,
        }
        response = await self._request("GET", "/v1/executions", params=params)
        return ExecutionPage.model_validate(response.json())

    async def cancel(self, execution_id: str) -> Execution:
        response = await self._request("POST", f"/v1/executions/{execution_id}/cancel")
        return Execution.model_validate(response.json())

    async def retry(self, execution_id: str, *, idempotency_key: str | None = None) -> Execution:
        headers = _key_header(idempotency_key)
        response = await self._request("POST", f"/v1/executions/{execution_id}/retry", headers=headers)
        return Execution.model_validate(response.json())

    async def retry_many(
        self,
        *,
        status: str | Sequence[str] | None = None,
        plugin: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[Execution]:
        body = _retry_filter(status, plugin, created_after, created_before, limit)
        response = await self._request(
            "POST", "/v1/executions/retry", json=body, headers=_key_header(idempotency_key)
        )
        return ExecutionPage.model_validate(response.json()).executions

    async def events(
        self,
        execution_id: str,
        *,
        last_event_id: int | None = None,
        reconnect_s: float = 1.0,
        max_reconnects: int = 10,
    ) -> AsyncIterator[Event]:
        path = f"/v1/executions/{execution_id}/events"
        resume = _Resume(last_event_id, reconnect_s, max_reconnects)
        timeout = httpx.Timeout(self.timeout_s, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                async with self._http.stream(
                    "GET", path, headers=resume.headers(), timeout=timeout
                ) as response:
                    if response.is_error:
                        await response.aread()
                        raise error_from_response(response)
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
                        message = decoder.feed(line)
                        if decoder.retry is not None:
                            resume.delay_s = decoder.retry / 1000
                        event = parse_event(message) if message else None
                        if event is None or not resume.seen(event):
                            continue
                        yield event
                        if event.terminal:
                            return
                if (await self.get(execution_id)).terminal:
                    return
                delay_s = resume.dropped(_StreamEnded("the server closed the stream"), self.url + path)
            except (httpx.TransportError, UnavailableError) as exc:
                delay_s = resume.dropped(exc, self.url + path)
            await asyncio.sleep(delay_s)

    async def plugins(self) -> list[PluginInfo]:
        body = (await self._request("GET", "/v1/plugins")).json()
        return [PluginInfo.model_validate(p) for p in body["plugins"]]

    async def create_schedule(
        self,
        name: str,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Schedule:
        body = {"name": name, "plugin": plugin, "command": command, "params": dict(params or {})}
        response = await self._request("POST", "/v1/schedules", json=body | _drop_none(fields))
        return Schedule.model_validate(response.json())

    async def list_schedules(self, *, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        response = await self._request("GET", "/v1/schedules", params={"limit": limit, "cursor": cursor})
        return SchedulePage.model_validate(response.json())

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate((await self._request("GET", f"/v1/schedules/{schedule_id}")).json())

    async def update_schedule(self, schedule_id: str, **changes: Any) -> Schedule:
        response = await self._request("PATCH", f"/v1/schedules/{schedule_id}", json=changes)
        return Schedule.model_validate(response.json())

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._request("DELETE", f"/v1/schedules/{schedule_id}")

    async def run_schedule(self, schedule_id: str) -> Execution:
        response = await self._request("POST", f"/v1/schedules/{schedule_id}/run")
        return Execution.model_validate(response.json())

    async def create_key(self, name: str) -> ApiKeyCreated:
        response = await self._request("POST", "/v1/keys", json={"name": name})
        return ApiKeyCreated.model_validate(response.json())

    async def list_keys(self) -> list[ApiKey]:
        body = (await self._request("GET", "/v1/keys")).json()
        return [ApiKey.model_validate(k) for k in body["keys"]]

    async def revoke_key(self, key_id: str) -> None:
        await self._request("DELETE", f"/v1/keys/{key_id}")

    # -- webhooks

    async def create_webhook(
        self, url: str, events: Sequence[str] | None = None, *, description: str = ""
    ) -> WebhookCreated:
        """Subscribe ``url`` to ``events`` (default: all) of this key's executions; the
        answer's ``secret`` is shown this once."""
        response = await self._request("POST", "/v1/webhooks", json=_webhook(url, events, description))
        return WebhookCreated.model_validate(response.json())

    async def list_webhooks(self, *, limit: int = 50, cursor: str | None = None) -> WebhookPage:
        response = await self._request("GET", "/v1/webhooks", params={"limit": limit, "cursor": cursor})
        return WebhookPage.model_validate(response.json())

    async def get_webhook(self, webhook_id: str) -> Webhook:
        return Webhook.model_validate((await self._request("GET", f"/v1/webhooks/{webhook_id}")).json())

    async def update_webhook(self, webhook_id: str, **changes: Any) -> Webhook:
        """Change only the fields given: ``url``, ``events``, ``description``, ``enabled``."""
        response = await self._request("PATCH", f"/v1/webhooks/{webhook_id}", json=changes)
        return Webhook.model_validate(response.json())

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._request("DELETE", f"/v1/webhooks/{webhook_id}")

    async def rotate_webhook_secret(self, webhook_id: str) -> str:
        """A new secret; the old one signs too for 24 h."""
        response = await self._request("POST", f"/v1/webhooks/{webhook_id}/rotate-secret")
        return str(response.json()["key"])

    async def default_webhook_secret(self) -> str:
        """The secret that signs this key's per-execution ``webhook`` deliveries."""
        return str((await self._request("GET", "/v1/webhooks/default/secret")).json()["key"])

    async def deliveries(
        self,
        *,
        webhook_id: str | None = None,
        execution_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """The deliveries, with their attempts, of an endpoint or of an execution."""
        path = (
            f"/v1/webhooks/{webhook_id}/deliveries"
            if webhook_id
            else f"/v1/executions/{execution_id}/deliveries"
        )
        response = await self._request("GET", path, params={"limit": limit, "cursor": cursor})
        return DeliveryPage.model_validate(response.json())

    async def retry_delivery(self, webhook_id: str, delivery_id: str) -> None:
        """Send a delivery again now."""
        await self._request("POST", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")

    # -- concurrency limits

    async def set_limit(self, concurrency_key: str, max_running: int) -> Limit:
        """Let at most ``max_running`` executions with ``concurrency_key`` run at once."""
        path = f"/v1/limits/{concurrency_key}"
        response = await self._request("PUT", path, json={"max_running": max_running})
        return Limit.model_validate(response.json())

    async def list_limits(self) -> list[Limit]:
        """This key's limits, with how many of their executions run and wait now."""
        response = await self._request("GET", "/v1/limits")
        return [Limit.model_validate(item) for item in response.json()["limits"]]

    async def delete_limit(self, concurrency_key: str) -> None:
        await self._request("DELETE", f"/v1/limits/{concurrency_key}")

    async def set_key_max_running(self, key_id: str, max_running: int | None) -> ApiKey:
        """Limit a key's executions running at once (admin key only); None: no limit."""
        response = await self._request("PATCH", f"/v1/keys/{key_id}", json={"max_running": max_running})
        return ApiKey.model_validate(response.json())
