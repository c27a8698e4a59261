"""Sending webhook deliveries: on an event loop of their own, never on the threads or the
loop that run plugins.

A ``agentq.deliver_webhooks`` message is taken on a Celery pool thread: the claim (one
transaction) takes its deliveries, and the requests are handed to this module's loop,
so the pool thread is free again at once. A receiver that hangs holds one connection
until ``AGENTQ_WEBHOOK_TIMEOUT_S``, never a worker slot. Each batch's answers are
recorded in one transaction. A process that dies meanwhile loses nothing: the claimed
deliveries' lease runs out and the sweeper publishes them again.

Requests go out on connections kept per origin (``workers/webhook_http.py``), each
opened through the plugins' outbound guard (``workers/plugins/outbound.py``): private
addresses refused (unless allowed), the checked address pinned against DNS rebinding,
no redirect followed.
"""

import asyncio
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook

from agentq.core import webhook_secrets
from agentq.core.db import deadlocked
from agentq.core.errors import AgentqError
from agentq.core.models import utcnow
from agentq.core.public import ExecutionPublic
from agentq.core.settings import settings
from agentq.core.store import sending
from agentq.core.store.sending import Attempted, Claimed
from workers import webhook_metrics
from workers.webhook_http import RESPONSE_KEPT, Pool

log = logging.getLogger("agentq.webhooks")
RECORD_TRIES = 3


def payload(claimed: Claimed) -> bytes:
    """The body: ``{type, timestamp, data}``, ``data`` the execution as the API shows it;
    a result over ``AGENTQ_WEBHOOK_MAX_RESULT_BYTES`` is left out (``result_truncated``)."""
    assert claimed.execution is not None
    data = ExecutionPublic.model_validate(claimed.execution).model_dump(mode="json")
    if data["result"] is not None:
        size = len(json.dumps(data["result"], separators=(",", ":")))
        if size > settings.webhook_max_result_bytes:
            data["result"] = None
            data["result_truncated"] = True
    at = claimed.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = {"type": claimed.event, "timestamp": at, "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@lru_cache(maxsize=1024)
def _signer(encrypted: str) -> Webhook:
    """The signer of a stored secret: decrypted once per process, not per request."""
    return Webhook(webhook_secrets.decrypt(encrypted))


def signed_headers(claimed: Claimed, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation, signed with the old and the new secret."""
    msg_id = f"msg_{claimed.id}"
    signatures = [_signer(s).sign(msg_id, now, body) for s in claimed.secrets]
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


class Sender:
    """This process's webhook loop, on a thread of its own (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: tuple[int, asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.pool = Pool()  # the connections, used on the sender's loop only

    def _running(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]:
        with self._lock:
            if self._loop is None or self._loop[0] != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="agentq-webhooks", daemon=True).start()
                self._loop = (os.getpid(), loop, asyncio.Semaphore(settings.webhook_concurrency))
                self.pool = Pool()  # a forked child opens its own
            return self._loop[1], self._loop[2]

    def submit(self, claimed: list[Claimed]) -> None:
        """Send the claimed deliveries and record their answers; returns at once."""
        loop, limit = self._running()
        asyncio.run_coroutine_threadsafe(self.send_all(claimed, limit), loop)

    async def send_all(self, claimed: list[Claimed], limit: asyncio.Semaphore) -> None:
        """Send ``claimed`` on the running loop, then record the answers in one transaction."""
        attempts = await asyncio.gather(*(self._send(c, limit) for c in claimed))
        for tries in range(RECORD_TRIES):
            try:
                recorded = await asyncio.to_thread(sending.record_attempts, attempts)
                break
            except Exception as exc:
                if deadlocked(exc) and tries + 1 < RECORD_TRIES:
                    continue
                # Their lease runs out and the sweeper sends them again.
                log.exception("cannot record %d webhook attempts", len(attempts))
                return
        webhook_metrics.recorded(recorded)
        for endpoint_id in recorded.disabled:
            log.warning("webhook endpoint %s disabled", endpoint_id)

    async def _send(self, claimed: Claimed, limit: asyncio.Semaphore) -> Attempted:
        now = utcnow()
        if claimed.execution is None or claimed.url is None:
            why = "its execution is gone" if claimed.execution is None else "its endpoint is disabled or gone"
            return Attempted(claimed.id, claimed.attempt, claimed.endpoint_id, now, 0.0, gave_up=why)
        async with limit:
            now = utcnow()
            started = time.perf_counter()
            try:
                body = payload(claimed)
                headers = signed_headers(claimed, body, now)
                answer = await self.pool.post(claimed.url, headers, body, settings.webhook_timeout_s)
            except AgentqError as exc:  # refused, unreachable, timed out
                took = (time.perf_counter() - started) * 1000
                return Attempted(
                    claimed.id, claimed.attempt, claimed.endpoint_id, now, took, error=exc.detail
                )
            took = (time.perf_counter() - started) * 1000
            response = answer.body[:RESPONSE_KEPT].decode("utf-8", errors="replace")
            return Attempted(
                claimed.id,
                claimed.attempt,
                claimed.endpoint_id,
                now,
                took,
                status_code=answer.status,
                response=response,
            )


sender = Sender()
