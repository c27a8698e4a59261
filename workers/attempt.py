"""One run of one execution in a worker process, what it reports, and how it is stopped.

Stopping a command (timeout, cancel, shutdown) is cooperative first (``ctx.cancelled``,
``ctx.sleep``), then forced: an async command's task is cancelled; a sync command gets
``Interrupted`` raised in its thread between two bytecodes. A thread stuck in C code
cannot be interrupted; the heartbeat finishes its row anyway after ``stop_grace_s``.
"""

import asyncio
import ctypes
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from agentq.core import store
from agentq.core.models import EventKind, Execution
from agentq.core.settings import settings
from agentq.plugin import Context, Interrupted

# Every progress update of an attempt goes to the event log up to this many; past it,
# only the newest one per heartbeat.
PROGRESS_EVENTS_KEPT = 1000

Key = tuple[str, int]  # an attempt: execution id and attempt number


class StopReason(enum.StrEnum):
    """Why the runtime stops a command before it ends (the command's ``ctx.stop_reason``)."""

    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # on request, or its row was taken over
    HAND_BACK = "shutdown"  # the worker stops before the run ends: another one runs it again


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    # Sets (or with None clears) an exception the thread raises at its next bytecode.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None
    )


class PendingEvents:
    """Progress and log lines of a run not in the event log yet; the heartbeat writes them,
    or the outcome does. The run's context reports into it, and it holds nothing of the
    run: a run that ended is freed by its last reference, not by a garbage collection."""

    def __init__(self, log_budget: int) -> None:
        self._events: list[store.NewEvent] = []
        self._lock = threading.Lock()
        self._progress_events = 0
        self._log_budget = log_budget

    def progress(self, progress: dict[str, Any]) -> None:
        event = store.NewEvent(EventKind.PROGRESS, dict(progress))
        with self._lock:
            coalesce = self._progress_events > PROGRESS_EVENTS_KEPT
            if coalesce and self._events and self._events[-1].kind is EventKind.PROGRESS:
                self._events[-1] = event
            else:
                self._events.append(event)
                self._progress_events += 1

    def log(self, level: int, message: str) -> None:
        with self._lock:
            if self._log_budget < 0:
                return
            self._log_budget -= 1
            if self._log_budget < 0:
                level = logging.WARNING
                message = f"(log limit reached: {settings.max_log_lines} lines per execution; later lines are not kept)"
            elif len(message) > settings.max_log_line_chars:
                message = message[: settings.max_log_line_chars - 1] + "…"
            data = {"level": logging.getLevelName(level).lower(), "message": message}
            self._events.append(store.NewEvent(EventKind.LOG, data))

    def take(self) -> list[store.NewEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def put_back(self, events: list[store.NewEvent]) -> None:
        """Events whose write failed: they go out with the next write, still first."""
        with self._lock:
            self._events[:0] = events


class Attempt:
    """One run of one execution in this process, and how to stop it."""

    def __init__(self, row: Execution) -> None:
        self.id = row.id
        self.number = row.attempts
        self.row = row
        self.pending = PendingEvents(settings.max_log_lines - row.log_lines)
        self.ctx = Context(row.id, row.attempts, on_progress=self.pending.progress, on_log=self.pending.log)
        self.started = time.monotonic()
        # When the command began, which its timeout counts from: a sync run waiting for a
        # thread sets it (None meanwhile) when it gets one.
        self.began: float | None = self.started
        self.stop_reason: StopReason | None = None
        self.recorded = False  # the outcome was written (possibly without the command)
        self.outcome: Future[str] = Future()  # the status recorded once the command ended
        self.timer: asyncio.TimerHandle | None = None  # its timeout, on the loop
        # Held while the pending events are written, so that they land in order and
        # before the outcome.
        self.flushing = threading.Lock()
        self._lock = threading.Lock()
        self._sync_thread: int | None = None  # set while a sync command runs
        self._task: asyncio.Task[Any] | None = None  # set while an async command runs

    def interrupt(self, reason: StopReason) -> None:
        """Stop the command: tell it through ctx, then force it."""
        with self._lock:
            if self.stop_reason is not None:
                return
            self.stop_reason = reason
            self.ctx.interrupt(reason)
            if self._sync_thread is not None:
                _raise_in_thread(self._sync_thread, Interrupted)
            if (task := self._task) is not None:
                task.get_loop().call_soon_threadsafe(task.cancel)

    def run_sync(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` on this thread, interruptible by ``interrupt``."""
        tid = threading.get_ident()
        try:
            try:
                with self._lock:
                    if self.stop_reason is not None:
                        raise Interrupted(self.stop_reason)
                    self._sync_thread = tid
                return fn()
            finally:
                self._leave_sync(tid)
        except Interrupted:
            self._leave_sync(tid)
            raise Interrupted(self.stop_reason or StopReason.CANCELLED) from None

    def _leave_sync(self, tid: int) -> None:
        # After this no new interrupt is aimed at the thread; clear one still pending.
        with self._lock:
            if self._sync_thread is not None:
                self._sync_thread = None
                _raise_in_thread(tid, None)

    async def run_async(self, call: Callable[[], Awaitable[Any]]) -> Any:
        with self._lock:
            if self.stop_reason is not None:
                raise Interrupted(self.stop_reason)
            self._task = asyncio.current_task()
        try:
            return await call()  # made here: a run stopped before it starts leaves no coroutine unawaited
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise
            raise Interrupted(self.stop_reason) from None
        finally:
            self._task = None
