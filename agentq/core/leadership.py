"""The beat lock: which beat is the active one, held in Redis with a TTL.

The active beat renews it four times per TTL; a standby takes it over when it expires. Its value
names the beat holding it (host and process id), so ``agentq beat-health`` can say who
does, or that none does.
"""

import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import redis
from redis.exceptions import LockError

LOCK_KEY = "agentq:beat:leader"

log = logging.getLogger("agentq.beat")


def beat_name() -> str:
    """This process as the lock names it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """The lock, as one beat holds it."""

    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._lock = client.lock(LOCK_KEY, timeout=ttl_s, blocking=False)
        self.name = beat_name()
        # Unique per holder (a restarted beat may reuse a process id), and naming it.
        self._token = f"{self.name} {uuid.uuid4().hex[:12]}".encode()
        self.held = False
        # A beat that wakes for each set it fires renews the lock a few times per TTL only.
        self._renew_every_s = ttl_s / 4
        self._renewed = float("-inf")  # time.monotonic()

    def hold(self) -> bool:
        """True while this beat is the active one; tries to become it otherwise."""
        if self.held and time.monotonic() - self._renewed < self._renew_every_s:
            return True
        try:
            if self.held:
                self._lock.reacquire()
            else:
                self.held = bool(self._lock.acquire(token=self._token))
                if self.held:
                    log.info("this beat is now the active one")
            self._renewed = time.monotonic()
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


@dataclass(frozen=True)
class Holder:
    name: str  # host:pid
    expires_in_s: float


def holder(client: redis.Redis) -> Holder | None:
    """The beat holding the lock now, or None when no beat does."""
    with client.pipeline() as pipe:
        pipe.get(LOCK_KEY)
        pipe.pttl(LOCK_KEY)
        value, ttl_ms = pipe.execute()
    if value is None:
        return None
    name = value.decode(errors="replace").split(" ", 1)[0]
    return Holder(name, max(0, ttl_ms) / 1000)
