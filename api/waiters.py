"""Wakes long-polls when an execution changes, from one Redis subscription per process.

Each waiter is an ``asyncio.Event`` keyed by execution id; the database is read only
when a waiter wakes, so a thousand idle long-polls cost nothing.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import redis.asyncio as aioredis

from agentq.core.notify import CHANNEL

log = logging.getLogger("agentq.api.waiters")


class Waiters:
    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self, redis_url: str) -> None:
        if redis_url:
            self._task = asyncio.create_task(self._listen(redis_url))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``execution_id`` changes, while the block runs."""
        event = asyncio.Event()
        self._events[execution_id].add(event)
        try:
            yield event
        finally:
            waiting = self._events.get(execution_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[execution_id]

    def _wake(self, execution_id: str) -> None:
        for event in self._events.get(execution_id, ()):
            event.set()

    def _wake_all(self) -> None:
        # After a reconnect, messages may have been missed: let every waiter re-read.
        for execution_id in list(self._events):
            self._wake(execution_id)

    async def _listen(self, redis_url: str) -> None:
        while True:
            try:
                client = aioredis.Redis.from_url(redis_url)
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._wake_all()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            for line in message["data"].split(b"\n"):
                                self._wake(line.split(b" ", 1)[0].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: retry, waiters time out meanwhile
                log.warning("execution notifications lost (%s); reconnecting", exc)
                await asyncio.sleep(1)


waiters = Waiters()
