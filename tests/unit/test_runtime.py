"""Stopping commands: cooperative through ctx, forced in threads, backoff bounds."""

import gc
import threading
import time
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from core.models import EventKind
from core.settings import settings
from workers import runtime
from workers.plugins.base import Context, Interrupted
from workers.runtime import Attempt, backoff_s


def make_attempt() -> Attempt:
    row = SimpleNamespace(id="01TEST", attempts=1, log_lines=0)
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


def test_a_run_that_ended_is_freed_without_a_garbage_collection() -> None:
    # A worker holds thousands of runs; freed by reference counting, they cost the
    # collector nothing.
    attempt = make_attempt()
    attempt.ctx.progress(50)
    attempt.ctx.logger.info("a line")
    assert attempt.run_sync(lambda: "done") == "done"
    gone = weakref.ref(attempt)

    gc.disable()
    try:
        del attempt
        assert gone() is None
    finally:
        gc.enable()


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


def buffered(attempt: Attempt) -> list[tuple[str, Any]]:
    return [(e.kind.value, e.data) for e in attempt.pending.take()]


def test_progress_and_log_lines_are_buffered_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "max_log_line_chars", 80)
    attempt = make_attempt()

    attempt.ctx.progress(10, "first")
    attempt.ctx.logger.info("looked at %s", "a")
    attempt.ctx.logger.debug("not kept")
    attempt.ctx.logger.warning("x" * 100)

    assert buffered(attempt) == [
        ("progress", {"percent": 10.0, "message": "first"}),
        ("log", {"level": "info", "message": "looked at a"}),
        ("log", {"level": "warning", "message": "x" * 79 + "…"}),
    ]
    assert attempt.pending.take() == []


def test_log_lines_past_the_cap_leave_one_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "max_log_lines", 3)
    # Given an execution whose earlier attempt logged one line
    row = SimpleNamespace(id="01TEST", attempts=2, log_lines=1)
    attempt = Attempt(row, runtime=SimpleNamespace(loop=None))  # type: ignore[arg-type]

    for i in range(5):
        attempt.ctx.logger.info("line %d", i)

    lines = [data for kind, data in buffered(attempt)]
    assert [line["message"] for line in lines[:2]] == ["line 0", "line 1"]
    assert lines[2]["level"] == "warning" and "log limit reached: 3 lines" in lines[2]["message"]
    assert len(lines) == 3


def test_progress_past_the_kept_number_keeps_the_newest_per_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "PROGRESS_EVENTS_KEPT", 2)
    attempt = make_attempt()

    for percent in (10, 20, 30, 40):
        attempt.ctx.progress(percent)
    first_write = buffered(attempt)
    attempt.ctx.progress(50)
    attempt.ctx.logger.info("between")
    attempt.ctx.progress(60)
    attempt.ctx.progress(70)

    assert [data["percent"] for _, data in first_write] == [10.0, 20.0, 40.0]
    assert [data.get("percent", data.get("message")) for _, data in buffered(attempt)] == [
        50.0,
        "between",
        70.0,
    ]


def test_events_put_back_after_a_failed_write_go_first() -> None:
    attempt = make_attempt()
    attempt.ctx.logger.info("one")
    taken = attempt.pending.take()
    attempt.ctx.logger.info("two")

    attempt.pending.put_back(taken)

    assert [data["message"] for _, data in buffered(attempt)] == ["one", "two"]
    assert all(e.kind is EventKind.LOG for e in taken)
