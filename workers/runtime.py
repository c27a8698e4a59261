"""Runs executions inside a worker process: claim, run the plugin, record the outcome.

A message carries one or many executions (a chunk of a batch). They run side by side:
every async command on the process's one event loop, so a single worker process holds
many I/O-bound executions at once; sync commands on a thread pool (a lone one on the
Celery pool thread that delivered it). The message is acked once all of its outcomes are
written. Besides the Celery pool's threads, each thread has one role:

- ``agentq-loop`` runs the event loop: async commands and their timeouts.
- ``agentq-sync-*`` run the sync commands of many-execution messages.
- ``agentq-claimer`` claims executions, those of messages that arrived together in one
  transaction; ``agentq-recorder`` writes outcomes, those that ended together in one.
- ``agentq-heartbeat`` keeps the leases of every run the process holds, whatever plugins
  do to the loop: it renews them, stops runs cancelled or taken over, writes progress and
  log lines, ends runs the loop cannot time out, and hands runs back at shutdown.
- ``agentq-watchdog`` notices a plugin blocking the loop, and names it
  (``workers/watchdog.py``).

Stopping a command (timeout, cancel, shutdown) is cooperative first (``ctx.cancelled``,
``ctx.sleep``), then forced: an async command's task is cancelled; a sync command gets
``Interrupted`` raised in its thread between two bytecodes. A thread stuck in C code
cannot be interrupted; its row is finished anyway after ``stop_grace_s``.

Database writes ride out an outage: they are retried for ``db_retry_s``. A claim that
still fails hands the message back to the broker; an outcome that cannot be written is
left to the lease, so the reaper runs the execution again.

An execution runs at most ``max_retries + 1`` times: a retry, a hand-back or a lost
worker that would take it past that fails it instead.
"""

import asyncio
import ctypes
import inspect
import json
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from core import notify, queue, store
from core.errors import AgentqError, DatabaseUnavailable, PluginError, RetryLater
from core.grouping import GroupingThread
from core.models import EventKind, Execution, ExecutionStatus, utcnow
from core.settings import settings
from workers import metrics
from workers.plugins.base import Context, Interrupted
from workers.plugins.registry import Registry
from workers.watchdog import LoopWatchdog

S = ExecutionStatus
T = TypeVar("T")
log = logging.getLogger("agentq.runtime")
HAND_BACK = "shutdown"  # the interrupt reason when the worker stops before a run ends
# Every progress update of an attempt goes to the event log up to this many; past it,
# only the newest one per heartbeat.
PROGRESS_EVENTS_KEPT = 1000
# Most outcomes written in one transaction, and most executions claimed in one.
RECORD_GROUP_MAX = 500
CLAIM_GROUP_MAX = 1000


Ran = tuple[ExecutionStatus, Any, BaseException | None]  # how a command ended: status, value, error
Key = tuple[str, int]  # an attempt: execution id and attempt number


class ShuttingDown(Exception):
    """The worker is handing its runs back: a message is not claimed, it goes back to the broker."""


@dataclass(frozen=True)
class Recording:
    """What to write for an ended attempt, and what to do once it is written."""

    finish: store.Finish | None  # None: nothing to write (the canceller wrote the row)
    retry_in_s: float | None = None  # publish its next attempt after this delay
    hand_back: bool = False  # publish its next attempt now


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
            # An outage, or a deadlock with another writer of the same rows: both pass.
            log.warning("database error, retrying %s in %.1fs: %s", fn.__name__, delay_s, exc)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


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

    def __init__(self, row: Execution, runtime: "Runtime") -> None:
        self.id = row.id
        self.number = row.attempts
        self.row = row
        self.pending = PendingEvents(settings.max_log_lines - row.log_lines)
        self.ctx = Context(row.id, row.attempts, on_progress=self.pending.progress, on_log=self.pending.log)
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.recorded = False  # the outcome was written (possibly without the command)
        self.outcome: Future[str] = Future()  # the status recorded once the command ended
        self.timer: asyncio.TimerHandle | None = None  # its timeout, on the loop
        # Held while the pending events are written, so that they land in order and
        # before the outcome.
        self.flushing = threading.Lock()
        self._runtime = runtime
        self._lock = threading.Lock()
        self._sync_thread: int | None = None  # set while a sync command runs
        self._task: asyncio.Task[Any] | None = None  # set while an async command runs

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


