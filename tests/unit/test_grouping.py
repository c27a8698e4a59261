"""Group commit: calls that arrive during a serve are served together, each answered alone."""

import asyncio
import sqlite3
import threading

import pymysql
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from agentq.core.db import out_of_reach
from agentq.core.errors import IdempotencyConflict
from agentq.core.grouping import GroupingLoop, GroupingThread


def test_calls_arriving_during_a_serve_share_the_next_one_each_answered_alone() -> None:
    groups: list[list[int]] = []
    serving_threads: set[int] = set()
    release_first = asyncio.Event()

    async def serve(items: list[int]) -> list[int | Exception]:
        groups.append(items)
        serving_threads.add(threading.get_ident())
        if len(groups) == 1:
            await release_first.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def scenario() -> list[int | BaseException]:
        # Item 3 weighs 2: it does not fit beside 1 and 2, so it opens the next group.
        grouping = GroupingLoop("test", serve, max_weight=3, weight=lambda i: 2 if i == 3 else 1)
        first = asyncio.ensure_future(grouping(0))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(grouping(i)) for i in range(1, 7)]
        await asyncio.sleep(0.01)
        release_first.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = asyncio.run(scenario())

    # 0 alone, in its caller's coroutine; those made meanwhile in groups of at most 3.
    assert groups == [[0], [1, 2], [3, 4], [5, 6]]
    assert [a if isinstance(a, int) else str(a) for a in answers] == [
        0,
        "odd 1",
        20,
        "odd 3",
        40,
        "odd 5",
        60,
    ]
    assert serving_threads == {threading.get_ident()}  # the loop's own thread


def test_a_serve_that_fails_fails_each_call_of_its_group_and_not_the_next() -> None:
    release = asyncio.Event()

    async def serve(items: list[str]) -> list[str | Exception]:
        if items == ["alone"]:
            await release.wait()
        if "x" in items:
            raise ConnectionError("database gone")
        return [item.upper() for item in items]

    async def scenario() -> list[str | BaseException]:
        grouping = GroupingLoop("test", serve, max_weight=2)
        alone = asyncio.ensure_future(grouping("alone"))
        await asyncio.sleep(0.01)
        meanwhile = [asyncio.ensure_future(grouping(i)) for i in "bxcd"]
        await asyncio.sleep(0.01)
        release.set()
        answers = await asyncio.gather(alone, *meanwhile, return_exceptions=True)
        failed_alone = await asyncio.gather(grouping("x"), return_exceptions=True)
        return [*answers, *failed_alone, await grouping("e")]

    answers = asyncio.run(scenario())

    assert answers[0] == "ALONE"
    assert all(isinstance(a, ConnectionError) for a in answers[1:3])  # b and x: one group
    assert answers[3:5] == ["C", "D"]
    # Alone, the error is its caller's, and the next call is served.
    assert isinstance(answers[5], ConnectionError)
    assert answers[6] == "E"


def test_a_cancelled_caller_leaves_its_group_served() -> None:
    served: list[str] = []
    release = asyncio.Event()

    async def serve(items: list[str]) -> list[str | Exception]:
        if items == ["alone"]:
            await release.wait()
        await asyncio.sleep(0.01)
        served.extend(items)
        return list(items)

    async def scenario() -> None:
        grouping = GroupingLoop("test", serve, max_weight=10)
        alone = asyncio.ensure_future(grouping("alone"))
        await asyncio.sleep(0.01)
        call = asyncio.ensure_future(grouping("kept"))
        await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        release.set()
        assert await alone == "alone"
        assert await grouping("next") == "next"

    asyncio.run(scenario())

    assert sorted(served) == ["alone", "kept", "next"]


def test_a_grouping_thread_serves_what_arrived_meanwhile_together_and_fails_a_group_alone() -> None:
    groups: list[list[int]] = []
    first_started = threading.Event()
    release_first = threading.Event()

    def serve(items: list[int]) -> list[int]:
        groups.append(items)
        if len(groups) == 1:
            first_started.set()
            release_first.wait(5)
        if 3 in items:
            raise ConnectionError("database gone")
        return [i * 10 for i in items]

    # Item 3 weighs 2, the others 1: it does not fit beside 1 and 2, so it opens the next group.
    server = GroupingThread("test-grouping", serve, max_weight=3, weight=lambda i: 2 if i == 3 else 1)
    first = server.submit(0)
    assert first_started.wait(5)
    rest = [server.submit(i) for i in range(1, 6)]
    release_first.set()

    answers = [f.exception(5) or f.result(5) for f in [first, *rest]]
    assert answers[:3] == [0, 10, 20]
    assert answers[5] == 50
    assert all(isinstance(a, ConnectionError) for a in answers[3:5])
    assert groups == [[0], [1, 2], [3, 4], [5]]


def _driver_error(cls: type[Exception], code: int, message: str) -> DBAPIError:
    error = DBAPIError.instance("INSERT", {}, cls(code, message), pymysql.err.Error)
    assert isinstance(error, DBAPIError)
    return error


def test_a_group_is_written_again_alone_unless_the_database_is_out_of_reach() -> None:
    """A failed group commit is retried request by request unless the failure is one that
    every request would meet alike (``agentq.core.db.out_of_reach``)."""
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
    unreachable = [
        _driver_error(pymysql.err.OperationalError, 2003, "Can't connect to MySQL server"),
        _driver_error(pymysql.err.OperationalError, 2013, "Lost connection to MySQL server during query"),
        _driver_error(pymysql.err.InterfaceError, 0, ""),
        DBAPIError("INSERT", {}, locked),
        PoolTimeout("QueuePool limit of size 20 overflow 30 reached"),
    ]
    about_the_rows = [
        _driver_error(pymysql.err.OperationalError, 4025, "CONSTRAINT `executions.params` failed"),
        _driver_error(pymysql.err.OperationalError, 1644, "refused"),
        _driver_error(pymysql.err.DataError, 1406, "Data too long for column 'idempotency_key'"),
        _driver_error(pymysql.err.OperationalError, 1213, "Deadlock found when trying to get lock"),
        ValueError("Out of range float values are not JSON compliant"),
        IdempotencyConflict("reused"),
    ]
    invalidated = _driver_error(pymysql.err.OperationalError, 1927, "Connection was killed")
    invalidated.connection_invalidated = True

    assert [out_of_reach(e) for e in [*unreachable, invalidated]] == [True] * (len(unreachable) + 1)
    assert [out_of_reach(e) for e in about_the_rows] == [False] * len(about_the_rows)
