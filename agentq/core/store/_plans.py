"""Plans: the statements of a store function apart from their I/O.

A plan is a generator that yields each (statement, parameters), is sent its result, and
returns the answer. One plan serves both sync code (``run``: a worker, or a transaction
of the API's) and a coroutine of the API's (``run_on_loop``).
"""

from collections.abc import Generator
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Result
from sqlalchemy.sql import Executable

from agentq.core import db

T = TypeVar("T")
Plan = Generator[tuple[Executable, Any], Result[Any], T]


def run(plan: Plan[T], connection: Connection) -> T:
    try:
        step = next(plan)
        while True:
            step = plan.send(connection.execute(*step))
    except StopIteration as done:
        return cast(T, done.value)


async def run_on_loop(plan: Plan[T]) -> T:
    """``plan`` awaited on the API's event loop, on a pooled connection of its autocommit
    engine (each statement commits as it runs), in one step of the greenlet bridge: taking
    the connection and handing it back cost no step of their own (through SQLAlchemy's
    ``AsyncConnection`` each did, about 100 µs of CPU more per use)."""
    return await db.run(_run_autocommit, plan)


def _run_autocommit(plan: Plan[T]) -> T:
    with db.autocommit_engine().connect() as connection:
        return run(plan, connection)
