"""Runs executions inside a worker process: claim, run the plugin, record the outcome.

A message carries one or many executions (a chunk of a batch). They run side by side:
every async command on the process's one event loop, so a single worker process holds
many I/O-bound executions at once; sync commands on a thread pool (a lone one on the
Celery pool thread that delivered it). The message is acked once all of its outcomes are
written. A run can also come without a message: an execution admitted into a concurrency
slot that one of this process's runs freed, which the finish claimed for the process
(``start_claimed``). Besides the Celery pool's threads, each thread has one role:

- ``agentq-loop`` runs the event loop: async commands and their timeouts.
- ``agentq-sync-*`` run the sync commands of many-execution messages, taking turns
  between API keys (``workers/turns.py``).
- ``agentq-claimer`` claims executions, those of messages that arrived together in one
  transaction; ``agentq-recorder`` writes outcomes, those that ended together in one
  (``workers/recorder.py``).
- ``agentq-heartbeat`` keeps the leases of every run the process holds, whatever plugins
  do to the loop (``workers/heartbeat.py``).
- ``agentq-watchdog`` notices a plugin blocking the loop, and names it
  (``workers/watchdog.py``, ``workers/stalls.py``).

A run is an ``Attempt`` (``workers/attempt.py``: how it is stopped); how it ended becomes
what is written in ``workers/outcomes.py``.
"""

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from agentq.core import notify, store
from agentq.core.grouping import GroupingThread
from agentq.core.models import Execution, ExecutionStatus
from agentq.core.settings import settings
from agentq.plugin import Command
from workers import outcomes, recorder
from workers.attempt import Attempt, Key, StopReason
from workers.heartbeat import Heartbeat
from workers.outcomes import Ran, backoff_s
from workers.plugins.registry import Registry
from workers.recorder import with_db_retry
from workers.stalls import report_blocked
from workers.turns import Turns
from workers.watchdog import LoopWatchdog

S = ExecutionStatus
log = logging.getLogger("agentq.runtime")
# Most outcomes written in one transaction, and most executions claimed in one.
RECORD_GROUP_MAX = 500
CLAIM_GROUP_MAX = 1000

__all__ = ["Attempt", "Runtime", "ShuttingDown", "backoff_s"]


class ShuttingDown(Exception):
    """The worker is handing its runs back: a message is not claimed, it goes back to the broker."""


