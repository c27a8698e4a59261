"""Notices an event loop that stops turning, and what was on it (asyncio's slow-callback
warning, without debug mode's cost of timing every callback).

A ticker on the loop stamps the time every half ``threshold_s``; a thread of its own
checks the stamp as often. A stamp older than ``threshold_s`` is a stall: while it lasts
the thread samples what the loop is running (``culprit``); once the loop ticks again it
reports the stall once, its length (how late the tick ran) shared among the culprits by
their samples.
"""

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)
log = logging.getLogger("agentq.watchdog")


class LoopWatchdog(Generic[C]):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold_s: float,
        culprit: Callable[[], C],
        report: Callable[[float, dict[C, float]], None],
    ) -> None:
        self._loop = loop
        self._threshold_s = threshold_s
        self._interval_s = threshold_s / 2
        self._culprit = culprit
        self._report = report
        self._stamp = time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="agentq-watchdog", daemon=True)

    def start(self) -> None:
        self._stamp = time.monotonic()
        self._loop.call_soon_threadsafe(self._tick)
        self._thread.start()

    def stop(self) -> None:
        """Before the loop stops, or its stopping would look like a stall."""
        self._stopping.set()

    def _tick(self) -> None:  # on the loop
        self._stamp = time.monotonic()
        self._loop.call_later(self._interval_s, self._tick)

    def _watch(self) -> None:
        since: float | None = None  # the last stamp before the stall under way
        seen: Counter[C] = Counter()
        while not self._stopping.wait(self._interval_s):
            stamp = self._stamp
            if since is not None and stamp != since:
                # The loop ticked again: the tick was late by as long as the loop was held.
                self._end(stamp - since - self._interval_s, seen)
                since, seen = None, Counter()
            if time.monotonic() - stamp > self._threshold_s:
                since = stamp
                seen[self._culprit()] += 1

    def _end(self, blocked_s: float, seen: Counter[C]) -> None:
        samples = seen.total()
        try:
            self._report(blocked_s, {c: blocked_s * n / samples for c, n in seen.items()})
        except Exception:  # a report that fails must not stop the watch
            log.exception("reporting a stall of the event loop failed")
