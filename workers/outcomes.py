"""How a command ended, and what to write for it: a function per kind of outcome.

``ended`` names how a command that raised ended (``Ran``: status, value, error);
``recording`` turns a ``Ran`` into a ``Recording``: the row's finish, and whether the
execution runs again (a retry after its backoff, a hand-back at once). Nothing here
writes: the recorder does (``workers/recorder.py``).

An execution runs at most ``max_retries + 1`` times: a retry or a hand-back that would
take it past that fails it instead.
"""

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from agentq.core import store
from agentq.core.errors import AgentqError, PluginError, RetryLater
from agentq.core.models import ExecutionStatus, utcnow
from agentq.core.settings import settings
from agentq.plugin import Interrupted
from workers.attempt import Attempt, StopReason

S = ExecutionStatus
log = logging.getLogger("agentq.runtime")

Ran = tuple[ExecutionStatus, Any, BaseException | None]  # how a command ended: status, value, error

# The status of a command the runtime stopped; a run handed back runs again.
STOPPED_AS = {
    StopReason.TIMED_OUT: S.TIMED_OUT,
    StopReason.CANCELLED: S.CANCELLED,
    StopReason.HAND_BACK: S.RETRYING,
}


@dataclass(frozen=True)
class Recording:
    """What to write for an ended attempt, and what to do once it is written."""

    finish: store.Finish | None  # None: nothing to write (the canceller wrote the row)
    retry_in_s: float | None = None  # publish its next attempt after this delay
    hand_back: bool = False  # publish its next attempt now


def failure(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message}


def backoff_s(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def ended(run: Attempt, exc: BaseException) -> Ran:
    """How a command that raised ``exc`` ended."""
    if not isinstance(exc, Interrupted):
        return S.FAILED, None, exc  # a plugin's failure (even SystemExit) is the execution's outcome
    return STOPPED_AS[run.stop_reason or StopReason.CANCELLED], None, None


def recording(run: Attempt, status: ExecutionStatus, value: Any, exc: BaseException | None) -> Recording:
    """What to write for an attempt that ended ``status`` (with ``value`` or ``exc``)."""
    if exc is not None:
        return _raised(run, exc)
    return _RECORDINGS[status](run, value)


def _finish(run: Attempt, status: ExecutionStatus, **fields: Any) -> store.Finish:
    return store.Finish(run.id, run.number, status, progress=run.ctx.last_progress, **fields)


def _failed(run: Attempt, kind: str, message: str) -> Recording:
    return Recording(_finish(run, S.FAILED, error=failure(kind, message)))


def _succeeded(run: Attempt, value: Any) -> Recording:
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError) as err:
        return _failed(run, "ResultNotJSON", f"The result is not JSON: {err}")
    if size > settings.max_result_bytes:
        return _failed(
            run, "ResultTooLarge", f"The result is {size} bytes; the limit is {settings.max_result_bytes}."
        )
    return Recording(_finish(run, S.SUCCEEDED, result=value))


def _timed_out(run: Attempt, _value: Any) -> Recording:
    message = f"The execution exceeded timeout_s={run.row.timeout_s:g}."
    return Recording(_finish(run, S.TIMED_OUT, error=failure("timed_out", message)))


def _cancelled(_run: Attempt, _value: Any) -> Recording:
    return Recording(None)  # the row was changed by whoever cancelled (or reclaimed) it


def _handed_back(run: Attempt, _value: Any) -> Recording:
    """The worker is stopping: give the run back so another worker starts it again, unless
    that would be one run more than max_retries allows."""
    row = run.row
    if row.attempts > row.max_retries:
        message = (
            f"The worker shut down during attempt {row.attempts}, the last one "
            f"max_retries={row.max_retries} allows; it does not run again."
        )
        return _failed(run, "handed_back", message)
    error = failure("handed_back", "The worker shut down during this run; it runs again.")
    lease = utcnow() + timedelta(seconds=settings.queued_lease_s)
    return Recording(_finish(run, S.RETRYING, error=error, lease_expires_at=lease), hand_back=True)


_RECORDINGS: dict[ExecutionStatus, Callable[[Attempt, Any], Recording]] = {
    S.SUCCEEDED: _succeeded,
    S.TIMED_OUT: _timed_out,
    S.CANCELLED: _cancelled,
    S.RETRYING: _handed_back,
}


def _raised(run: Attempt, exc: BaseException) -> Recording:
    """The command raised: a retry while attempts are left (``RetryLater``), else a failure."""
    message = exc.detail if isinstance(exc, AgentqError) else str(exc) or type(exc).__name__
    if isinstance(exc, ValidationError):
        message = f"Invalid params: {exc}"
    if isinstance(exc, RetryLater) and run.row.attempts <= run.row.max_retries:
        return _retry_later(run, exc, message)
    if isinstance(exc, PluginError | ValidationError):
        return _failed(run, type(exc).__name__, message)
    log.exception("plugin %s/%s raised", run.row.plugin, run.row.command, exc_info=exc)
    return _failed(run, "PluginCrashed", f"{type(exc).__name__}: {message}")


def _retry_later(run: Attempt, exc: RetryLater, message: str) -> Recording:
    delay = exc.delay_s if exc.delay_s is not None else backoff_s(run.row.attempts)
    error = {**failure(type(exc).__name__, message), "retry_in_s": round(delay, 3)}
    # Keep a lease past the retry's due time: if that message is lost, the reaper resends it.
    lease = utcnow() + timedelta(seconds=delay + settings.queued_lease_s)
    return Recording(_finish(run, S.RETRYING, error=error, lease_expires_at=lease), retry_in_s=delay)


def did_not_stop(run: Attempt) -> Recording:
    """A timed-out command that does not stop (stuck in C code, or on a blocked loop): its
    timeout, recorded without it."""
    message = f"The execution exceeded timeout_s={run.row.timeout_s:g} and did not stop."
    return Recording(store.Finish(run.id, run.number, S.TIMED_OUT, error=failure("timed_out", message)))
