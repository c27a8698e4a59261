"""The loop watchdog: a stall is reported once, with its length and what held the loop."""

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from workers.watchdog import LoopWatchdog

Report = tuple[float, dict[Any, float]]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def watch(loop: asyncio.AbstractEventLoop, threshold_s: float) -> tuple[LoopWatchdog[Any], list[Report]]:
    reports: list[Report] = []
    watchdog = LoopWatchdog(
        loop, threshold_s, lambda: asyncio.current_task(loop), lambda s, by: reports.append((s, by))
    )
    watchdog.start()
    return watchdog, reports


def named(report: Report, name: str) -> bool:
    return any(task is not None and task.get_name() == name for task in report[1])


def run(loop: asyncio.AbstractEventLoop, *blocks: tuple[str, float]) -> None:
    """Tasks that block the loop in turn, each for its seconds, started in one go."""

    async def block(seconds: float) -> None:
        time.sleep(seconds)  # on the loop, as a careless plugin does

    async def start() -> None:
        await asyncio.gather(*(asyncio.create_task(block(s), name=name) for name, s in blocks))

    asyncio.run_coroutine_threadsafe(start(), loop).result(10)


def wait_for(reports: list[Report], name: str) -> list[Report]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(named(r, name) for r in reports):
        time.sleep(0.05)
    time.sleep(0.3)  # a second report of the same stall would come now
    return [r for r in reports if named(r, name)]


def test_a_task_blocking_the_loop_is_reported_once_with_its_length(loop: asyncio.AbstractEventLoop) -> None:
    watchdog, reports = watch(loop, 0.1)
    run(loop, ("hog", 0.6))
    stalls = wait_for(reports, "hog")
    watchdog.stop()

    assert len(stalls) == 1
    blocked_s, by_task = stalls[0]
    (task,) = by_task
    assert task.get_name() == "hog"
    assert by_task[task] == blocked_s
    assert blocked_s >= 0.55  # the tick after it ran at least this late


def test_tasks_holding_the_loop_in_turn_share_one_stall(loop: asyncio.AbstractEventLoop) -> None:
    watchdog, reports = watch(loop, 0.1)
    run(loop, ("first", 0.5), ("second", 0.5))
    stalls = wait_for(reports, "second")
    watchdog.stop()

    assert len(stalls) == 1
    blocked_s, by_task = stalls[0]
    assert {task.get_name() for task in by_task} == {"first", "second"}
    assert sum(by_task.values()) == pytest.approx(blocked_s)
    assert blocked_s >= 0.95


def test_a_loop_that_keeps_turning_reports_nothing(loop: asyncio.AbstractEventLoop) -> None:
    watchdog, reports = watch(loop, 0.5)
    run(loop, *((f"short-{i}", 0.01) for i in range(20)))  # 0.2 s held in all, in one turn
    time.sleep(1.5)
    watchdog.stop()

    assert reports == []


def test_stopped_before_the_loop_it_reports_no_stall(loop: asyncio.AbstractEventLoop) -> None:
    watchdog, reports = watch(loop, 0.1)
    time.sleep(0.2)
    watchdog.stop()
    loop.call_soon_threadsafe(loop.stop)  # its ticker stops turning
    time.sleep(0.5)

    assert reports == []
