"""Stopping commands: cooperative through ctx, forced in threads, backoff bounds."""

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from workers.plugins.base import Context, Interrupted
from workers.runtime import Attempt, backoff_s


def make_attempt() -> Attempt:
    row = SimpleNamespace(id="01TEST", attempts=1)
    return Attempt(row, runtime=SimpleNamespace(loop=None))  # type: ignore[arg-type]


def test_interrupt_stops_a_sync_loop_that_never_checks_ctx() -> None:
    attempt = make_attempt()
    outcome: dict[str, Any] = {}

    def spin() -> None:
        while True:
            pass

    def run() -> None:
        try:
            attempt.run_sync(spin)
        except Interrupted as exc:
            outcome["reason"] = exc.reason

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.2)
    attempt.interrupt("timed_out")
    thread.join(5)

    assert not thread.is_alive()
    assert outcome == {"reason": "timed_out"}


def test_interrupt_before_start_never_runs_the_command() -> None:
    attempt = make_attempt()
    attempt.interrupt("cancelled")
    ran = []

    with pytest.raises(Interrupted):
        attempt.run_sync(lambda: ran.append(1))

    assert ran == []


def test_no_interrupt_leaks_after_the_command_returned() -> None:
    attempt = make_attempt()

    assert attempt.run_sync(lambda: 42) == 42
    attempt.interrupt("cancelled")  # the thread left the command: nothing is raised in it
    time.sleep(0.05)
    assert sum(range(1000)) == 499500


def test_ctx_sleep_wakes_on_interrupt() -> None:
    ctx = Context("01TEST", 1)
    threading.Timer(0.1, ctx.interrupt, args=("cancelled",)).start()

    started = time.monotonic()
    with pytest.raises(Interrupted):
        ctx.sleep(30)

    assert time.monotonic() - started < 5
    assert ctx.cancelled


def test_progress_is_clamped_and_reported() -> None:
    seen: list[dict[str, Any]] = []
    ctx = Context("01TEST", 1, on_progress=seen.append)

    ctx.progress(150, "done")
    ctx.progress(-3)

    assert seen == [{"percent": 100.0, "message": "done"}, {"percent": 0.0, "message": ""}]


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_grows_with_jitter_within_bounds(attempt: int) -> None:
    from core.settings import settings

    ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2 ** (attempt - 1))
    delays = {backoff_s(attempt) for _ in range(50)}

    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(delays) > 1
