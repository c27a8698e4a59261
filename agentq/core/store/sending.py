"""Sending webhook deliveries, as the store sees it: a sender claims deliveries (each at
the attempt its message names) with all it needs to send them, then records what the
receivers answered and what follows: delivered, due again on the retry schedule, or
failed; an endpoint that answered 410, or failed for days, disabled."""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, insert, select, update
from sqlalchemy.orm import Session

from agentq.core import webhook_secrets
from agentq.core.db import session_scope
from agentq.core.models import (
    Execution,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookKeySecret,
    utcnow,
)
from agentq.core.public import ExecutionPublic
from agentq.core.settings import settings
from agentq.core.store.deliveries import ATTEMPTS, D
from agentq.core.store.webhooks import key_secret

# A sender may take this long past its timeout to record an attempt before the delivery
# is taken as lost with it and sent again.
SEND_MARGIN_S = 5.0


@dataclass(frozen=True)
class Claimed:
    """A delivery a sender took for its next attempt, with all it needs to send it."""

    id: str
    attempt: int  # this attempt's number, from 1
    event: str
    created_at: datetime
    endpoint_id: str | None
    url: str | None  # None: nowhere to send (its endpoint is gone or disabled)
    secrets: tuple[str, ...]  # encrypted; each signs
    # The execution's public columns (an ``Execution``, or a row of ``PUBLIC``); None: gone.
    execution: Execution | Row[Any] | None


# What a claim reads of an execution: the columns its payload shows (``ExecutionPublic``),
# read as plain rows, not ORM objects: a sender reads one per delivery.
_SHOWN = set(ExecutionPublic.model_fields) | {"webhook_url"}
PUBLIC = [column for column in cast(Table, Execution.__table__).c if column.name in _SHOWN]
_DELIVERY = [
    WebhookDelivery.id,
    WebhookDelivery.owner,
    WebhookDelivery.execution_id,
    WebhookDelivery.endpoint_id,
    WebhookDelivery.event,
    WebhookDelivery.attempts,
    WebhookDelivery.created_at,
]


def claim_deliveries(messages: Sequence[tuple[str, int]], now: datetime) -> list[Claimed]:
    """Take pending deliveries at exactly the attempts each message names, pushing their
    due time past the send's timeout (a lease: a sender that dies loses none)."""
    wanted = dict(messages)
    lease = now + timedelta(seconds=settings.webhook_timeout_s + SEND_MARGIN_S)
    with session_scope() as session:
        rows = [
            row
            for row in session.execute(
                select(*_DELIVERY)
                .where(WebhookDelivery.id.in_(list(wanted)), WebhookDelivery.status == D.PENDING)
                .order_by(WebhookDelivery.id)
                .with_for_update()
            )
            if wanted[row.id] == row.attempts
        ]
        if not rows:
            return []
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([r.id for r in rows]))
            .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease)
            .execution_options(synchronize_session=False)
        )
        endpoint_ids = {r.endpoint_id for r in rows if r.endpoint_id}
        endpoints = (
            {
                e.id: e
                for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids)))
            }
            if endpoint_ids
            else {}
        )
        executions = {
            e.id: e
            for e in session.execute(select(*PUBLIC).where(Execution.id.in_({r.execution_id for r in rows})))
        }
        owners = {r.owner for r in rows if r.endpoint_id is None}
        secrets_query = select(WebhookKeySecret.owner, WebhookKeySecret.secret).where(
            WebhookKeySecret.owner.in_(owners)
        )
        key_secrets = dict(session.execute(secrets_query).all()) if owners else {}
    for owner in owners - set(key_secrets):  # its first webhook: its secret is made now
        key_secrets[owner] = key_secret(owner, webhook_secrets.encrypt(webhook_secrets.new_secret()))
    return [_claimed(cast(Row[Any], row), endpoints, executions, key_secrets, now) for row in rows]


def _claimed(
    row: Row[Any],
    endpoints: dict[str, WebhookEndpoint],
    executions: dict[str, Row[Any]],
    key_secrets: dict[str, str],
    now: datetime,
) -> Claimed:
    execution = executions.get(row.execution_id)
    url: str | None
    if row.endpoint_id is None:
        url = execution.webhook_url if execution else None
        secrets: tuple[str, ...] = (key_secrets[row.owner],) if row.owner in key_secrets else ()
    else:
        endpoint = endpoints.get(row.endpoint_id)
        url = endpoint.url if endpoint and endpoint.enabled else None
        secrets = ()
        if endpoint is not None:
            secrets = (endpoint.secret,)
            until = endpoint.previous_secret_until
            if endpoint.previous_secret and until is not None and until > now:
                secrets = (endpoint.previous_secret, endpoint.secret)
    if not secrets:
        url = None
    return Claimed(
        row.id, row.attempts + 1, row.event, row.created_at, row.endpoint_id, url, secrets, execution
    )


