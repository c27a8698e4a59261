"""The sync threads take turns between API keys."""

import functools
import threading

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
