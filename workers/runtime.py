"""Runs executions inside a worker process: claim, run the plugin, record the outcome.

One event loop per process, on its own thread, hosts every async command, so a single
worker process holds many I/O-bound executions at once; sync commands run on the
Celery pool thread that delivered them. The loop also drives the timers (timeouts),
the heartbeat (lease renewal, cancellation checks) and progress flushing.

Stopping a command (timeout, cancel, shutdown) is cooperative first (``ctx.cancelled``,
``ctx.sleep``), then forced: an async command's task is cancelled; a sync command gets
``Interrupted`` raised in its thread between two bytecodes. A thread stuck in C code
cannot be interrupted; its row is finished anyway after ``stop_grace_s``.

Database writes ride out an outage: they are retried for ``db_retry_s``. A claim that
still fails hands the message back to the broker; an outcome that cannot be written is
left to the lease, so the reaper runs the execution again.
"""

import asyncio
import ctypes
import inspect
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from core import notify, queue, store
from core.errors import AgentqError, BrokerUnavailable, DatabaseUnavailable, PluginError, RetryLater
from core.models import EventKind, Execution, ExecutionStatus, utcnow
from core.settings import settings
from workers import metrics
from workers.plugins.base import Context, Interrupted
from workers.plugins.registry import Registry

S = ExecutionStatus
T = TypeVar("T")
log = logging.getLogger("agentq.runtime")
HAND_BACK = "shutdown"  # the interrupt reason when the worker stops before a run ends
# Every progress update of an attempt goes to the event log up to this many; past it,
# only the newest one per heartbeat.
PROGRESS_EVENTS_KEPT = 1000


@dataclass(frozen=True)
class Outcome:
    """What the task shell must do after an attempt: nothing, or retry after a delay."""

    status: ExecutionStatus | None  # None: the claim failed (duplicate delivery)
    retry_in_s: float | None = None


