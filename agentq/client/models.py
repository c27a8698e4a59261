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
