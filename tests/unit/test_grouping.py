"""Group commit: calls that arrive during a serve are served together, each answered alone."""

import asyncio
import sqlite3
import threading
from collections.abc import Sequence

import pymysql
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from agentq.core.db import out_of_reach
from agentq.core.errors import IdempotencyConflict
from agentq.core.grouping import GroupingThread
from api.grouping import Grouped


def test_calls_arriving_during_a_serve_share_the_next_one() -> None:
    groups: list[list[int]] = []
    first_started = threading.Event()
    release_first = threading.Event()

    def serve(items: Sequence[int]) -> list[int | Exception]:
        groups.append(list(items))
        if len(groups) == 1:
            first_started.set()
            release_first.wait(5)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def scenario() -> list[int | BaseException]:
        grouped = Grouped(serve, max_group=3)
        first = asyncio.ensure_future(grouped(0))
        await asyncio.to_thread(first_started.wait, 5)
        rest = [asyncio.ensure_future(grouped(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        release_first.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = asyncio.run(scenario())

    assert groups == [[0], [1, 2, 3], [4, 5]]
    assert [a if isinstance(a, int) else str(a) for a in answers] == [0, "odd 1", 20, "odd 3", 40, "odd 5"]


def test_a_serve_that_fails_fails_each_call_of_its_group_and_not_the_next() -> None:
    calls = 0

    def serve(items: Sequence[str]) -> list[str | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return [item.upper() for item in items]

    async def scenario() -> tuple[BaseException | str, str]:
        grouped = Grouped(serve, max_group=10)
        failed = await asyncio.gather(grouped("a"), return_exceptions=True)
        return failed[0], await grouped("b")

    failed, served = asyncio.run(scenario())

    assert isinstance(failed, ConnectionError)
    assert served == "B"


def test_a_cancelled_caller_leaves_its_group_served() -> None:
    served: list[str] = []
    started = threading.Event()

    def serve(items: Sequence[str]) -> list[str | Exception]:
        started.set()
        threading.Event().wait(0.1)
        served.extend(items)
        return list(items)

    async def scenario() -> None:
        grouped = Grouped(serve, max_group=10)
        call = asyncio.ensure_future(grouped("kept"))
        await asyncio.to_thread(started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await grouped("next") == "next"

    asyncio.run(scenario())

    assert served == ["kept", "next"]


def test_a_call_alone_is_served_in_its_coroutine_and_those_meanwhile_are_grouped() -> None:
    alone: list[str] = []
    groups: list[list[str]] = []
    release = asyncio.Event()

    async def serve_alone(item: str) -> str:
        alone.append(item)
        if item == "fails":
            raise ConnectionError("database gone")
        await release.wait()
        return item.upper()

    def serve(items: Sequence[str]) -> list[str | Exception]:
        groups.append(list(items))
        return [item.upper() for item in items]

    async def scenario() -> list[str | BaseException]:
        grouped = Grouped(serve, max_group=10, serve_alone=serve_alone)
        first = asyncio.ensure_future(grouped("a"))
        await asyncio.sleep(0.01)
        meanwhile = [asyncio.ensure_future(grouped(i)) for i in "bcd"]
        await asyncio.sleep(0.01)
        release.set()
        answers = await asyncio.gather(first, *meanwhile)
        failed = await asyncio.gather(grouped("fails"), return_exceptions=True)
        return [*answers, *failed, await grouped("e")]

    answers = asyncio.run(scenario())

    # a alone, b, c and d (made while a was under way) in one group. Then, nothing under
    # way, each alone: the error of one is its caller's, and the next is served.
    assert alone == ["a", "fails", "e"]
    assert groups == [["b", "c", "d"]]
    assert answers[:4] == ["A", "B", "C", "D"]
    assert answers[5] == "E"
    assert isinstance(answers[4], ConnectionError)


def test_groups_served_on_the_loop_never_reach_a_thread_and_fail_as_a_whole() -> None:
    groups: list[list[str]] = []
    serving_threads: set[int] = set()
    release = asyncio.Event()

    def serve(_items: Sequence[str]) -> list[str | Exception]:
        raise AssertionError("a group was served on a thread")

    async def serve_alone(item: str) -> str:
        await release.wait()
        return item.upper()

    async def serve_on_loop(items: Sequence[str]) -> list[str | Exception]:
        groups.append(list(items))
        serving_threads.add(threading.get_ident())
        await asyncio.sleep(0)
        if "x" in items:
            raise ConnectionError("database gone")
        return [item.upper() for item in items]

    async def scenario() -> list[str | BaseException]:
        grouped = Grouped(serve, max_group=2, serve_alone=serve_alone, serve_on_loop=serve_on_loop)
        first = asyncio.ensure_future(grouped("a"))
        await asyncio.sleep(0.01)
        meanwhile = [asyncio.ensure_future(grouped(i)) for i in "bcxd"]
        await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(first, *meanwhile, return_exceptions=True)

    answers = asyncio.run(scenario())

    assert groups == [["b", "c"], ["x", "d"]]
    assert answers[:3] == ["A", "B", "C"]
    assert all(isinstance(a, ConnectionError) for a in answers[3:])
    assert serving_threads == {threading.get_ident()}  # the loop's own thread


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
