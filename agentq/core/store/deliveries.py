"""The webhook outbox: deliveries written with the status change that causes them, and
the due ones found again by the sweeper (senders claim and record them: ``sending``).

A delivery is written (``write_outbox``) in the transaction of its status change, so
whatever dies after the commit (a worker, Redis, MySQL) loses none. Once that
transaction commits, its deliveries are handed to the publisher (``on_written``, set by
``agentq.core.queue``) for a sender to take at once; the sweeper publishes any that stay
due. A message names each delivery with its ``attempts`` when published: the claim takes
it only at that count, so a duplicate message sends nothing twice.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, event, func, insert, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from agentq.core.db import autocommit_scope, session_scope
from agentq.core.models import (
    DeliveryStatus,
    ExecutionStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvents,
    utcnow,
)
from agentq.core.store.webhooks import PUBLISHED_LEASE_S, subscribed

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


# -- the sweeper and the views ---------------------------------------------------------


def due_deliveries(now: datetime, limit: int = 1000) -> list[tuple[str, int]]:
    """Pending deliveries due by ``now`` (retries, and those whose message or sender was
    lost), leased for ``PUBLISHED_LEASE_S`` while their message is on its way."""
    with session_scope() as session:
        due = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(WebhookDelivery.next_attempt_at <= now, WebhookDelivery.status == D.PENDING)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            # Rows a claim or a record holds are theirs: never wait on them (no deadlock).
            .with_for_update(skip_locked=True)
        ).all()
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
