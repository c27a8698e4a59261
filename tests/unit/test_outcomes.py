"""What the runtime writes for each way a command ends (``workers/outcomes.py``)."""

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agentq.core.errors import PluginError, RetryLater
from agentq.core.models import ExecutionStatus as S
from agentq.core.settings import settings
from agentq.plugin import Interrupted
from workers import outcomes
from workers.attempt import Attempt, StopReason


def run(attempts: int = 1, max_retries: int = 0, timeout_s: float = 30) -> Attempt:
    row = SimpleNamespace(
        id="01TEST",
        attempts=attempts,
        max_retries=max_retries,
        log_lines=0,
        timeout_s=timeout_s,
        plugin="p",
        command="c",
    )
    return Attempt(row)  # type: ignore[arg-type]


def invalid_params() -> ValidationError:
    class Params(BaseModel):
        n: int

    try:
        Params.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("the params were valid")


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (StopReason.TIMED_OUT, S.TIMED_OUT),
        (StopReason.CANCELLED, S.CANCELLED),
        (StopReason.HAND_BACK, S.RETRYING),
        (None, S.CANCELLED),  # interrupted with no reason of the runtime's
    ],
)
def test_a_stopped_command_ends_as_its_stop_reason_says(reason: StopReason | None, status: S) -> None:
    stopped = run()
    if reason is not None:
        stopped.interrupt(reason)

    assert outcomes.ended(stopped, Interrupted(reason or "")) == (status, None, None)


def test_a_command_that_raised_failed_whatever_it_raised() -> None:
    exc = SystemExit(3)
    assert outcomes.ended(run(), exc) == (S.FAILED, None, exc)


def test_stop_reasons_are_the_strings_a_command_sees() -> None:
    stopped = run()
    stopped.interrupt(StopReason.HAND_BACK)
    assert stopped.ctx.stop_reason == "shutdown"
    assert {r.value for r in StopReason} == {"timed_out", "cancelled", "shutdown"}


@pytest.mark.parametrize(
    ("value", "exc", "status", "error_type", "message"),
    [
        ({"ok": True}, None, S.SUCCEEDED, None, None),
        ({1, 2}, None, S.FAILED, "ResultNotJSON", "The result is not JSON"),
        ("x" * 100, None, S.FAILED, "ResultTooLarge", "The result is 102 bytes; the limit is 50."),
        (None, PluginError("no such feed"), S.FAILED, "PluginError", "no such feed"),
        (None, KeyError("k"), S.FAILED, "PluginCrashed", "KeyError: 'k'"),
        (None, RuntimeError(), S.FAILED, "PluginCrashed", "RuntimeError: RuntimeError"),
        (None, invalid_params(), S.FAILED, "ValidationError", "Invalid params: 1 validation error"),
    ],
)
def test_what_is_written_for_a_command_that_returned_or_raised(
    monkeypatch: pytest.MonkeyPatch,
    value: Any,
    exc: BaseException | None,
    status: S,
    error_type: str | None,
    message: str | None,
) -> None:
    monkeypatch.setattr(settings, "max_result_bytes", 50)
    ran = S.SUCCEEDED if exc is None else S.FAILED

    recording = outcomes.recording(run(), ran, value, exc)

    finish = recording.finish
    assert finish is not None
    assert finish.status is status
    assert recording.retry_in_s is None
    assert not recording.hand_back
    if error_type is None:
        assert finish.result == value
        assert finish.error is None
    else:
        assert finish.error is not None
        assert finish.error["type"] == error_type
        assert message is not None
        assert finish.error["message"].startswith(message)


def test_retry_later_runs_again_after_its_delay_while_attempts_are_left() -> None:
    recording = outcomes.recording(run(attempts=1, max_retries=1), S.FAILED, None, RetryLater("busy", 7))

    finish = recording.finish
    assert finish is not None
    assert finish.status is S.RETRYING
    assert finish.lease_expires_at is not None
    assert recording.retry_in_s == 7
    assert finish.error == {"type": "RetryLater", "message": "busy", "retry_in_s": 7}


def test_retry_later_on_the_last_attempt_fails() -> None:
    recording = outcomes.recording(run(attempts=2, max_retries=1), S.FAILED, None, RetryLater("busy"))

    finish = recording.finish
    assert finish is not None
    assert finish.status is S.FAILED
    assert recording.retry_in_s is None
    assert finish.error == {"type": "RetryLater", "message": "busy"}


def test_a_timeout_names_the_limit_and_a_cancel_writes_nothing() -> None:
    timed_out = outcomes.recording(run(timeout_s=2.5), S.TIMED_OUT, None, None).finish
    assert timed_out is not None
    assert timed_out.status is S.TIMED_OUT
    assert timed_out.error == {"type": "timed_out", "message": "The execution exceeded timeout_s=2.5."}

    assert outcomes.recording(run(), S.CANCELLED, None, None).finish is None


def test_progress_reported_goes_with_the_outcome() -> None:
    reporting = run()
    reporting.ctx.progress(40, "reading")

    finish = outcomes.recording(reporting, S.SUCCEEDED, 1, None).finish

    assert finish is not None
    assert finish.progress == {"percent": 40.0, "message": "reading"}
