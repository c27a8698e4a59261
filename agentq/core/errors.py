"""Errors of agentq. They know nothing of HTTP; ``api/problems.py`` maps them to statuses.

AgentqError
 ├── NotFound
 │    ├── ExecutionNotFound
 │    ├── ScheduleNotFound
 │    ├── WebhookNotFound
 │    └── PluginNotFound
 ├── Conflict
 │    ├── IdempotencyConflict
 │    ├── NameTaken
 │    ├── NotCancellable
 │    └── NotRetryable         (re-driving an execution that has not failed)
 ├── Unauthorized              (no key, or an unknown or revoked one)
 ├── Forbidden                 (a key that may not do this)
 ├── PayloadTooLarge
 ├── UnsupportedMediaType      (a body that is not sent as JSON)
 ├── RateLimited               (``retry_after_s``)
 ├── InvalidRequest            (field problems in ``errors``)
 │    ├── InvalidParams
 │    ├── UnknownPlugin
 │    └── UnknownCommand
 ├── Unavailable               (a dependency is down; try again)
 │    ├── BrokerUnavailable
 │    ├── DatabaseUnavailable
 │    └── WebhooksUnavailable  (no AGENTQ_WEBHOOK_SECRET_KEY)
 └── PluginError               (raised by plugins while they run)
      ├── RetryLater           (retry this attempt after ``delay_s``)
      └── PermanentError       (never retry)
"""

from typing import Any


class AgentqError(Exception):
    """Base of every agentq error; ``errors`` lists field problems where there are some."""

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(AgentqError):
    pass


class ExecutionNotFound(NotFound):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"No execution with id {execution_id!r}.")


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"No schedule with id {schedule_id!r}.")


class WebhookNotFound(NotFound):
    def __init__(self, what: str) -> None:
        super().__init__(f"No {what}.")


class PluginNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No plugin named {name!r}.")
        self.name = name


class Conflict(AgentqError):
    pass


class IdempotencyConflict(Conflict):
    pass


class NameTaken(Conflict):
    pass


class NotCancellable(Conflict):
    pass


class NotRetryable(Conflict):
    pass


class Unauthorized(AgentqError):
    pass


class Forbidden(AgentqError):
    pass


class PayloadTooLarge(AgentqError):
    pass


class UnsupportedMediaType(AgentqError):
    pass


class RateLimited(AgentqError):
    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class InvalidRequest(AgentqError):
    pass


class InvalidParams(InvalidRequest):
    pass


class UnknownPlugin(InvalidRequest):
    pass


class UnknownCommand(InvalidRequest):
    pass


class Unavailable(AgentqError):
    pass


class BrokerUnavailable(Unavailable):
    pass


class DatabaseUnavailable(Unavailable):
    pass


class WebhooksUnavailable(Unavailable):
    pass


class PluginError(AgentqError):
    """A plugin failed; not retried unless it is a ``RetryLater``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class RetryLater(PluginError):
    """A transient failure: run this execution again after ``delay_s`` (or the backoff)."""

    def __init__(self, detail: str, delay_s: float | None = None) -> None:
        super().__init__(detail)
        self.delay_s = delay_s


class PermanentError(PluginError):
    """A failure that no retry can mend."""
