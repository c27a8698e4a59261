"""The sync threads take turns between API keys."""

import functools
import threading
import time
from collections.abc import Callable

from workers.cpu_lane import CpuLane
from workers.turns import Turns


def test_a_free_thread_serves_the_keys_in_turn_each_in_order() -> None:
    turns = Turns(1, "test-turns")
    gate = threading.Event()
    done = threading.Event()
    ran: list[str] = []
    turns.submit("a", gate.wait)  # holds the one thread while the others queue up
    for i in range(4):
        turns.submit("a", functools.partial(ran.append, f"a{i}"))
    turns.submit("a", done.set)
    turns.submit("b", lambda: ran.append("b0"))
    turns.submit("b", lambda: ran.append("b1"))
    turns.submit("c", lambda: ran.append("c0"))
    turns.start()
    gate.set()
    assert done.wait(10)
    # First in, first out would run b0 after a3; in turn, b and c go between a's runs.
    assert ran == ["b0", "c0", "a0", "b1", "a1", "a2", "a3"]


def test_a_job_that_raises_leaves_its_thread_serving() -> None:
    turns = Turns(1, "test-turns-raise")
    done = threading.Event()
    turns.submit("a", lambda: 1 / 0)
    turns.submit("a", done.set)
    turns.start()
    assert done.wait(10)


def test_cpu_bound_jobs_take_one_thread_while_the_others_serve_the_rest() -> None:
    turns = Turns(3, "test-turns-lane", cpu_threads=1)
    gate = threading.Event()
    in_lane = threading.Event()
    ran: list[str] = []

    def hold() -> None:
        in_lane.set()
        gate.wait()

    turns.submit("a", hold, "spin", cpu_bound=True)
    turns.submit("a", lambda: ran.append("a-spin"), "spin", cpu_bound=True)
    turns.submit("a", lambda: ran.append("a-wait"), "wait", cpu_bound=False)
    turns.submit("b", lambda: ran.append("b-spin"), "spin", cpu_bound=True)
    turns.submit("b", lambda: ran.append("b-wait"), "wait", cpu_bound=False)
    turns.start()
    assert in_lane.wait(10)
    wait_for(lambda: len(ran) == 2)
    # The lane is held: the free threads ran the waiting commands, not the other spins.
    assert sorted(ran) == ["a-wait", "b-wait"]
    gate.set()
    wait_for(lambda: len(ran) == 4)
    assert ran[2:] == ["b-spin", "a-spin"]  # the lane takes turns between keys too


def test_a_command_is_learned_cpu_bound_from_its_runs_and_unlearned() -> None:
    lane = CpuLane(1)
    assert lane.is_cpu("new")  # never measured: it runs in the lane, where it measures true
    lane.learn("new", 0.001, 0.5)
    assert not lane.is_cpu("new")
    for _ in range(4):
        lane.learn("new", 0.01, 0.01)
    assert lane.is_cpu("new")
    lane.learn("new", 0.01, 0.03)  # sharing the GIL for a while does not take it out
    assert lane.is_cpu("new")
    for _ in range(4):
        lane.learn("new", 0.0, 0.02)
    assert not lane.is_cpu("new")
    lane.declare("declared", False)
    lane.learn("declared", 1.0, 1.0)
    assert not lane.is_cpu("declared")


def test_a_run_that_waits_gives_its_lane_slot_back_while_it_runs() -> None:
    turns = Turns(2, "test-turns-probe", cpu_threads=1)
    gate = threading.Event()
    second = threading.Event()
    turns.submit("a", gate.wait, "new")  # never measured: in the lane, where it blocks
    turns.submit("a", second.set, "new")
    turns.start()
    # Without the probe the second run would wait for the first to end.
    assert second.wait(10)
    assert not gate.is_set()
    assert not turns.lane.is_cpu("new")  # learned from the run that waits, as it runs
    gate.set()


def test_with_no_lane_cpu_bound_jobs_run_side_by_side() -> None:
    turns = Turns(2, "test-turns-nolane", cpu_threads=0)
    gate = threading.Event()
    second = threading.Event()
    turns.submit("a", gate.wait, "spin", cpu_bound=True)
    turns.submit("a", second.set, "spin", cpu_bound=True)
    turns.start()
    assert second.wait(10)
    gate.set()


def wait_for(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, "not done within 10 s"
        time.sleep(0.01)
