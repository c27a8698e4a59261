"""What ``celery beat`` fires beyond its static entries (``core.queue.BEAT_SCHEDULE``): the
schedules in the database.

``celery -A workers.app beat`` runs ``DatabaseScheduler`` (the app's ``beat_scheduler``):
every tick it fires the database schedules that are due, so an edit made through the
API takes effect within a tick, without a restart. Only one beat is active: it holds a
Redis lock that it renews each tick; a standby takes the lock over when it expires.
Exactly-once per slot does not rest on the lock: each fire is a compare-and-set on
the schedule's ``next_run_at`` plus a unique key on (schedule, slot).

The active beat fires due schedules a set at a time (``core.firing``); those about to
fire it reads and plans ahead, and it sleeps until the earliest fire time, a tick at
most. Every beat serves its metrics on ``AGENTQ_BEAT_METRICS_PORT``
(``workers/beat_metrics.py``).
"""

import logging
from typing import Any

import redis
from celery.beat import Scheduler

from core import store
from core.firing import Firer
from core.leadership import Leadership
from core.models import utcnow
from core.settings import settings
from workers import beat_metrics

log = logging.getLogger("agentq.beat")


# However soon the next schedule fires, a beat sleeps this long at least between ticks.
MIN_WAIT_S = 0.01
# The active beat plans the schedules that fire within this, a set per tick, before they do.
LOOKAHEAD_S = 5.0


class DatabaseScheduler(Scheduler):  # type: ignore[misc]
    """Celery's scheduler for the static entries, plus the database schedules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leadership = Leadership(redis.Redis.from_url(settings.redis_url), settings.beat_lock_s)
        # Planned ahead: what fires within two ticks.
        self.firer = Firer(lookahead_s=LOOKAHEAD_S)
        if settings.beat_metrics_port:
            beat_metrics.serve(settings.beat_metrics_port, settings.beat_metrics_host)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        held = self.leadership.hold()
        beat_metrics.record_leader(self.leadership.name, held)
        if not held:
            self.firer.disarm()
        wait_s = float(super().tick(*args, **kwargs)) if held else settings.beat_tick_s  # static entries
        try:
            if held:
                # Half the lock's TTL at most, so that the lock is renewed in time.
                fires = self.firer.fire(budget_s=settings.beat_lock_s / 2)
                beat_metrics.record_fires(fires.executions, fires.skipped, fires.lags_s)
            now = utcnow()
            due, earliest = store.due_summary(now)
            beat_metrics.record_due(due)
            if (
                held
                and earliest is not None
                and earliest - now <= self.firer.lookahead
                and self.firer.arm(now)
            ):
                return MIN_WAIT_S  # more to plan: the next set right after
        except Exception:  # the database may be restarting; the next tick tries again
            log.exception("firing database schedules failed")
            self.firer.disarm()
            return min(wait_s, settings.beat_tick_s)
        if held and earliest is not None:
            # Wake as the next schedule fires, not up to a tick after it.
            wait_s = min(wait_s, max(MIN_WAIT_S, (earliest - utcnow()).total_seconds()))
        return min(wait_s, settings.beat_tick_s)

    def close(self) -> None:
        self.leadership.release()
        super().close()
