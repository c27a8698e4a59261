"""What ``celery beat`` fires beyond its static entries (``agentq.core.queue.BEAT_SCHEDULE``): the
schedules in the database.

``celery -A workers.app beat`` runs ``DatabaseScheduler`` (the app's ``beat_scheduler``):
every tick it fires the database schedules that are due, so an edit made through the
API takes effect within a tick, without a restart. Only one beat is active: it holds a
Redis lock that it renews four times per TTL; a standby takes the lock over when it expires.
Exactly-once per slot does not rest on the lock: each fire is a compare-and-set on
the schedule's ``next_run_at`` plus a unique key on (schedule, slot).

The active beat fires due schedules a set at a time (``agentq.core.firing``); those about to
fire it reads and plans ahead, and it sleeps until the earliest fire time, a tick at
most. Every beat serves its metrics on ``AGENTQ_BEAT_METRICS_PORT``
(``agentq/core/beat_metrics.py``).
"""

import contextlib
import logging
import time
from datetime import datetime
from typing import Any

import redis
from celery.beat import Scheduler

from agentq.core import beat_metrics, queue, store
from agentq.core.firing import Firer
from agentq.core.leadership import Leadership
from agentq.core.models import utcnow
from agentq.core.settings import settings

log = logging.getLogger("agentq.beat")


# However soon the next schedule fires, a beat sleeps this long at least between ticks.
MIN_WAIT_S = 0.01
# The active beat plans the schedules that fire within this, a set per tick, before they do:
# long enough for a loaded machine to plan 10,000 due in the same minute before it comes.
LOOKAHEAD_S = 10.0
# ... but not when a set it planned fires within this: planning one more would delay it.
ARM_GUARD_S = 0.5


class DatabaseScheduler(Scheduler):  # type: ignore[misc]
    """Celery's scheduler for the static entries, plus the database schedules.

    Every tick (``AGENTQ_BEAT_TICK_S``) at most, the active beat sweeps: fires whatever
    schedule is due, counts those left due, and plans ahead what fires within
    ``LOOKAHEAD_S`` (a set per tick until it has caught up). Between sweeps it wakes only
    to fire what it planned, each set at its time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leadership = Leadership(redis.Redis.from_url(settings.redis_url), settings.beat_lock_s)
        self.firer = Firer(lookahead_s=LOOKAHEAD_S)
        self._next_sweep = 0.0  # time.monotonic()
        self._arming = False  # more to plan ahead
        if settings.beat_metrics_port:
            beat_metrics.serve(settings.beat_metrics_port, settings.beat_metrics_host)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        held = self.leadership.hold()
        beat_metrics.record_leader(self.leadership.name, held)
        if not held:
            self.firer.disarm()
            self._arming = False
            with contextlib.suppress(Exception):  # a standby's count is for its metrics only
                self._count_due(utcnow())
            return settings.beat_tick_s
        wait_s = float(super().tick(*args, **kwargs))  # the static entries
        sweep = time.monotonic() >= self._next_sweep
        try:
            # Half the lock's TTL at most, so that the lock is renewed in time.
            fires = self.firer.fire(budget_s=settings.beat_lock_s / 2, sweep=sweep)
            beat_metrics.record_fires(fires.executions, fires.skipped, fires.lags_s)
            if sweep:
                # Delayed executions whose run_at came start within a tick of it.
                queue.publish(store.release_due())
                self._next_sweep = 0.0 if fires.left_due else time.monotonic() + settings.beat_tick_s
                now = utcnow()
                earliest = self._count_due(now)
                self._arming = earliest is not None and earliest - now <= self.firer.lookahead
            firing_soon = self._firing_within(ARM_GUARD_S)
            if self._arming and not firing_soon:
                self._arming = self.firer.arm(utcnow())
        except Exception:  # the database may be restarting; the next tick tries again
            log.exception("firing database schedules failed")
            self.firer.disarm()
            self._arming = False
            return min(wait_s, settings.beat_tick_s)
        if (self._arming and not firing_soon) or fires.left_due:
            return MIN_WAIT_S
        until = [wait_s, self._next_sweep - time.monotonic()]
        if (due_at := self.firer.next_due) is not None:  # wake as it fires, not up to a tick after
            until.append((due_at - utcnow()).total_seconds())
        return max(MIN_WAIT_S, min(until))

    def _firing_within(self, seconds: float) -> bool:
        due_at = self.firer.next_due
        return due_at is not None and (due_at - utcnow()).total_seconds() <= seconds

    def _count_due(self, now: datetime) -> datetime | None:
        """Record how many schedules are due; the earliest fire time of all."""
        due, earliest = store.due_summary(now)
        beat_metrics.record_due(due)
        return earliest

    def close(self) -> None:
        self.firer.close()
        self.leadership.release()
        super().close()
