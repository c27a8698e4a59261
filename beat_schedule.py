"""What ``celery beat`` fires beyond its static entries (``core.queue.BEAT_SCHEDULE``): the
schedules in the database.

``celery -A workers.app beat`` runs ``DatabaseScheduler`` (the app's ``beat_scheduler``):
every tick it fires the database schedules that are due, so an edit made through the
API takes effect within a tick, without a restart. Only one beat is active: it holds a
Redis lock that it renews each tick; a standby takes the lock over when it expires.
Exactly-once per slot does not rest on the lock: each fire is a compare-and-set on
the schedule's ``next_run_at`` plus a unique key on (schedule, slot).

The active beat fires due schedules a set at a time (``core.schedules.fire_due``), and
sleeps until the earliest fire time, a tick at most. Every beat serves its metrics on
``AGENTQ_BEAT_METRICS_PORT`` (``workers/beat_metrics.py``).
"""

import logging
from typing import Any

import redis
from celery.beat import Scheduler

from core import store
from core.leadership import Leadership
from core.models import utcnow
from core.schedules import fire_due
from core.settings import settings
from workers import beat_metrics

log = logging.getLogger("agentq.beat")


# However soon the next schedule fires, a beat sleeps this long at least between ticks.
MIN_WAIT_S = 0.01


class DatabaseScheduler(Scheduler):  # type: ignore[misc]
    """Celery's scheduler for the static entries, plus the database schedules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leadership = Leadership(redis.Redis.from_url(settings.redis_url), settings.beat_lock_s)
        if settings.beat_metrics_port:
            beat_metrics.serve(settings.beat_metrics_port, settings.beat_metrics_host)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        held = self.leadership.hold()
        beat_metrics.record_leader(self.leadership.name, held)
        wait_s = float(super().tick(*args, **kwargs)) if held else settings.beat_tick_s  # static entries
        try:
            if held:
                # Half the lock's TTL at most, so that the lock is renewed in time.
                fires = fire_due(budget_s=settings.beat_lock_s / 2)
                beat_metrics.record_fires(fires.executions, fires.skipped, fires.lags_s)
            now = utcnow()
            due, earliest = store.due_summary(now)
            beat_metrics.record_due(due)
        except Exception:  # the database may be restarting; the next tick tries again
            log.exception("firing database schedules failed")
            return min(wait_s, settings.beat_tick_s)
        if held and earliest is not None:
            # Wake as the next schedule fires, not up to a tick after it.
            wait_s = min(wait_s, max(MIN_WAIT_S, (earliest - now).total_seconds()))
        return min(wait_s, settings.beat_tick_s)

    def close(self) -> None:
        self.leadership.release()
        super().close()
