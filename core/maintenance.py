"""Housekeeping that beat triggers: the reaper and the retention purge."""

import logging
from datetime import datetime, timedelta

from core import notify, queue, store
from core.models import ExecutionStatus
from core.settings import settings

S = ExecutionStatus
log = logging.getLogger("agentq.maintenance")


def reap(now: datetime) -> dict[str, int]:
    """Act on live executions whose lease ran out.

    Queued or retrying: never published, or its message was lost; publish it again
    (a duplicate is harmless: the claim lets one delivery run). Running: its worker
    died; publish it again so another worker reclaims it, or fail it when the lost
    run used its last attempt, so a run that kills its worker every time ends.
    """
    republish, failed = [], 0
    for row in store.expired_leases(now):
        if row.status is S.RUNNING and row.attempts > row.max_retries:
            message = f"The worker running attempt {row.attempts} was lost (its lease expired); no attempts are left."
            if store.fail_lost(row.id, row.attempts, message):
                notify.publish(row.id, S.FAILED)
                failed += 1
        else:
            republish.append(row)
    if republish:
        if queue.publish(republish):
            return {"republished": 0, "failed": failed}
        unclaimed = [r.id for r in republish if r.status is not S.RUNNING]
        if unclaimed:
            store.lease_unclaimed(unclaimed, now + timedelta(seconds=settings.queued_lease_s))
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
