"""The heartbeat thread (``agentq-heartbeat``): it keeps the leases of every run the process
holds, whatever plugins do to the event loop.

Every ``heartbeat_s`` it renews the leases (each third of ``lease_s``), stops the runs
cancelled or taken over meanwhile, writes their progress and log lines, ends the runs the
loop cannot time out, and, once a drain's grace period is over, hands the runs back.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable

from agentq.core import notify, store
from agentq.core.settings import settings
from workers.attempt import Attempt, Key, StopReason
from workers.outcomes import did_not_stop
from workers.recorder import write

log = logging.getLogger("agentq.runtime")


class Heartbeat:
    """Beats for the runs in ``running`` (shared with the runtime, which adds and removes
    them); ``hand_back`` stops every run for another worker to run again."""

    def __init__(self, worker: str, running: dict[Key, Attempt], hand_back: Callable[[], None]) -> None:
        self._worker = worker
        self._running = running
        self._hand_back = hand_back
        self._hand_back_at: float | None = None  # set by hand_back_after
        self._last_renewal = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="agentq-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def hand_back_after(self, grace_s: float) -> None:
        """Hand the runs still going back once ``grace_s`` is over (a blocked loop does not
        hold this thread up)."""
        self._hand_back_at = time.monotonic() + grace_s

    def _serve(self) -> None:
        """A lease is renewed at least three times in its life."""
        period_s = min(settings.heartbeat_s, settings.lease_s / 3)
        while not self._stopping.wait(period_s):
            if self._hand_back_at is not None and time.monotonic() >= self._hand_back_at:
                self._hand_back_at = None
                self._hand_back()
            try:
                self._beat()
            except Exception:  # the database may be down; try again next beat
                log.exception("heartbeat failed")

    def _beat(self) -> None:
        runs = dict(self._running)
        if not runs:
            return
        now = time.monotonic()
        # Renew every third of a lease, and at once after a failed beat (a database outage).
        renew = now - self._last_renewal >= settings.lease_s / 3
        stopped = store.heartbeat(list(runs), self._worker, settings.lease_s if renew else None)
        if renew:
            self._last_renewal = now
        for key in stopped:
            runs[key].interrupt(StopReason.CANCELLED)
        record_events(runs.values())
        finish_stuck(runs.values())


def record_events(runs: Iterable[Attempt]) -> None:
    """Write the progress and log lines of running attempts, in one transaction."""
    # A run whose outcome is being written takes its events along itself.
    held = [run for run in runs if run.flushing.acquire(blocking=False)]
    try:
        taken = [(run, events) for run in held if (events := run.pending.take())]
        if not taken:
            return
        try:
            recorded = store.record_events({(run.id, run.number): events for run, events in taken})
        except Exception:
            for run, events in taken:
                run.pending.put_back(events)
            raise
    finally:
        for run in held:
            run.flushing.release()
    for execution_id in recorded:
        notify.publish(execution_id, "events")


def finish_stuck(runs: Iterable[Attempt]) -> None:
    """A timed-out command that does not stop (a sync one stuck in C code, or an async
    one on a loop that some plugin blocks): record the timeout without it."""
    now = time.monotonic()
    for run in runs:
        began = run.began  # None: a sync run still waiting for a thread, not timing yet
        if run.recorded or began is None or now - began <= run.row.timeout_s:
            continue
        if run.stop_reason is None:  # its timer is on the blocked loop
            run.interrupt(StopReason.TIMED_OUT)
        elif (
            run.stop_reason is StopReason.TIMED_OUT
            and now - began > run.row.timeout_s + settings.stop_grace_s
        ):
            write([(run, did_not_stop(run))])