def backoff_s(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def with_db_retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a store function, retrying through a database outage for ``db_retry_s``."""
    deadline = time.monotonic() + settings.db_retry_s
    delay_s = 0.2
    while True:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay_s > deadline:
                raise DatabaseUnavailable(f"The database stayed unreachable: {exc}") from exc
            log.warning("database unreachable, retrying %s in %.1fs: %s", fn.__name__, delay_s, exc)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    # Sets (or with None clears) an exception the thread raises at its next bytecode.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None
    )


class Attempt:
    """One run of one execution in this process, and how to stop it."""

    def __init__(self, row: Execution, runtime: "Runtime") -> None:
        self.id = row.id
        self.number = row.attempts
        self.row = row
        self.ctx = Context(row.id, row.attempts, on_progress=self._progress, on_log=self._log)
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.recorded = False  # the outcome was written (possibly without the command)
        # Progress and log lines not in the event log yet; the heartbeat writes them, or
        # the outcome does. ``flushing`` is held while they are written, so that they
        # land in order and before the outcome.
        self.flushing = threading.Lock()
        self._events: list[store.NewEvent] = []
        self._events_lock = threading.Lock()
        self._progress_events = 0
        self._log_budget = settings.max_log_lines - row.log_lines
        self._runtime = runtime
        self._lock = threading.Lock()
        self._sync_thread: int | None = None  # set while a sync command runs
        self._task: asyncio.Task[Any] | None = None  # set while an async command runs

    def _progress(self, progress: dict[str, Any]) -> None:
        event = store.NewEvent(EventKind.PROGRESS, dict(progress))
        with self._events_lock:
            coalesce = self._progress_events > PROGRESS_EVENTS_KEPT
            if coalesce and self._events and self._events[-1].kind is EventKind.PROGRESS:
                self._events[-1] = event
            else:
                self._events.append(event)
                self._progress_events += 1

    def _log(self, level: int, message: str) -> None:
        with self._events_lock:
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

    def take_events(self) -> list[store.NewEvent]:
        with self._events_lock:
            events, self._events = self._events, []
        return events

    def put_back(self, events: list[store.NewEvent]) -> None:
        """Events whose write failed: they go out with the next write, still first."""
        with self._events_lock:
            self._events[:0] = events

    def interrupt(self, reason: str) -> None:
        """Stop the command: tell it through ctx, then force it."""
        with self._lock:
            if self.stop_reason is not None:
                return
            self.stop_reason = reason
            self.ctx.interrupt(reason)
            if self._sync_thread is not None:
                _raise_in_thread(self._sync_thread, Interrupted)
            if self._task is not None:
                self._runtime.loop.call_soon_threadsafe(self._task.cancel)

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
            raise Interrupted(self.stop_reason or "cancelled") from None

    def _leave_sync(self, tid: int) -> None:
        # After this no new interrupt is aimed at the thread; clear one still pending.
        with self._lock:
            if self._sync_thread is not None:
                self._sync_thread = None
                _raise_in_thread(tid, None)

    async def run_async(self, awaitable: Awaitable[Any]) -> Any:
        with self._lock:
            if self.stop_reason is not None:
                raise Interrupted(self.stop_reason)
            self._task = asyncio.current_task()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise
            raise Interrupted(self.stop_reason) from None
        finally:
            self._task = None


class Runtime:
    """Per-process execution engine; start once, then call ``execute`` from pool threads."""

    def __init__(self, registry: Registry, worker: str) -> None:
        self.registry = registry
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self._running: dict[str, Attempt] = {}
        self._thread = threading.Thread(target=self._serve, name="agentq-loop", daemon=True)
        self._last_renewal = 0.0

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._heartbeat(), self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # -- one attempt ---------------------------------------------------------------

    def execute(self, execution_id: str, attempt: int) -> Outcome:
        """Claim the execution for ``attempt`` (0-based) and run it to an outcome.

        Raises ``DatabaseUnavailable`` when the claim cannot reach the database.
        """
        row = with_db_retry(store.claim, execution_id, attempt, self.worker, settings.lease_s)
        if row is None:
            log.info("skip %s: already claimed or finished", execution_id)
            return Outcome(None)
        notify.publish(row.id, S.RUNNING)
        run = Attempt(row, self)
        self._running[row.id] = run
        timer = self._call_later(row.timeout_s, run.interrupt, "timed_out")
        try:
            return self._record(run, *self._run(run))
        finally:
            self.loop.call_soon_threadsafe(timer.cancel)
            self._running.pop(row.id, None)
            # Metrics and the "finished" log line (with the status) follow in task_postrun.
            metrics.attempt_finished(row.id, row.plugin, time.monotonic() - run.started)

    def _run(self, run: Attempt) -> tuple[ExecutionStatus, Any, BaseException | None]:
        row = run.row
        try:
            plugin, cmd = self.registry.command(row.plugin, row.command)
            params = cmd.params_model.model_validate(row.params)
            fn = plugin.bind(cmd)
            if cmd.is_async:
                value = self._await(run, fn(run.ctx, params))
            else:
                value = run.run_sync(lambda: fn(run.ctx, params))
                if inspect.isawaitable(value):
                    value = self._await(run, value)
            return S.SUCCEEDED, value, None
        except Interrupted:
            reason = run.stop_reason or "cancelled"
            if reason == HAND_BACK:
                return S.RETRYING, None, None
            return (S.TIMED_OUT if reason == "timed_out" else S.CANCELLED), None, None
        except Exception as exc:  # a plugin's failure is the execution's outcome
            return S.FAILED, None, exc

    def _await(self, run: Attempt, awaitable: Awaitable[Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(run.run_async(awaitable), self.loop)
        return future.result()

    def _record(
        self, run: Attempt, status: ExecutionStatus, value: Any, exc: BaseException | None
    ) -> Outcome:
        row = run.row
        progress = run.ctx.last_progress
        if status is S.SUCCEEDED:
            try:
                encoded = json.dumps(value)
            except (TypeError, ValueError) as err:
                return self._fail(run, "ResultNotJSON", f"The result is not JSON: {err}", progress)
            if len(encoded) > settings.max_result_bytes:
                return self._fail(
                    run,
                    "ResultTooLarge",
                    f"The result is {len(encoded)} bytes; the limit is {settings.max_result_bytes}.",
                    progress,
                )
            return self._finish(run, S.SUCCEEDED, result=value, progress=progress)
        if status is S.TIMED_OUT:
            return self._finish(
                run,
                S.TIMED_OUT,
                error={
                    "type": "timed_out",
                    "message": f"The execution exceeded timeout_s={row.timeout_s:g}.",
                },
                progress=progress,
            )
        if status is S.CANCELLED:
            # The row was changed by whoever cancelled it (or reclaimed it); nothing to write.
            return Outcome(S.CANCELLED)
        if status is S.RETRYING and exc is None:
            return self._hand_back(run, progress)
        assert exc is not None
        message = exc.detail if isinstance(exc, AgentqError) else str(exc) or type(exc).__name__
        if isinstance(exc, ValidationError):
            message = f"Invalid params: {exc}"
        if isinstance(exc, RetryLater) and row.attempts <= row.max_retries:
            delay = exc.delay_s if exc.delay_s is not None else backoff_s(row.attempts)
            error = {"type": type(exc).__name__, "message": message, "retry_in_s": round(delay, 3)}
            # Keep a lease past the retry's due time: if that message is lost, the reaper resends it.
            lease = utcnow() + timedelta(seconds=delay + settings.queued_lease_s)
            outcome = self._finish(run, S.RETRYING, error=error, progress=progress, lease_expires_at=lease)
            return Outcome(S.RETRYING, retry_in_s=delay) if outcome.status else outcome
        kind = type(exc).__name__ if isinstance(exc, PluginError | ValidationError) else "PluginCrashed"
        if not isinstance(exc, PluginError | ValidationError):
            log.exception("plugin %s/%s raised", row.plugin, row.command, exc_info=exc)
            message = f"{type(exc).__name__}: {message}"
        return self._fail(run, kind, message, progress)

    def _fail(self, run: Attempt, kind: str, message: str, progress: dict[str, Any] | None) -> Outcome:
        return self._finish(run, S.FAILED, error={"type": kind, "message": message}, progress=progress)

    def _hand_back(self, run: Attempt, progress: dict[str, Any] | None) -> Outcome:
        """The worker is stopping: give the run back so another worker starts it again."""
        error = {"type": "handed_back", "message": "The worker shut down during this run; it runs again."}
        lease = utcnow() + timedelta(seconds=settings.queued_lease_s)
        outcome = self._finish(run, S.RETRYING, error=error, progress=progress, lease_expires_at=lease)
        if outcome.status:
            try:
                queue.enqueue([run.row])  # its attempts are the retry count the claim expects
            except BrokerUnavailable as exc:
                log.warning("cannot hand %s back now, the reaper will: %s", run.id, exc)
        return outcome

    def _finish(self, run: Attempt, status: ExecutionStatus, **values: Any) -> Outcome:
        run.recorded = True
        try:
            with run.flushing:  # after a heartbeat writing this run's events, and with the rest
                events = run.take_events()
                written = with_db_retry(store.finish, run.id, run.number, status, events=events, **values)
        except DatabaseUnavailable as exc:
            log.error("outcome of %s not written, its lease will run it again: %s", run.id, exc)
            return Outcome(None)
        if written:
            notify.publish(run.id, status)
            return Outcome(status)
        return Outcome(None)

    def drain(self) -> None:
        """The worker is shutting down: runs still going after the grace period are handed back."""
        log.info(
            "draining: %d running, handing back after %gs", len(self._running), settings.shutdown_grace_s
        )
        self.loop.call_soon_threadsafe(self.loop.call_later, settings.shutdown_grace_s, self._hand_back_all)

    def _hand_back_all(self) -> None:
        for run in list(self._running.values()):
            run.interrupt(HAND_BACK)

    # -- timers and heartbeat ------------------------------------------------------

    def _call_later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        box: Future[asyncio.TimerHandle] = Future()
        self.loop.call_soon_threadsafe(lambda: box.set_result(self.loop.call_later(delay_s, fn, *args)))
        return box.result()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.heartbeat_s)
            try:
                await self.loop.run_in_executor(None, self._beat)
            except Exception:  # the database may be down; try again next beat
                log.exception("heartbeat failed")

    def _beat(self) -> None:
        runs = dict(self._running)
        if not runs:
            return
        self._record_events(runs)
        now = time.monotonic()
        # Renew every third of a lease, and at once after a failed beat (a database outage).
        renew = now - self._last_renewal >= settings.lease_s / 3
        stopped = store.heartbeat(
            {r.id: r.number for r in runs.values()}, settings.lease_s if renew else None
        )
        if renew:
            self._last_renewal = now
        for execution_id in stopped:
            runs[execution_id].interrupt("cancelled")
        self._finish_stuck(runs)

    def _record_events(self, runs: dict[str, Attempt]) -> None:
        """Write the progress and log lines of running attempts, in one transaction."""
        # A run whose outcome is being written takes its events along itself.
        held = [run for run in runs.values() if run.flushing.acquire(blocking=False)]
        try:
            taken = [(run, events) for run in held if (events := run.take_events())]
            if not taken:
                return
            try:
                recorded = store.record_events({(run.id, run.number): events for run, events in taken})
            except Exception:
                for run, events in taken:
                    run.put_back(events)
                raise
        finally:
            for run in held:
                run.flushing.release()
        for execution_id in recorded:
            notify.publish(execution_id, "events")

    def _finish_stuck(self, runs: dict[str, Attempt]) -> None:
        """A timed-out sync command stuck in C code: record the timeout without it."""
        for run in runs.values():
            if run.stop_reason != "timed_out" or run.recorded:
                continue
            if time.monotonic() - run.started > run.row.timeout_s + settings.stop_grace_s:
                self._finish(
                    run,
                    S.TIMED_OUT,
                    error={
                        "type": "timed_out",
                        "message": f"The execution exceeded timeout_s={run.row.timeout_s:g} and did not stop.",
                    },
                )