class Runtime:
    """Per-process execution engine; start once, then call ``execute`` from pool threads."""

    def __init__(self, registry: Registry, worker: str) -> None:
        self.registry = registry
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        # Every run the process holds, from its claim until its outcome is written.
        self._running: dict[Key, Attempt] = {}
        # Sync commands of a many-execution message run here, side by side.
        self._sync_threads = ThreadPoolExecutor(settings.worker_concurrency, thread_name_prefix="agentq-sync")
        self._thread = threading.Thread(target=self._serve, name="agentq-loop", daemon=True)
        # Claims of messages that arrive together share a transaction, and so do the
        # outcomes of attempts that end together.
        self._claimer = GroupingThread(
            "agentq-claimer", self._claim, CLAIM_GROUP_MAX, weight=lambda message: len(message[0])
        )
        self._recorder = GroupingThread("agentq-recorder", self._record, RECORD_GROUP_MAX)
        self._last_renewal = 0.0
        # The loop's tasks and their runs (a task only the loop knows of may be collected).
        self._tasks: dict[asyncio.Task[None], Attempt] = {}
        self._stopping = threading.Event()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat, name="agentq-heartbeat", daemon=True
        )
        self._watchdog = (
            LoopWatchdog(self.loop, settings.loop_blocked_s, self._on_loop, _report_blocked)
            if settings.loop_blocked_s > 0
            else None
        )
        self._hand_back_at: float | None = None  # set by drain
        self._handing_back = False

    def start(self) -> None:
        self._thread.start()
        self._heartbeat_thread.start()
        if self._watchdog is not None:
            self._watchdog.start()
        # Start the sync threads now: started on demand, in the middle of a burst, each
        # start waits for the GIL.
        started = threading.Barrier(settings.worker_concurrency + 1)
        for _ in range(settings.worker_concurrency):
            self._sync_threads.submit(started.wait)
        started.wait()

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # -- one message ---------------------------------------------------------------

    def execute(self, execution_ids: list[str], attempt: int) -> dict[str, str]:
        """Claim the executions for ``attempt`` (0-based), run them side by side and record
        their outcomes as they end, those ending together in one transaction. Returns each
        execution's recorded status (``skipped``: another delivery had it).

        Raises ``DatabaseUnavailable`` when the claim cannot reach the database, and
        ``ShuttingDown`` once the worker hands its runs back.
        """
        if self._handing_back:
            raise ShuttingDown("The worker is shutting down; another one runs these executions.")
        rows = self._claimer.submit((execution_ids, attempt)).result()
        statuses = dict.fromkeys(execution_ids, "skipped")
        if len(rows) < len(statuses):
            skipped = statuses.keys() - {row.id for row in rows}
            log.info("skip %s: already claimed or finished", " ".join(sorted(skipped)))
        runs = [Attempt(row, self) for row in rows if row.status is S.RUNNING]
        if len(runs) < len(rows):  # out of attempts: the claim failed them
            statuses.update((row.id, row.status.value) for row in rows if row.status is not S.RUNNING)
        if not runs:
            return statuses
        self._running.update(((run.id, run.number), run) for run in runs)
        if self._handing_back:  # a hand-back began meanwhile: its flag is set before it looks
            for run in runs:
                run.interrupt(HAND_BACK)
        commands = [(run, command) for run in runs if (command := self._command(run)) is not None]
        # One hop to the loop for the whole message: the timers, and the async commands.
        on_loop = [(run, call) for run, (call, is_async) in commands if is_async]
        self.loop.call_soon_threadsafe(self._start_on_loop, runs, on_loop)
        try:
            sync = [(run, call) for run, (call, is_async) in commands if not is_async]
            if len(runs) == 1 and sync:  # alone in its message: on this thread, which is free
                self._run_sync(*sync[0])
            else:
                for run, call in sync:
                    self._sync_threads.submit(self._run_sync, run, call)
            statuses.update((run.id, run.outcome.result()) for run in runs)
        finally:
            self.loop.call_soon_threadsafe(_cancel_timers, runs)
            for run in runs:
                self._running.pop((run.id, run.number), None)
        return statuses

    def _claim(self, messages: list[tuple[list[str], int]]) -> list[list[Execution]]:
        """The claimer thread: claim the executions of messages (ids, attempt) together."""
        claimed = with_db_retry(store.claim, messages, self.worker, settings.lease_s)
        notify.publish_many((row.id, row.status) for rows in claimed for row in rows)
        for row in (row for rows in claimed for row in rows if row.status is not S.RUNNING):
            log.warning(
                "%s failed: attempt %d would exceed max_retries=%d", row.id, row.attempts + 1, row.max_retries
            )
        return claimed

    def _command(self, run: Attempt) -> tuple[Callable[[], Any], bool] | None:
        """The call that runs the command, and whether it is async; None if the execution
        failed already (unknown command, invalid params)."""
        try:
            plugin, cmd = self.registry.command(run.row.plugin, run.row.command)
            params = cmd.params_model.model_validate(run.row.params)
            bound = plugin.bind(cmd)
        except Exception as exc:
            self._ran(run, self._ended(run, exc))
            return None
        return partial(bound, run.ctx, params), cmd.is_async

    def _start_on_loop(self, runs: list[Attempt], calls: list[tuple[Attempt, Callable[[], Any]]]) -> None:
        for run in runs:
            run.timer = self.loop.call_later(run.row.timeout_s, run.interrupt, "timed_out")
        for run, call in calls:
            self._create_task(run, call)

    def _ran(self, run: Attempt, ran: Ran) -> None:
        self._recorder.submit((run, ran), answer=run.outcome)

    def _run_sync(self, run: Attempt, call: Callable[[], Any]) -> None:
        """Run a sync command on this thread; an awaitable it returns goes on to the loop,
        so that the thread is free again."""
        try:
            value = run.run_sync(call)
        except BaseException as exc:
            return self._ran(run, self._ended(run, exc))
        if inspect.isawaitable(value):
            self.loop.call_soon_threadsafe(self._create_task, run, lambda: value, value)
        else:
            self._ran(run, (S.SUCCEEDED, value, None))

    def _create_task(
        self, run: Attempt, call: Callable[[], Awaitable[Any]], made: Awaitable[Any] | None = None
    ) -> None:
        task = self.loop.create_task(self._run_async(run, call, made))
        self._tasks[task] = run
        task.add_done_callback(self._tasks.pop)

    async def _run_async(
        self, run: Attempt, call: Callable[[], Awaitable[Any]], made: Awaitable[Any] | None
    ) -> None:
        try:
            ran: Ran = S.SUCCEEDED, await run.run_async(call), None
        except BaseException as exc:
            ran = self._ended(run, exc)
        if inspect.iscoroutine(made):
            made.close()  # a no-op if it ran; else no "never awaited" warning
        self._ran(run, ran)

    @staticmethod
    def _ended(run: Attempt, exc: BaseException) -> Ran:
        if not isinstance(exc, Interrupted):
            return S.FAILED, None, exc  # a plugin's failure (even SystemExit) is the execution's outcome
        reason = run.stop_reason or "cancelled"
        if reason == HAND_BACK:
            return S.RETRYING, None, None
        return (S.TIMED_OUT if reason == "timed_out" else S.CANCELLED), None, None

    def _record(self, ended: list[tuple[Attempt, Ran]]) -> list[str]:
        """The recorder thread: write the outcomes of attempts that ended, then publish what
        runs again; returns each one's recorded status."""
        recordings = [(run, self._recording(run, *ran)) for run, ran in ended]
        statuses = self._write(recordings)
        for run, _ in ended:  # its lease is no longer this process's to keep
            self._running.pop((run.id, run.number), None)
        again = [(run, r) for run, r in recordings if statuses[run.id] == S.RETRYING]
        handed_back = [run.row for run, r in again if r.hand_back]
        queue.publish(handed_back)  # their attempts are the retry count the claim expects
        for run, r in again:
            if r.retry_in_s is not None:
                queue.publish([run.row], countdown=r.retry_in_s)
        metrics.finished(
            [
                metrics.Finished(run.id, run.row.plugin, statuses[run.id], time.monotonic() - run.started)
                for run, _ in ended
            ]
        )
        return [statuses[run.id] for run, _ in ended]

    def _recording(
        self, run: Attempt, status: ExecutionStatus, value: Any, exc: BaseException | None
    ) -> Recording:
        row = run.row
        done = partial(store.Finish, run.id, run.number, progress=run.ctx.last_progress)
        if status is S.SUCCEEDED:
            try:
                size = len(json.dumps(value))
            except (TypeError, ValueError) as err:
                return Recording(
                    done(S.FAILED, error=failure("ResultNotJSON", f"The result is not JSON: {err}"))
                )
            if size > settings.max_result_bytes:
                message = f"The result is {size} bytes; the limit is {settings.max_result_bytes}."
                return Recording(done(S.FAILED, error=failure("ResultTooLarge", message)))
            return Recording(done(S.SUCCEEDED, result=value))
        if status is S.TIMED_OUT:
            message = f"The execution exceeded timeout_s={row.timeout_s:g}."
            return Recording(done(S.TIMED_OUT, error=failure("timed_out", message)))
        if status is S.CANCELLED:
            return Recording(None)  # the row was changed by whoever cancelled (or reclaimed) it
        if status is S.RETRYING and exc is None:
            # The worker is stopping: give the run back so another worker starts it again,
            # unless that would be one run more than max_retries allows.
            if row.attempts > row.max_retries:
                message = (
                    f"The worker shut down during attempt {row.attempts}, the last one "
                    f"max_retries={row.max_retries} allows; it does not run again."
                )
                return Recording(done(S.FAILED, error=failure("handed_back", message)))
            error = failure("handed_back", "The worker shut down during this run; it runs again.")
            lease = utcnow() + timedelta(seconds=settings.queued_lease_s)
            return Recording(done(S.RETRYING, error=error, lease_expires_at=lease), hand_back=True)
        assert exc is not None
        message = exc.detail if isinstance(exc, AgentqError) else str(exc) or type(exc).__name__
        if isinstance(exc, ValidationError):
            message = f"Invalid params: {exc}"
        if isinstance(exc, RetryLater) and row.attempts <= row.max_retries:
            delay = exc.delay_s if exc.delay_s is not None else backoff_s(row.attempts)
            error = {**failure(type(exc).__name__, message), "retry_in_s": round(delay, 3)}
            # Keep a lease past the retry's due time: if that message is lost, the reaper resends it.
            lease = utcnow() + timedelta(seconds=delay + settings.queued_lease_s)
            return Recording(done(S.RETRYING, error=error, lease_expires_at=lease), retry_in_s=delay)
        kind = type(exc).__name__ if isinstance(exc, PluginError | ValidationError) else "PluginCrashed"
        if not isinstance(exc, PluginError | ValidationError):
            log.exception("plugin %s/%s raised", row.plugin, row.command, exc_info=exc)
            message = f"{type(exc).__name__}: {message}"
        return Recording(done(S.FAILED, error=failure(kind, message)))

    def _write(self, recordings: list[tuple[Attempt, Recording]]) -> dict[str, str]:
        """Write outcomes in one transaction with the events their attempts still hold;
        returns each attempt's status as recorded (``superseded``: its row had moved on)."""
        statuses = {run.id: S.CANCELLED.value for run, r in recordings if r.finish is None}
        writes = [(run, r.finish) for run, r in recordings if r.finish is not None]
        if not writes:
            return statuses
        for run, _ in writes:
            run.recorded = True
            run.flushing.acquire()  # after a heartbeat writing this run's events, and with the rest
        try:
            finishes = [
                replace(finish, events=events) if (events := run.pending.take()) else finish
                for run, finish in writes
            ]
            try:
                written = with_db_retry(store.finish, finishes)
            except DatabaseUnavailable as exc:
                log.error("%d outcomes not written, their leases will run them again: %s", len(writes), exc)
                return statuses | {run.id: "unrecorded" for run, _ in writes}
        finally:
            for run, _ in writes:
                run.flushing.release()
        notify.publish_many((f.execution_id, f.status) for f in finishes if f.execution_id in written)
        return statuses | {
            f.execution_id: f.status.value if f.execution_id in written else "superseded" for f in finishes
        }

    def drain(self) -> None:
        """The worker is shutting down: runs still going after the grace period are handed
        back (by the heartbeat thread, which a blocked loop does not hold up)."""
        log.info(
            "draining: %d running, handing back after %gs", len(self._running), settings.shutdown_grace_s
        )
        self._hand_back_at = time.monotonic() + settings.shutdown_grace_s

    def _hand_back_all(self) -> None:
        # The flag first: a message claimed after this snapshot sees it (``execute``).
        self._handing_back = True
        for run in list(self._running.values()):
            run.interrupt(HAND_BACK)

    # -- heartbeat and watchdog ------------------------------------------------------

    def _heartbeat(self) -> None:
        """The heartbeat thread. A lease is renewed at least three times in its life."""
        period_s = min(settings.heartbeat_s, settings.lease_s / 3)
        while not self._stopping.wait(period_s):
            if self._hand_back_at is not None and time.monotonic() >= self._hand_back_at:
                self._hand_back_at = None
                self._hand_back_all()
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
        stopped = store.heartbeat(list(runs), self.worker, settings.lease_s if renew else None)
        if renew:
            self._last_renewal = now
        for key in stopped:
            runs[key].interrupt("cancelled")
        self._record_events(runs)
        self._finish_stuck(runs)

    def _record_events(self, runs: dict[Key, Attempt]) -> None:
        """Write the progress and log lines of running attempts, in one transaction."""
        # A run whose outcome is being written takes its events along itself.
        held = [run for run in runs.values() if run.flushing.acquire(blocking=False)]
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

    def _finish_stuck(self, runs: dict[Key, Attempt]) -> None:
        """A timed-out command that does not stop (a sync one stuck in C code, or an async
        one on a loop that some plugin blocks): record the timeout without it."""
        now = time.monotonic()
        for run in runs.values():
            if run.recorded or now - run.started <= run.row.timeout_s:
                continue
            if run.stop_reason is None:  # its timer is on the blocked loop
                run.interrupt("timed_out")
            elif (
                run.stop_reason == "timed_out"
                and now - run.started > run.row.timeout_s + settings.stop_grace_s
            ):
                message = f"The execution exceeded timeout_s={run.row.timeout_s:g} and did not stop."
                finish = store.Finish(run.id, run.number, S.TIMED_OUT, error=failure("timed_out", message))
                self._write([(run, Recording(finish))])

    def _on_loop(self) -> Attempt | None:
        """The run whose task the loop is running now, if any (read from another thread)."""
        task = asyncio.current_task(self.loop)
        return None if task is None else self._tasks.get(task)