@dataclass(frozen=True)
class Attempted:
    """What the receiver answered one attempt: ``status_code``, or ``error`` for no answer."""

    delivery_id: str
    attempt: int
    endpoint_id: str | None
    at: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    gave_up: str | None = None  # sent nowhere, for this reason: the delivery fails

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def next_attempt_at(attempt: int, at: datetime) -> datetime | None:
    """When the attempt after ``attempt`` (from 1) is due, with ±10% jitter; None: no more."""
    delays = settings.webhook_delays
    if attempt >= len(delays):
        return None
    return at + timedelta(seconds=delays[attempt] * random.uniform(0.9, 1.1))


@dataclass
class Recorded:
    delivered: list[tuple[str, datetime]] = field(default_factory=list)  # (id, status change)
    failed: int = 0  # out of attempts, or sent nowhere
    retrying: int = 0
    disabled: list[str] = field(default_factory=list)  # endpoints disabled by these answers


def record_attempts(attempts: Sequence[Attempted]) -> Recorded:
    """Record the attempts and what follows from each: delivered, due again, or failed;
    an endpoint that answered 410, or failed every delivery for
    ``AGENTQ_WEBHOOK_DISABLE_AFTER_S``, disabled."""
    now = utcnow()
    result = Recorded()
    with session_scope() as session:
        created = dict(
            session.execute(
                select(WebhookDelivery.id, WebhookDelivery.created_at).where(
                    WebhookDelivery.id.in_([a.delivery_id for a in attempts])
                )
            ).all()
        )
        attempt_rows = []
        delivered = []
        for a in sorted(attempts, key=lambda a: a.delivery_id):
            due = None if a.ok or a.gave_up or a.status_code == 410 else next_attempt_at(a.attempt, now)
            attempt_rows.append(_attempt_row(a, due))
            if a.ok:
                delivered.append(a.delivery_id)
                result.delivered.append((a.delivery_id, created.get(a.delivery_id, now)))
                continue
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == a.delivery_id, WebhookDelivery.attempts == a.attempt)
                .values(status=D.PENDING if due else D.FAILED, next_attempt_at=due)
                .execution_options(synchronize_session=False)
            )
            if due:
                result.retrying += 1
            else:
                result.failed += 1
        if delivered:  # the usual case: one statement for the batch
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(delivered), WebhookDelivery.status == D.PENDING)
                .values(status=D.SUCCEEDED, next_attempt_at=None, delivered_at=now)
                .execution_options(synchronize_session=False)
            )
        if attempt_rows:
            session.connection().execute(insert(ATTEMPTS), attempt_rows)
        result.disabled.extend(_judge_endpoints(session, attempts, now))
    return result


def _attempt_row(a: Attempted, due: datetime | None) -> dict[str, Any]:
    return {
        "delivery_id": a.delivery_id,
        "attempt": a.attempt,
        "at": a.at,
        "status_code": a.status_code,
        "error": (a.error or a.gave_up or "")[:255] or None,
        "duration_ms": a.duration_ms,
        "response": a.response,
        "next_attempt_at": due,
    }


def _judge_endpoints(session: Session, attempts: Sequence[Attempted], now: datetime) -> list[str]:
    """Update the endpoints' failure streaks; returns those disabled now."""
    outcome: dict[str, Attempted] = {}
    for a in attempts:
        # One success among a batch's answers ends the streak.
        if (
            a.endpoint_id
            and a.gave_up is None
            and (a.endpoint_id not in outcome or a.ok or a.status_code == 410)
        ):
            outcome[a.endpoint_id] = a
    if not outcome:
        return []
    disabled = []
    endpoints = session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id.in_(sorted(outcome)), WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
        .with_for_update()
    )
    for endpoint in endpoints:
        a = outcome[endpoint.id]
        if a.ok:
            endpoint.failing_since = None
            continue
        endpoint.failing_since = endpoint.failing_since or a.at
        if a.status_code == 410:
            reason = "the endpoint answered 410 Gone"
        elif now - endpoint.failing_since >= timedelta(seconds=settings.webhook_disable_after_s):
            reason = f"every delivery failed since {endpoint.failing_since.isoformat()}"
        else:
            continue
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        endpoint.updated_at = now
        disabled.append(endpoint.id)
    return disabled
