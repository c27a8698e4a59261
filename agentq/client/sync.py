"""``Client``: the agentq API over HTTP."""

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


class Client:
    """The agentq API over HTTP. ``url`` and ``api_key`` default to AGENTQ_URL and AGENTQ_API_KEY."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, headers = _config(url, api_key)
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
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
            response = self._http.request(
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

    # -- executions

    def submit(
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
        concurrency_key: str | None = None,
        run_at: datetime | None = None,
        delay_s: float | None = None,
    ) -> Execution:
        """Queue an execution; the same ``idempotency_key`` again returns the first one.
        ``concurrency_key`` counts it against that key's limit; ``run_at`` or ``delay_s``
        holds it until then."""
        later = {"concurrency_key": concurrency_key, "run_at": run_at, "delay_s": delay_s}
        body = _submission(
            plugin, command, params, priority, timeout_s, max_retries, webhook, webhook_events, **later
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._request("POST", "/v1/executions", json=body, headers=headers)
        return Execution.model_validate(response.json())

    def submit_batch(self, items: Iterable[Submission | Mapping[str, Any]]) -> list[Execution]:
        """Queue up to 1,000 executions at once; answered in the same order."""
        response = self._request("POST", "/v1/executions/batch", json=_batch(items))
        return ExecutionPage.model_validate(response.json()).executions

    def get(self, execution_id: str, *, wait_s: float = 0) -> Execution:
        """An execution; with ``wait_s``, as soon as it is terminal or after that many seconds."""
        response = self._request(
            "GET",
            f"/v1/executions/{execution_id}",
            params={"wait": wait_s or None},
            timeout_s=self.timeout_s + wait_s,
        )
        return Execution.model_validate(response.json())

    def wait(self, execution_id: str, timeout_s: float | None = None) -> Execution:
        """The execution once terminal (long-polling), or as it is when ``timeout_s`` runs out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = LONG_POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
            execution = self.get(execution_id, wait_s=min(LONG_POLL_S, left))
            if execution.terminal or (deadline is not None and time.monotonic() >= deadline):
                return execution

    def list_executions(
        self,
        *,
        status: str | None = None,
        plugin: str | None = None,
        schedule_id: str | None = None,
        waiting: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """A page of executions, newest first; pass ``next_cursor`` as ``cursor`` for the next."""
        params = {
            "status": status,
            "plugin": plugin,
            "schedule_id": schedule_id,
            "waiting": None if waiting is None else str(waiting).lower(),
            "limit": limit,
            "cursor": cursor,
        }
        return ExecutionPage.model_validate(self._request("GET", "/v1/executions", params=params).json())

    def cancel(self, execution_id: str) -> Execution:
        """Cancel a queued or running execution."""
        response = self._request("POST", f"/v1/executions/{execution_id}/cancel")
        return Execution.model_validate(response.json())

    def retry(self, execution_id: str, *, idempotency_key: str | None = None) -> Execution:
        """Run a failed, timed-out or cancelled execution again as a new one (``retry_of`` its id)."""
        headers = _key_header(idempotency_key)
        response = self._request("POST", f"/v1/executions/{execution_id}/retry", headers=headers)
        return Execution.model_validate(response.json())

    def retry_many(
        self,
        *,
        status: str | Sequence[str] | None = None,
        plugin: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[Execution]:
        """Run the key's failed, timed-out or cancelled executions that match again, oldest
        first (at most ``limit``, default 100, up to 1,000); ``status`` is one or several of
        failed, timed_out, cancelled (default all three). Answers the new executions."""
        body = _retry_filter(status, plugin, created_after, created_before, limit)
        response = self._request(
            "POST", "/v1/executions/retry", json=body, headers=_key_header(idempotency_key)
        )
        return ExecutionPage.model_validate(response.json()).executions

    def events(
        self,
        execution_id: str,
        *,
        last_event_id: int | None = None,
        reconnect_s: float = 1.0,
        max_reconnects: int = 10,
    ) -> Iterator[Event]:
        """The execution's events: its history, then live ones, ending with the terminal status.

        A dropped connection is resumed after ``reconnect_s`` with ``Last-Event-ID``, so
        every event is delivered once; ``max_reconnects`` failures in a row raise.
        """
        path = f"/v1/executions/{execution_id}/events"
        resume = _Resume(last_event_id, reconnect_s, max_reconnects)
        timeout = httpx.Timeout(self.timeout_s, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                with self._http.stream("GET", path, headers=resume.headers(), timeout=timeout) as response:
                    if response.is_error:
                        response.read()
                        raise error_from_response(response)
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        message = decoder.feed(line)
                        if decoder.retry is not None:
                            resume.delay_s = decoder.retry / 1000
                        event = parse_event(message) if message else None
                        if event is None or not resume.seen(event):
                            continue
                        yield event
                        if event.terminal:
                            return
                # Closed without the terminal event: the server is restarting, or every
                # event was delivered before (a terminal execution resumed past its end).
                if self.get(execution_id).terminal:
                    return
                delay_s = resume.dropped(_StreamEnded("the server closed the stream"), self.url + path)
            except (httpx.TransportError, UnavailableError) as exc:
                delay_s = resume.dropped(exc, self.url + path)
            time.sleep(delay_s)

    # -- plugins, schedules, keys

    def plugins(self) -> list[PluginInfo]:
        """What the workers offer: plugins, commands and the JSON Schema of their params."""
        body = self._request("GET", "/v1/plugins").json()
        return [PluginInfo.model_validate(p) for p in body["plugins"]]

    def create_schedule(
        self,
        name: str,
        plugin: str,
        command: str,
        params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Schedule:
        """A periodic agent; give ``cron`` or ``interval_s`` (and optionally ``timezone``, ...)."""
        body = {"name": name, "plugin": plugin, "command": command, "params": dict(params or {})}
        response = self._request("POST", "/v1/schedules", json=body | _drop_none(fields))
        return Schedule.model_validate(response.json())

    def list_schedules(self, *, limit: int = 50, cursor: str | None = None) -> SchedulePage:
        response = self._request("GET", "/v1/schedules", params={"limit": limit, "cursor": cursor})
        return SchedulePage.model_validate(response.json())

    def get_schedule(self, schedule_id: str) -> Schedule:
        return Schedule.model_validate(self._request("GET", f"/v1/schedules/{schedule_id}").json())

    def update_schedule(self, schedule_id: str, **changes: Any) -> Schedule:
        """Change only the fields given."""
        response = self._request("PATCH", f"/v1/schedules/{schedule_id}", json=changes)
        return Schedule.model_validate(response.json())

    def delete_schedule(self, schedule_id: str) -> None:
        self._request("DELETE", f"/v1/schedules/{schedule_id}")

    def run_schedule(self, schedule_id: str) -> Execution:
        """Fire a schedule now."""
        return Execution.model_validate(self._request("POST", f"/v1/schedules/{schedule_id}/run").json())

    def create_key(self, name: str) -> ApiKeyCreated:
        """A new API key (admin key only); its secret is in this answer only."""
        return ApiKeyCreated.model_validate(self._request("POST", "/v1/keys", json={"name": name}).json())

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey.model_validate(k) for k in self._request("GET", "/v1/keys").json()["keys"]]

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"/v1/keys/{key_id}")

    # -- webhooks

    def create_webhook(
        self, url: str, events: Sequence[str] | None = None, *, description: str = ""
    ) -> WebhookCreated:
        """Subscribe ``url`` to ``events`` (default: all) of this key's executions; the
        answer's ``secret`` is shown this once."""
        response = self._request("POST", "/v1/webhooks", json=_webhook(url, events, description))
        return WebhookCreated.model_validate(response.json())

    def list_webhooks(self, *, limit: int = 50, cursor: str | None = None) -> WebhookPage:
        response = self._request("GET", "/v1/webhooks", params={"limit": limit, "cursor": cursor})
        return WebhookPage.model_validate(response.json())

    def get_webhook(self, webhook_id: str) -> Webhook:
        return Webhook.model_validate((self._request("GET", f"/v1/webhooks/{webhook_id}")).json())

    def update_webhook(self, webhook_id: str, **changes: Any) -> Webhook:
        """Change only the fields given: ``url``, ``events``, ``description``, ``enabled``."""
        response = self._request("PATCH", f"/v1/webhooks/{webhook_id}", json=changes)
        return Webhook.model_validate(response.json())

    def delete_webhook(self, webhook_id: str) -> None:
        self._request("DELETE", f"/v1/webhooks/{webhook_id}")

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """A new secret; the old one signs too for 24 h."""
        response = self._request("POST", f"/v1/webhooks/{webhook_id}/rotate-secret")
        return str(response.json()["key"])

    def default_webhook_secret(self) -> str:
        """The secret that signs this key's per-execution ``webhook`` deliveries."""
        return str((self._request("GET", "/v1/webhooks/default/secret")).json()["key"])

    def deliveries(
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
        response = self._request("GET", path, params={"limit": limit, "cursor": cursor})
        return DeliveryPage.model_validate(response.json())

    def retry_delivery(self, webhook_id: str, delivery_id: str) -> None:
        """Send a delivery again now."""
        self._request("POST", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")

    # -- concurrency limits

    def set_limit(self, concurrency_key: str, max_running: int) -> Limit:
        """Let at most ``max_running`` executions with ``concurrency_key`` run at once."""
        path = f"/v1/limits/{concurrency_key}"
        response = self._request("PUT", path, json={"max_running": max_running})
        return Limit.model_validate(response.json())

    def list_limits(self) -> list[Limit]:
        """This key's limits, with how many of their executions run and wait now."""
        response = self._request("GET", "/v1/limits")
        return [Limit.model_validate(item) for item in response.json()["limits"]]

    def delete_limit(self, concurrency_key: str) -> None:
        self._request("DELETE", f"/v1/limits/{concurrency_key}")

    def set_key_max_running(self, key_id: str, max_running: int | None) -> ApiKey:
        """Limit a key's executions running at once (admin key only); None: no limit."""
        response = self._request("PATCH", f"/v1/keys/{key_id}", json={"max_running": max_running})
        return ApiKey.model_validate(response.json())
