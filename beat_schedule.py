"""What ``celery beat`` fires beyond its static entries (``core.queue.BEAT_SCHEDULE``): the
schedules in the database.

``celery -A workers.app beat`` runs ``DatabaseScheduler`` (the app's ``beat_scheduler``):
every tick it fires the database schedules that are due, so an edit made through the
API takes effect within a tick, without a restart. Only one beat is active: it holds a
Redis lock that it renews each tick; a standby takes the lock over when it expires.
Exactly-once per slot does not rest on the lock: each fire is a compare-and-set on
the schedule's ``next_run_at`` plus a unique key on (schedule, slot).
"""

import contextlib
import logging
import uuid
from typing import Any

import redis
from celery.beat import Scheduler
from redis.exceptions import LockError

from core.models import utcnow
from core.schedules import fire_due
from core.settings import settings

log = logging.getLogger("agentq.beat")


class Leadership:
    """A Redis lock with a TTL: held by the active beat, renewed every tick."""

    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._lock = client.lock("agentq:beat:leader", timeout=ttl_s, blocking=False)
        self._token = uuid.uuid4().hex.encode()
        self.held = False

    def hold(self) -> bool:
        """True while this beat is the active one; tries to become it otherwise."""
        try:
            if self.held:
                self._lock.reacquire()
            else:
                self.held = bool(self._lock.acquire(token=self._token))
                if self.held:
                    log.info("this beat is now the active one")
        except LockError:
            log.warning("lost the beat lock; standing by")
            self.held = False
        except redis.RedisError as exc:
            log.warning("cannot reach Redis for the beat lock (%s); standing by", exc)
            self.held = False
        return self.held

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(LockError, redis.RedisError):
                self._lock.release()
            self.held = False


class DatabaseScheduler(Scheduler):  # type: ignore[misc]
    """Celery's scheduler for the static entries, plus the database schedules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leadership = Leadership(redis.Redis.from_url(settings.redis_url), settings.beat_lock_s)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.leadership.hold():
            return settings.beat_tick_s
        wait_s = super().tick(*args, **kwargs)  # static entries
        try:
            fire_due(utcnow())
        except Exception:  # the database may be restarting; the next tick tries again
            log.exception("firing database schedules failed")
        return min(float(wait_s), settings.beat_tick_s)

    def close(self) -> None:
        self.leadership.release()
        super().close()
