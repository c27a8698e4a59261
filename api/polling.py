"""Reading an execution, optionally waiting until it is terminal, and following its events."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress

from agentq.core import db, store
from agentq.core.grouping import GroupingLoop
from agentq.core.models import TERMINAL, EventKind, Execution, ExecutionEvent
from agentq.core.settings import settings
from api.waiters import waiters

EVENTS_PAGE = 500


# Reads that arrive while others are under way are made together, in one SELECT that
# starts after each of them arrived: the long-polls a change wakes share one fresh read.
# Alone or grouped, reads are awaited on the event loop.
_reads_together = GroupingLoop("agentq-reads", store.get_executions_on_loop, max_weight=500)


async def read(execution_id: str, owner: str) -> Execution:
    return await _reads_together((execution_id, owner))


async def wait_terminal(execution_id: str, owner: str, wait_s: float) -> Execution:
    """The execution once terminal, or as it is when ``wait_s`` runs out.

    Reads the row once, then again only when a notification says it changed; the
    long-polls woken together share that read.
    """
    deadline = time.monotonic() + wait_s
    with waiters.watch(execution_id) as changed:
        row = await read(execution_id, owner)
        while not row.status.terminal and (left := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                break
            changed.clear()
            row = await read(execution_id, owner)
    return row


def ends(event: ExecutionEvent) -> bool:
    """The terminal status: always the last event of an execution."""
    return event.kind is EventKind.STATUS and event.data.get("status") in TERMINAL


async def follow(row: Execution, after_seq: int) -> AsyncIterator[ExecutionEvent]:
    """The events of ``row`` numbered after ``after_seq``: those recorded, then each new one,
    until the terminal status.

    Reads the log once, then only its new part, and only when a notification says the
    execution changed, or after ``events_recheck_s`` without one (in case one was lost):
    a quiet stream costs one indexed read per recheck.
    """
    # Recorded before the row was read, the terminal status is at most its last_event_seq.
    ended_by = row.last_event_seq if row.status.terminal else None
    with waiters.watch(row.id) as changed:
        while True:
            changed.clear()  # before the read: a change during it wakes the next wait
            events = await db.run(store.read_events, row, after_seq, EVENTS_PAGE)
            for event in events:
                yield event
                after_seq = event.seq
                if ends(event):
                    return
            if len(events) == EVENTS_PAGE:
                continue
            if ended_by is not None and after_seq >= ended_by:
                return  # resumed after the end, or terminal before the log existed
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), settings.events_recheck_s)
