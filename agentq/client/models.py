"""The typed answers of the API; unknown fields a newer server sends are kept."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})


class _Model(BaseModel):
    # Fields that a newer server adds are kept rather than refused.
    model_config = ConfigDict(extra="allow")


class ErrorInfo(_Model):
    type: str
    message: str


class Progress(_Model):
    percent: float
    message: str = ""


class Execution(_Model):
    id: str
    plugin: str
    command: str
    params: dict[str, Any] = Field(default_factory=dict)
    status: str
    result: Any = None
    error: ErrorInfo | None = None
    progress: Progress | None = None
    attempts: int = 0
    max_retries: int = 0
    priority: int = 5
    timeout_s: float = 0
    schedule_id: str | None = None
    slot_at: datetime | None = None
    idempotency_key: str | None = None
    retry_of: str | None = None  # the execution this one runs again
    worker: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    webhook: str | None = None
    webhook_events: list[str] = Field(default_factory=list)
    concurrency_key: str | None = None
    run_at: datetime | None = None
    waiting_on: list[str] | None = None  # while held back: `run_at`, or the full limits

    @property
    def terminal(self) -> bool:
        """Succeeded, failed, timed out or cancelled: it never changes again."""
        return self.status in TERMINAL


class ExecutionPage(_Model):
    executions: list[Execution]
    next_cursor: str | None = None


class Event(_Model):
    """One entry of an execution's event log: a status change, a progress update or a log line."""

    seq: int
    at: datetime
    kind: str  # "status", "progress" or "log"
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def status(self) -> str | None:
        return str(self.data["status"]) if self.kind == "status" and "status" in self.data else None

    @property
    def terminal(self) -> bool:
        """The last event of the execution."""
        return self.status in TERMINAL


class CommandInfo(_Model):
    name: str
    description: str = ""
    params_schema: dict[str, Any] = Field(default_factory=dict)
    result_type: str = ""


class PluginInfo(_Model):
    name: str
    description: str = ""
    version: str = ""
    queue: str = ""
    commands: list[CommandInfo] = Field(default_factory=list)


class Schedule(_Model):
    id: str
    name: str
    plugin: str
    command: str
    params: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = None
    interval_s: float | None = None
    timezone: str = "UTC"
    enabled: bool = True
    missed_policy: str = "skip"
    overlap_policy: str = "allow"
    priority: int = 5
    timeout_s: float | None = None
    max_retries: int | None = None
    jitter_s: float | None = None
    next_run_at: datetime | None = None
    next_fire_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    next_fire_times: list[datetime] = Field(default_factory=list)


class SchedulePage(_Model):
    schedules: list[Schedule]
    next_cursor: str | None = None


class ApiKey(_Model):
    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    max_running: int | None = None


class Limit(_Model):
    """A concurrency key's limit, and how many of its executions run and wait now."""

    concurrency_key: str
    max_running: int
    running: int = 0
    waiting: int = 0
    updated_at: datetime


class ApiKeyCreated(ApiKey):
    key: str  # the secret, shown this once


class Submission(_Model):
    """One item of ``submit_batch``."""

    plugin: str
    command: str
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    idempotency_key: str | None = None
    webhook: str | None = None
    webhook_events: list[str] | None = None
    concurrency_key: str | None = None
    run_at: datetime | None = None
    delay_s: float | None = None


class Webhook(_Model):
    """A subscription: every execution of the key sends the ``events`` it names to ``url``."""

    id: str
    url: str
    events: list[str]
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str  # whsec_…, shown this once


class WebhookPage(_Model):
    webhooks: list[Webhook]
    next_cursor: str | None = None


class DeliveryAttempt(_Model):
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0
    response: str | None = None
    next_attempt_at: datetime | None = None


class Delivery(_Model):
    id: str
    webhook_id: str
    event: str
    execution_id: str
    endpoint_id: str | None = None
    status: str
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class DeliveryPage(_Model):
    deliveries: list[Delivery]
    next_cursor: str | None = None
