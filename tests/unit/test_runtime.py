"""Stopping commands: cooperative through ctx, forced in threads, backoff bounds; hand-backs
and stalls of the loop."""

import asyncio
import gc
import logging
import threading
import time
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from agentq.core.metrics_layout import NO_PLUGIN
from agentq.core.models import EventKind
from agentq.core.models import ExecutionStatus as S
from agentq.core.settings import settings
from agentq.plugin import Context, Interrupted
from workers import attempt as attempt_module
from workers import heartbeat, metrics, outcomes, stalls
from workers.attempt import Attempt, StopReason
from workers.outcomes import backoff_s


def make_attempt() -> Attempt:
    row = SimpleNamespace(id="01TEST", attempts=1, log_lines=0)
    return Attempt(row)  # type: ignore[arg-type]


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
    attempt.interrupt(StopReason.TIMED_OUT)
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
    attempt.interrupt(StopReason.CANCELLED)
    ran = []

    with pytest.raises(Interrupted):
        attempt.run_sync(lambda: ran.append(1))

    assert ran == []


def test_no_interrupt_leaks_after_the_command_returned() -> None:
    attempt = make_attempt()

    assert attempt.run_sync(lambda: 42) == 42
    attempt.interrupt(StopReason.CANCELLED)  # the thread left the command: nothing is raised in it
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
    from agentq.core.settings import settings

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
    attempt = Attempt(row)  # type: ignore[arg-type]

    for i in range(5):
        attempt.ctx.logger.info("line %d", i)

    lines = [data for kind, data in buffered(attempt)]
    assert [line["message"] for line in lines[:2]] == ["line 0", "line 1"]
    assert lines[2]["level"] == "warning"
    assert "log limit reached: 3 lines" in lines[2]["message"]
    assert len(lines) == 3


def test_progress_past_the_kept_number_keeps_the_newest_per_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attempt_module, "PROGRESS_EVENTS_KEPT", 2)
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


def test_an_async_command_stopped_before_it_starts_is_never_called() -> None:
    attempt = make_attempt()
    attempt.interrupt(StopReason.HAND_BACK)
    calls = []

    async def command() -> None:
        calls.append("ran")

    def call() -> Any:
        calls.append("called")
        return command()

    with pytest.raises(Interrupted):
        asyncio.run(attempt.run_async(call))

    assert calls == []  # not even its coroutine was made, so none is left unawaited


def held(attempts: int, max_retries: int, timeout_s: float = 60) -> Attempt:
    row = SimpleNamespace(
        id="01TEST", attempts=attempts, max_retries=max_retries, log_lines=0, timeout_s=timeout_s
    )
    return Attempt(row)  # type: ignore[arg-type]


def test_a_run_handed_back_runs_again_while_attempts_are_left() -> None:
    recording = outcomes.recording(held(2, max_retries=2), S.RETRYING, None, None)

    assert recording.hand_back
    assert recording.finish is not None
    assert recording.finish.status is S.RETRYING


def test_a_run_handed_back_on_its_last_attempt_fails() -> None:
    recording = outcomes.recording(held(3, max_retries=2), S.RETRYING, None, None)

    assert not recording.hand_back
    assert recording.retry_in_s is None
    assert recording.finish is not None
    assert recording.finish.status is S.FAILED
    assert recording.finish.error is not None
    assert recording.finish.error["type"] == "handed_back"
    assert "attempt 3, the last one max_retries=2 allows" in recording.finish.error["message"]


def test_the_heartbeat_times_out_a_run_whose_timer_is_on_a_blocked_loop() -> None:
    late, on_time = held(1, 0, timeout_s=0.01), held(1, 0, timeout_s=60)
    time.sleep(0.05)

    heartbeat.finish_stuck([late, on_time])

    assert late.stop_reason == "timed_out"
    assert late.ctx.cancelled
    assert on_time.stop_reason is None


def test_a_sync_run_waiting_for_a_thread_is_not_timed_out_until_it_has_run_its_time() -> None:
    waiting, began = held(1, 0, timeout_s=0.01), held(1, 0, timeout_s=0.01)
    waiting.began = None  # still waiting for a sync thread
    time.sleep(0.05)
    began.began = time.monotonic()  # got one just now

    heartbeat.finish_stuck([waiting, began])

    assert waiting.stop_reason is None
    assert began.stop_reason is None
    time.sleep(0.05)
    heartbeat.finish_stuck([began])
    assert began.stop_reason == "timed_out"


def fake_run(execution_id: str, plugin: str, command: str) -> Attempt:
    row = SimpleNamespace(id=execution_id, attempts=1, log_lines=0, plugin=plugin, command=command)
    return Attempt(row)  # type: ignore[arg-type]


def test_a_stall_is_logged_once_naming_the_command_and_counted_per_plugin(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    counted: list[dict[str, float]] = []
    monkeypatch.setattr(metrics, "loop_blocked", lambda seconds: counted.append(dict(seconds)))
    hog = fake_run("01HOG", "hog", "block")

    with caplog.at_level(logging.WARNING, logger="agentq.runtime"):
        stalls.report_blocked(3.0, {hog: 3.0})

    (record,) = caplog.records
    assert record.getMessage() == (
        "event loop held for 3.00s by plugin hog command block (execution 01HOG, attempt 1)"
    )
    assert (record.plugin, record.command, record.blocked_ms) == ("hog", "block", 3000)  # type: ignore[attr-defined]
    assert counted == [{"hog": 3.0}]


def test_a_stall_shared_by_many_runs_names_each_command_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    counted: list[dict[str, float]] = []
    monkeypatch.setattr(metrics, "loop_blocked", lambda seconds: counted.append(dict(seconds)))
    runs: dict[Attempt | None, float] = {fake_run(f"01HOG{i}", "hog", "block"): 0.5 for i in range(3)}
    runs[fake_run("01GET", "http", "get")] = 0.25
    runs[None] = 0.25

    with caplog.at_level(logging.WARNING, logger="agentq.runtime"):
        stalls.report_blocked(2.0, runs)

    (record,) = caplog.records
    assert record.getMessage() == (
        "event loop held for 2.00s by plugin hog command block (3 runs) 1.50s, "
        "plugin http command get (execution 01GET, attempt 1) 0.25s, no run 0.25s"
    )
    assert counted == [{"hog": 1.5, "http": 0.25, NO_PLUGIN: 0.25}]
