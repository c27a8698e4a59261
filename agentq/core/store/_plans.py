"""Plans: the statements of a store function apart from their I/O.

A plan is a generator that yields each (statement, parameters), is sent its result, and
returns the answer. One plan serves both a thread (``run``) and the event loop
(``run_on_loop``).
"""

from collections.abc import Generator
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Result
from sqlalchemy.sql import Executable

from agentq.core.db import loop_connection

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
    """``plan`` awaited on the API's event loop, on a connection of its autocommit engine
    (``db.loop_connection``), where each statement commits as it runs."""
    async with loop_connection() as connection:
        try:
            step = next(plan)
            while True:
                step = plan.send(await connection.execute(*step))
        except StopIteration as done:
            return cast(T, done.value)
