"""Housekeeping that beat triggers: the reaper and the retention purge."""

import logging
from datetime import datetime, timedelta

from agentq.core import notify, queue, store
from agentq.core.models import ExecutionStatus
from agentq.core.settings import settings

S = ExecutionStatus
log = logging.getLogger("agentq.maintenance")


def reap(now: datetime) -> dict[str, int]:
    """Act on live executions whose lease ran out.

    First the passes that admit held executions: delayed ones now due, and any held one a
    slot is free for (a safety net: a finish admits into the slot it frees). Then, queued
    or retrying: never published, or its message was lost; publish it again
    (a duplicate is harmless: the claim lets one delivery run). Running: its worker died
    (or lost the database for a lease); no worker holds it, so it leaves ``running``:
    ``retrying``, published for its next attempt, or ``failed`` when the lost run was its
    last attempt, so a run that kills its worker every time ends.
    """
    republish, failed = [], 0
    admitted = store.release_due(now) + store.admit_held()  # held ones the passes missed
    for row in store.expired_leases(now):
        if row.status is S.RUNNING:
            lost = f"The worker running attempt {row.attempts} was lost (its lease expired)"
            if row.attempts > row.max_retries:
                status, message = S.FAILED, f"{lost}; no attempts are left."
            else:
                status, message = S.RETRYING, f"{lost}; it runs again."
            ended, took_slot = store.end_lost(row.id, row.attempts, status, message, admitted=row.admitted)
            if not ended:
                continue  # renewed or ended meanwhile
            admitted += took_slot
            notify.publish(row.id, status)
            if status is S.FAILED:
                failed += 1
                continue
        republish.append(row)
    queue.publish(admitted)  # fresh leases: left to a later pass if the broker is down
    if republish:
        if queue.publish(republish):
            return {"republished": 0, "failed": failed}
        store.lease_unclaimed([r.id for r in republish], now + timedelta(seconds=settings.queued_lease_s))
        log.info("reaper republished %d executions", len(republish))
    return {"republished": len(republish), "failed": failed}


def purge(now: datetime, max_batches: int = 50) -> int:
    """Delete finished executions older than the retention, a batch at a time."""
    before = now - timedelta(days=settings.retention_days)
    deleted = 0
    for _ in range(max_batches):
        batch = store.purge_finished(before)
        deleted += batch
        if batch < 1000:
            break
    if deleted:
        log.info("purged %d executions finished before %s", deleted, before.isoformat())
    return deleted
