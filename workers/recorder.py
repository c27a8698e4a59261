"""Writing outcomes: the recorder thread's work, and the retry every write of the runtime
makes through a database outage.

Database writes ride out an outage: they are retried for ``db_retry_s``. A claim that
still fails hands the message back to the broker; an outcome that cannot be written is
left to the lease, so the reaper runs the execution again.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from agentq.core import notify, queue, store
from agentq.core.errors import DatabaseUnavailable
from agentq.core.models import Execution, ExecutionStatus
from agentq.core.settings import settings
from workers import metrics
from workers.attempt import Attempt, Key
from workers.outcomes import Ran, Recording, recording

S = ExecutionStatus
T = TypeVar("T")
log = logging.getLogger("agentq.runtime")


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


def record(
    ended: list[tuple[Attempt, Ran]],
    running: dict[Key, Attempt],
    starter: store.Starter | None = None,
    start: Callable[[list[Execution]], None] | None = None,
) -> list[str]:
    """Write the outcomes of attempts that ended, then publish what runs again; returns each
    one's recorded status. ``running`` holds the runs whose leases the process keeps.

    Held executions admitted into the slots of those that ended are published, or, those
    the finish claimed for this process (``starter``), given to ``start``: a freed slot is
    refilled at once, not a publish, a broker hop and a claim later."""
    recordings = [(run, recording(run, *ran)) for run, ran in ended]
    statuses, admitted, started = write(recordings, starter)
    if started and start is not None:
        start(started)
    queue.publish(admitted)
    for run, _ in ended:  # its lease is no longer this process's to keep
        running.pop((run.id, run.number), None)
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


def write(
    recordings: list[tuple[Attempt, Recording]], starter: store.Starter | None = None
) -> tuple[dict[str, str], list[Execution], list[Execution]]:
    """Write outcomes in one transaction with the events their attempts still hold;
    returns each attempt's status as recorded (``superseded``: its row had moved on), the
    held executions admitted into the slots of those that ended, and those of them the
    finish claimed for ``starter``."""
    statuses = {run.id: S.CANCELLED.value for run, r in recordings if r.finish is None}
    writes = [(run, r.finish) for run, r in recordings if r.finish is not None]
    # A cancelled run that held slots frees them now that it has stopped.
    stopped = [run.id for run, r in recordings if r.finish is None and run.row.admitted]
    admitted = []
    if stopped:
        try:
            admitted = with_db_retry(store.free_slots, stopped)
        except DatabaseUnavailable as exc:  # the reaper frees the slots of ended executions
            log.error("cannot free the slots of %d cancelled runs: %s", len(stopped), exc)
    if not writes:
        return statuses, admitted, []
    for run, _ in writes:
        run.recorded = True
        run.flushing.acquire()  # after a heartbeat writing this run's events, and with the rest
    try:
        finishes = [
            replace(finish, events=events) if (events := run.pending.take()) else finish
            for run, finish in writes
        ]
        try:
            finished = with_db_retry(store.finish, finishes, starter)
        except DatabaseUnavailable as exc:
            log.error("%d outcomes not written, their leases will run them again: %s", len(writes), exc)
            return statuses | {run.id: "unrecorded" for run, _ in writes}, admitted, []
    finally:
        for run, _ in writes:
            run.flushing.release()
    written = finished.written
    notify.publish_many((f.execution_id, f.status) for f in finishes if f.execution_id in written)
    return (
        statuses
        | {f.execution_id: f.status.value if f.execution_id in written else "superseded" for f in finishes},
        admitted + finished.admitted,
        finished.started,
    )
