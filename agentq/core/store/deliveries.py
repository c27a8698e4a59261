"""The webhook outbox: deliveries written with the status change that causes them, taken
by senders, their attempts recorded, and the due ones found again by the sweeper.

A delivery is written (``write_outbox``) in the transaction of its status change, so
whatever dies after the commit (a worker, Redis, MySQL) loses none. Once that
transaction commits, its deliveries are handed to the publisher (``on_written``, set by
``agentq.core.queue``) for a sender to take at once; the sweeper publishes any that stay
due. A message names each delivery with its ``attempts`` when published: the claim takes
it only at that count, so a duplicate message sends nothing twice.
"""

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, event, func, insert, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from agentq.core import webhook_secrets
from agentq.core.db import autocommit_scope, session_scope
from agentq.core.models import (
    DeliveryStatus,
    Execution,
    ExecutionStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvents,
    WebhookKeySecret,
    utcnow,
)
from agentq.core.settings import settings
from agentq.core.store.webhooks import PUBLISHED_LEASE_S, key_secret, subscribed

_PUBLISHED_LEASE = timedelta(seconds=PUBLISHED_LEASE_S)

S = ExecutionStatus
D = DeliveryStatus
DELIVERIES = cast(Table, WebhookDelivery.__table__)
ATTEMPTS = cast(Table, WebhookAttempt.__table__)
STARTED = "execution.started"
# The event of each status that sends one; retrying and queued send none.
EVENTS = {
    S.RUNNING: STARTED,
    S.SUCCEEDED: "execution.succeeded",
    S.FAILED: "execution.failed",
    S.TIMED_OUT: "execution.timed_out",
    S.CANCELLED: "execution.cancelled",
}
_WRITTEN = "agentq.webhook_deliveries"  # session.info: (id, attempts) written in this transaction
# How long past its timeout a sender may take to record an attempt before the delivery
# is taken as lost with it and sent again.
SEND_MARGIN_S = 5.0


@dataclass(frozen=True)
class Change:
    """A status change of an execution, with what decides whether it sends webhooks."""

    execution_id: str
    owner: str
    webhook_events: int
    status: ExecutionStatus


def write_outbox(session: Session, changes: Iterable[Change], at: datetime) -> None:
    """Insert the deliveries that ``changes`` cause, in ``session``'s transaction.

    The cheap check comes first: a row with no webhook of its own, whose owner has no
    subscription, costs a dictionary lookup and writes nothing.
    """
    by_owner = subscribed()
    rows: list[dict[str, Any]] = []
    for change in changes:
        kind = EVENTS.get(change.status)
        if kind is None:
            continue
        flag = WebhookEvents.STARTED if kind == STARTED else WebhookEvents.COMPLETED
        own = bool(change.webhook_events & flag)
        subscriptions = by_owner.get(change.owner, ())
        if not own and not subscriptions:
            continue
        targets: list[str | None] = [None] if own else []
        targets += [s.endpoint_id for s in subscriptions if kind in s.events]
        rows += [_new_delivery(change, kind, target, at) for target in targets]
    if rows:
        session.connection().execute(insert(DELIVERIES), rows)
        session.info.setdefault(_WRITTEN, []).extend((row["id"], 0) for row in rows)


def _new_delivery(change: Change, kind: str, endpoint_id: str | None, at: datetime) -> dict[str, Any]:
    return {
        "id": str(ULID()),
        "owner": change.owner,
        "execution_id": change.execution_id,
        "endpoint_id": endpoint_id,
        "event": kind,
        "status": D.PENDING,
        "attempts": 0,
        # Published as its transaction commits: the sweeper's only if still untaken by then.
        "next_attempt_at": at + _PUBLISHED_LEASE,
        "created_at": at,
        "delivered_at": None,
    }


Publisher = Callable[[list[tuple[str, int]]], None]
_publisher: list[Publisher] = []


def on_written(publisher: Publisher) -> None:
    """Have ``publisher`` called with the deliveries of each transaction once it commits."""
    _publisher[:] = [publisher]


@event.listens_for(Session, "after_commit")
def _publish_written(session: Session) -> None:
    written = session.info.pop(_WRITTEN, None)
    if written and _publisher:
        _publisher[0](written)


@event.listens_for(Session, "after_rollback")
def _forget_written(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


# -- sending ---------------------------------------------------------------------------


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
    execution: Execution | None


def claim_deliveries(messages: Sequence[tuple[str, int]], now: datetime) -> list[Claimed]:
    """Take pending deliveries at exactly the attempts each message names, pushing their
    due time past the send's timeout (a lease: a sender that dies loses none)."""
    wanted = dict(messages)
    lease = now + timedelta(seconds=settings.webhook_timeout_s + SEND_MARGIN_S)
    with session_scope() as session:
        rows = [
            row
            for row in session.scalars(
                select(WebhookDelivery)
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
        endpoints = {
            e.id: e
            for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids)))
        }
        executions = {
            e.id: e
            for e in session.scalars(
                select(Execution).where(Execution.id.in_({r.execution_id for r in rows}))
            )
        }
        owners = {r.owner for r in rows if r.endpoint_id is None}
        key_secrets = dict(
            session.execute(
                select(WebhookKeySecret.owner, WebhookKeySecret.secret).where(
                    WebhookKeySecret.owner.in_(owners)
                )
            )
            .tuples()
            .all()
        )
    for owner in owners - set(key_secrets):  # its first webhook: its secret is made now
        key_secrets[owner] = key_secret(owner, webhook_secrets.encrypt(webhook_secrets.new_secret()))
    return [_claimed(row, endpoints, executions, key_secrets, now) for row in rows]


def _claimed(
    row: WebhookDelivery,
    endpoints: dict[str, WebhookEndpoint],
    executions: dict[str, Execution],
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
            )
            .tuples()
            .all()
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


# -- the sweeper and the views ---------------------------------------------------------


def due_deliveries(now: datetime, limit: int = 1000) -> list[tuple[str, int]]:
    """Pending deliveries due by ``now`` (retries, and those whose message or sender was
    lost), leased for ``PUBLISHED_LEASE_S`` while their message is on its way."""
    with session_scope() as session:
        due = (
            session.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts)
                .where(WebhookDelivery.next_attempt_at <= now, WebhookDelivery.status == D.PENDING)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                # Rows a claim or a record holds are theirs: never wait on them (no deadlock).
                .with_for_update(skip_locked=True)
            )
            .tuples()
            .all()
        )
        if due:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_([i for i, _ in due]))
                .values(next_attempt_at=now + timedelta(seconds=PUBLISHED_LEASE_S))
                .execution_options(synchronize_session=False)
            )
    return [(delivery_id, attempts) for delivery_id, attempts in due]


def mark_due(deliveries: Sequence[tuple[str, int]]) -> None:
    """Leave deliveries whose message could not be published to the sweeper's next pass."""
    with session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([i for i, _ in deliveries]), WebhookDelivery.status == D.PENDING)
            .values(next_attempt_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def count_pending() -> int:
    with autocommit_scope() as session:
        return int(session.scalar(select(func.count()).where(WebhookDelivery.status == D.PENDING)) or 0)
