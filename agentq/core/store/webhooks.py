"""Webhook subscriptions (endpoints) and each API key's default secret.

The lifecycle asks ``subscribed()`` on every status change that could send an event:
enabled endpoints by owner, read at most every ``AGENTQ_WEBHOOK_CACHE_S`` per process,
so a key without subscriptions costs a dictionary lookup.
"""

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from agentq.core.db import autocommit_scope, session_scope
from agentq.core.errors import WebhookNotFound
from agentq.core.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookKeySecret,
    utcnow,
)
from agentq.core.settings import settings
from agentq.core.store._rows import page

# A message is consumed well within this, or the sweeper publishes its delivery again.
PUBLISHED_LEASE_S = 60.0


@dataclass(frozen=True)
class Subscription:
    endpoint_id: str
    events: frozenset[str]


_cache: tuple[float, dict[str, list[Subscription]]] = (0.0, {})
_cache_lock = threading.Lock()


def subscribed() -> dict[str, list[Subscription]]:
    """Enabled endpoints by owner, as of a few seconds ago at most."""
    global _cache
    expires, by_owner = _cache
    if time.monotonic() < expires:
        return by_owner
    # Not waited for: on the API's event loop the holder may be another request, which
    # resumes only once this one yields. Meanwhile the endpoints read last serve.
    held = _cache_lock.acquire(blocking=False)
    if not held and expires:
        return by_owner
    try:
        if time.monotonic() < _cache[0]:
            return _cache[1]
        query = select(WebhookEndpoint.id, WebhookEndpoint.owner, WebhookEndpoint.events).where(
            WebhookEndpoint.enabled.is_(True)
        )
        fresh: dict[str, list[Subscription]] = {}
        with autocommit_scope() as session:
            for endpoint_id, owner, events in session.execute(query):
                fresh.setdefault(owner, []).append(Subscription(endpoint_id, frozenset(events)))
        _cache = (time.monotonic() + settings.webhook_cache_s, fresh)
        return fresh
    finally:
        if held:
            _cache_lock.release()


def forget_subscriptions() -> None:
    """This process reads the endpoints again on the next status change."""
    global _cache
    _cache = (0.0, _cache[1])


def create_endpoint(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    with session_scope() as session:
        session.add(endpoint)
    forget_subscriptions()
    return endpoint


def get_endpoint(endpoint_id: str, owner: str) -> WebhookEndpoint:
    """An endpoint of ``owner``'s; another key's is as unknown as a wrong id."""
    with autocommit_scope() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.owner != owner:
        raise WebhookNotFound(f"webhook endpoint with id {endpoint_id!r}")
    return row


def list_endpoints(
    owner: str, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[WebhookEndpoint], str | None]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.owner == owner)
        .order_by(WebhookEndpoint.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(WebhookEndpoint.id < cursor)
    with session_scope() as session:
        return page(session, query, limit)


def update_endpoint(endpoint_id: str, owner: str, changes: dict[str, Any]) -> WebhookEndpoint:
    """Change an endpoint; enabling it again clears why it was disabled."""
    with session_scope() as session:
        row = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if row is None or row.owner != owner:
            raise WebhookNotFound(f"webhook endpoint with id {endpoint_id!r}")
        for name, value in changes.items():
            setattr(row, name, value)
        if changes.get("enabled"):
            row.disabled_reason = None
            row.failing_since = None
        row.updated_at = utcnow()
    forget_subscriptions()
    return row


def delete_endpoint(endpoint_id: str, owner: str) -> None:
    with session_scope() as session:
        deleted = session.execute(
            delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.owner == owner)
        )
        if deleted.rowcount != 1:  # type: ignore[attr-defined]
            raise WebhookNotFound(f"webhook endpoint with id {endpoint_id!r}")
    forget_subscriptions()


def key_secret(owner: str, new: str) -> str:
    """The (encrypted) default secret of ``owner``; ``new`` becomes it if it has none yet."""
    query = select(WebhookKeySecret.secret).where(WebhookKeySecret.owner == owner)
    with autocommit_scope() as session:
        found = session.scalar(query)
        if found is not None:
            return found
        try:
            session.execute(insert(WebhookKeySecret).values(owner=owner, secret=new, created_at=utcnow()))
        except IntegrityError:  # another request made it first
            return str(session.scalar(query))
    return new


# -- deliveries, as clients see them -----------------------------------------------------


def list_deliveries(
    owner: str,
    *,
    execution_id: str | None = None,
    endpoint_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], str | None]:
    """Deliveries of an execution or an endpoint of ``owner``'s, newest first, each with its
    attempts in order; and the cursor of the next page."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.owner == owner)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if execution_id is not None:
        query = query.where(WebhookDelivery.execution_id == execution_id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if cursor:
        query = query.where(WebhookDelivery.id < cursor)
    with session_scope() as session:
        rows, next_cursor = page(session, query, limit)
        attempts: dict[str, list[WebhookAttempt]] = {row.id: [] for row in rows}
        if rows:
            found = session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
            )
            for attempt in found:
                attempts[attempt.delivery_id].append(attempt)
    return [(row, attempts[row.id]) for row in rows], next_cursor


def retry_delivery(owner: str, endpoint_id: str, delivery_id: str) -> tuple[str, int]:
    """Make a delivery due again now (whatever became of it); returns what to publish."""
    with session_scope() as session:
        row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if row is None or row.owner != owner or row.endpoint_id != endpoint_id:
            raise WebhookNotFound(f"delivery with id {delivery_id!r} of endpoint {endpoint_id!r}")
        row.status = DeliveryStatus.PENDING
        row.next_attempt_at = utcnow() + timedelta(seconds=PUBLISHED_LEASE_S)
        return row.id, row.attempts