class Runtime:
    """Per-process execution engine; start once, then call ``execute`` from pool threads."""

    def __init__(self, registry: Registry, worker: str, queues: frozenset[str] = frozenset()) -> None:
        self.registry = registry
        self.worker = worker
        self.queues = queues  # the queues the worker consumes
        self.loop = asyncio.new_event_loop()
        # Every run the process holds, from its claim until its outcome is written.
        self._running: dict[Key, Attempt] = {}
        # Sync commands of a many-execution message (and a lone one that computes) run
        # here, side by side, taking turns between API keys, those that compute on few
        # threads (workers/turns.py).
        self._sync_threads = Turns(settings.worker_concurrency, "agentq-sync", settings.worker_cpu_threads)
        self._thread = threading.Thread(target=self._serve, name="agentq-loop", daemon=True)
        # Claims of messages that arrive together share a transaction, and so do the
        # outcomes of attempts that end together.
        self._claimer = GroupingThread(
            "agentq-claimer", self._claim, CLAIM_GROUP_MAX, weight=lambda message: len(message[0])
        )
        self._recorder = GroupingThread("agentq-recorder", self._record, RECORD_GROUP_MAX)
        # The loop's tasks and their runs (a task only the loop knows of may be collected).
        self._tasks: dict[asyncio.Task[None], Attempt] = {}
        self._heartbeat = Heartbeat(worker, self._running, self._hand_back_all)
        self._watchdog = (
            LoopWatchdog(self.loop, settings.loop_blocked_s, self._on_loop, report_blocked)
            if settings.loop_blocked_s > 0
            else None
        )
        self._handing_back = False
        # What a finish of this process may claim for it (``runs_here``).
        self._starter = store.Starter(worker, settings.lease_s, self.runs_here)
        self._draining: float | None = None  # when the warm shutdown's runs must be done
        # Called once a run a finish started has ended (as Celery's task_postrun is after a
        # message): the memory limit's check.
        self.after_run: Callable[[], None] | None = None

    def start(self) -> None:
        self._thread.start()
        self._heartbeat.start()
        if self._watchdog is not None:
            self._watchdog.start()
        # Started now: started on demand, in the middle of a burst, each waits for the GIL.
        self._sync_threads.start()

    def stop(self) -> None:
        # Celery waited for the runs of its messages; those a finish started hold no pool
        # thread, so a warm shutdown waits for them here (the heartbeat hands them back
        # once the grace period is over, and their outcome is written).
        while self._draining is not None and self._running and time.monotonic() < self._draining:
            time.sleep(0.05)
        self._heartbeat.stop()
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
        runs = [Attempt(row) for row in rows if row.status is S.RUNNING]
        if len(runs) < len(rows):  # out of attempts: the claim failed them
            statuses.update((row.id, row.status.value) for row in rows if row.status is not S.RUNNING)
        if not runs:
            return statuses
        here = self._start(runs, lone_here=True)
        try:
            if here is not None:  # alone in its message: on this thread, which is free
                self._run_sync(*here)
            statuses.update((run.id, run.outcome.result()) for run in runs)
        finally:
            self._ended(runs)
        return statuses

    def start_claimed(self, rows: list[Execution]) -> None:
        """Start the runs that a finish of this process claimed for it (``runs_here``): as a
        message's, with no message to ack; each one's outcome ends it."""
        notify.publish_many((row.id, row.status) for row in rows)
        runs = [Attempt(row) for row in rows if row.status is S.RUNNING]
        if runs:
            self._start(runs, lone_here=False)
        for run in runs:
            run.outcome.add_done_callback(partial(self._ended_one, run))

    def runs_here(self, execution: Execution) -> bool:
        """Whether this process may start ``execution`` without a message: its queue is one
        the worker consumes, its command is loaded, and the worker is not shutting down."""
        if self._draining is not None or self._handing_back or execution.queue not in self.queues:
            return False
        try:
            self.registry.command(execution.plugin, execution.command)
        except Exception:
            return False
        return True

    def _start(self, runs: list[Attempt], lone_here: bool) -> tuple[Attempt, Callable[[], Any]] | None:
        """Start claimed runs; returns the sync run the calling thread runs itself (alone
        in its message, with ``lone_here``), if any."""
        self._running.update(((run.id, run.number), run) for run in runs)
        if self._handing_back:  # a hand-back began meanwhile: its flag is set before it looks
            for run in runs:
                run.interrupt(StopReason.HAND_BACK)
        commands = [(run, command) for run in runs if (command := self._command(run)) is not None]
        on_loop = [(run, call) for run, (call, cmd) in commands if cmd.is_async]
        sync = [
            (run, call, ((run.row.plugin, cmd.name), cmd.cpu_bound))
            for run, (call, cmd) in commands
            if not cmd.is_async
        ]
        here = lone_here and len(runs) == 1 and bool(sync) and not self._sync_threads.computes(*sync[0][2])
        if not here:
            for run, _, _ in sync:
                run.began = None  # waits for a thread: its timeout counts from when it gets one
        # One hop to the loop for the whole message: the timers, and the async commands.
        self.loop.call_soon_threadsafe(self._start_on_loop, runs, on_loop)
        if here:
            return sync[0][0], sync[0][1]
        for run, call, kind in sync:
            self._sync_threads.submit(run.row.owner, partial(self._run_queued, run, call), *kind)
        return None

    def _ended_one(self, run: Attempt, _: "Future[str]") -> None:
        self._ended([run])
        if self.after_run is not None:
            self.after_run()

    def _ended(self, runs: list[Attempt]) -> None:
        self.loop.call_soon_threadsafe(_cancel_timers, runs)
        for run in runs:
            self._running.pop((run.id, run.number), None)

    def _claim(self, messages: list[tuple[list[str], int]]) -> list[list[Execution]]:
        """The claimer thread: claim the executions of messages (ids, attempt) together."""
        claimed = with_db_retry(store.claim, messages, self.worker, settings.lease_s)
        notify.publish_many((row.id, row.status) for rows in claimed for row in rows)
        for row in (row for rows in claimed for row in rows if row.status is not S.RUNNING):
            log.warning(
                "%s failed: attempt %d would exceed max_retries=%d", row.id, row.attempts + 1, row.max_retries
            )
        return claimed

    def _command(self, run: Attempt) -> tuple[Callable[[], Any], Command] | None:
        """The call that runs the command, and the command; None if the execution failed
        already (unknown command, invalid params)."""
        try:
            plugin, cmd = self.registry.command(run.row.plugin, run.row.command)
            params = cmd.params_model.model_validate(run.row.params)
            bound = plugin.bind(cmd)
        except Exception as exc:
            self._ran(run, outcomes.ended(run, exc))
            return None
        return partial(bound, run.ctx, params), cmd

    def _start_on_loop(self, runs: list[Attempt], calls: list[tuple[Attempt, Callable[[], Any]]]) -> None:
        for run in runs:
            run.timer = self.loop.call_later(run.row.timeout_s, self._time_out, run)
        for run, call in calls:
            self._create_task(run, call)

    def _time_out(self, run: Attempt) -> None:
        """The run's timeout, counted from when its command began: one that waited for a
        thread gets the rest of its time (its timer, set at the claim, goes on)."""
        began = run.began
        left = run.row.timeout_s if began is None else began + run.row.timeout_s - time.monotonic()
        if left > 0:
            run.timer = self.loop.call_later(left, self._time_out, run)
        else:
            run.interrupt(StopReason.TIMED_OUT)

    def _run_queued(self, run: Attempt, call: Callable[[], Any]) -> None:
        run.began = time.monotonic()
        self._run_sync(run, call)

    def _ran(self, run: Attempt, ran: Ran) -> None:
        self._recorder.submit((run, ran), answer=run.outcome)

    def _run_sync(self, run: Attempt, call: Callable[[], Any]) -> None:
        """Run a sync command on this thread; an awaitable it returns goes on to the loop,
        so that the thread is free again."""
        try:
            value = run.run_sync(call)
        except BaseException as exc:
            return self._ran(run, outcomes.ended(run, exc))
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
            ran = outcomes.ended(run, exc)
        if inspect.iscoroutine(made):
            made.close()  # a no-op if it ran; else no "never awaited" warning
        self._ran(run, ran)

    def _record(self, ended: list[tuple[Attempt, Ran]]) -> list[str]:
        """The recorder thread: write the outcomes of attempts that ended, then publish what
        runs again; returns each one's recorded status."""
        return recorder.record(ended, self._running, self._starter, self.start_claimed)

    def drain(self) -> None:
        """The worker is shutting down: runs still going after the grace period are handed
        back (by the heartbeat thread, which a blocked loop does not hold up)."""
        log.info(
            "draining: %d running, handing back after %gs", len(self._running), settings.shutdown_grace_s
        )
        # No more runs without a message: what a finish admits now is published.
        self._draining = time.monotonic() + settings.shutdown_grace_s + settings.stop_grace_s + 5
        self._heartbeat.hand_back_after(settings.shutdown_grace_s)

    def _hand_back_all(self) -> None:
        # The flag first: a message claimed after this snapshot sees it (``execute``).
        self._handing_back = True
        for run in list(self._running.values()):
            run.interrupt(StopReason.HAND_BACK)

    # -- watchdog ----------------------------------------------------------------------

    def _on_loop(self) -> Attempt | None:
        """The run whose task the loop is running now, if any (read from another thread)."""
        task = asyncio.current_task(self.loop)
        return None if task is None else self._tasks.get(task)


def _cancel_timers(runs: list[Attempt]) -> None:
    for run in runs:
        if run.timer is not None:
            run.timer.cancel()
