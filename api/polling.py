"""Reading an execution, optionally waiting until it is terminal."""

import asyncio
import time

from starlette.concurrency import run_in_threadpool

from api.waiters import waiters
from core import store
from core.models import Execution


async def read(execution_id: str, owner: str) -> Execution:
    return await run_in_threadpool(store.get_execution, execution_id, owner)


async def wait_terminal(execution_id: str, owner: str, wait_s: float) -> Execution:
    """The execution once terminal, or as it is when ``wait_s`` runs out.

    Reads the row once, then again only when a notification says it changed.
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