def failure(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message}


def _report_blocked(blocked_s: float, by_run: dict[Attempt | None, float]) -> None:
    """A stall of the event loop is over: warn once, naming the commands that held the loop
    (a run of ``None``: none was on it), and add each plugin's share to its count."""
    runs: dict[tuple[str, str], list[Attempt | None]] = defaultdict(list)
    shares: dict[tuple[str, str], float] = defaultdict(float)
    for run, share_s in by_run.items():
        key = (metrics.NO_PLUGIN, "") if run is None else (run.row.plugin, run.row.command)
        runs[key].append(run)
        shares[key] += share_s
    ranked = sorted(shares, key=shares.__getitem__, reverse=True)
    named = [_holders(key, runs[key], shares[key] if len(ranked) > 1 else None) for key in ranked[:3]]
    if len(ranked) > 3:
        named.append(f"{len(ranked) - 3} more")
    plugin, command = ranked[0]
    log.warning(
        "event loop held for %.2fs by %s",
        blocked_s,
        ", ".join(named),
        extra={"blocked_ms": round(blocked_s * 1000)}
        | ({"plugin": plugin, "command": command} if command else {}),
    )
    by_plugin: dict[str, float] = defaultdict(float)
    for (plugin, _), share_s in shares.items():
        by_plugin[plugin] += share_s
    metrics.loop_blocked(by_plugin)


def _holders(key: tuple[str, str], runs: list[Attempt | None], share_s: float | None) -> str:
    plugin, command = key
    if not command:
        named = "no run"
    elif len(runs) > 1:
        named = f"plugin {plugin} command {command} ({len(runs)} runs)"
    else:
        run = runs[0]
        assert run is not None
        named = f"plugin {plugin} command {command} (execution {run.id}, attempt {run.number})"
    return named if share_s is None else f"{named} {share_s:.2f}s"


def _cancel_timers(runs: list[Attempt]) -> None:
    for run in runs:
        if run.timer is not None:
            run.timer.cancel()
