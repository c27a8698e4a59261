"""Request and response bodies of the HTTP API."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from agentq.core.models import DEFAULT_PRIORITY, EventKind, ExecutionStatus
from agentq.core.public import ExecutionPublic as ExecutionPublic
from agentq.core.public import event_names
from agentq.core.settings import MAX_TIMEOUT_S, settings
from api.limit_schemas import ConcurrencyKey
from api.webhook_schemas import WebhookEvents, WebhookFields, WebhookUrl

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255)]
MAX_BATCH = 1000
# Ids are ULIDs: 26 characters of Crockford's base32, the first at most 7.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def _cursor(cursor: str | None) -> str | None:
    # Pages are keyset on the id: anything else would be compared as if it were one.
    if cursor is not None and not _ULID.fullmatch(cursor):
        raise ValueError("not a cursor: pass the `next_cursor` of the previous page, or none for the first")
    return cursor


Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page."), AfterValidator(_cursor)
]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _bounded(params: dict[str, Any]) -> dict[str, Any]:
    if _depth(params) > settings.max_params_depth:
        raise ValueError(f"params nest deeper than {settings.max_params_depth} levels")
    size = len(json.dumps(params, separators=(",", ":")))
    if size > settings.max_params_bytes:
        raise ValueError(f"params are {size} bytes of JSON; the limit is {settings.max_params_bytes}")
    return params


# Params: any JSON object, bounded in depth and size (the plugin's schema is checked later).
Params = Annotated[dict[str, Any], AfterValidator(_bounded)]


class ExecutionCreate(WebhookFields):
    model_config = ConfigDict(extra="forbid")

    plugin: Name = Field(examples=["echo"])
    command: Name = Field(examples=["echo"])
    params: Params = Field(default_factory=dict, examples=[{"hello": "world"}])
    priority: int = Field(DEFAULT_PRIORITY, ge=0, le=9, description="0–9, 9 runs first.")
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S, description="Defaults to the server's.")
    max_retries: int | None = Field(None, ge=0, le=100, description="Retries after the first attempt.")
    idempotency_key: IdempotencyKey | None = Field(
        None, description="Dedupes like the Idempotency-Key header (which wins when both are given)."
    )
    concurrency_key: ConcurrencyKey | None = None
    run_at: AwareDatetime | None = Field(
        None, description="Start no earlier than this (RFC 3339, with its offset); not with `delay_s`."
    )
    delay_s: float | None = Field(
        None, ge=0, description="Start this many seconds from now; not with `run_at`."
    )

    @model_validator(mode="after")
    def _one_start_time(self) -> "ExecutionCreate":
        if self.run_at is not None and self.delay_s is not None:
            raise ValueError("give `run_at` or `delay_s`, not both")
        ahead_s = self.delay_s if self.delay_s is not None else None
        if self.run_at is not None:
            ahead_s = (self.run_at - datetime.now(UTC)).total_seconds()
        if ahead_s is not None and ahead_s > settings.run_at_horizon_s:
            raise ValueError(
                f"the start is {ahead_s:.0f} s ahead; at most {settings.run_at_horizon_s:.0f} s "
                "(AGENTQ_RUN_AT_HORIZON_S) may be asked for"
            )
        return self

    def starts_at(self) -> datetime | None:
        """When it may start, if later than now."""
        if self.delay_s:
            return datetime.now(UTC) + timedelta(seconds=self.delay_s)
        return self.run_at


RetryableStatus = Literal["failed", "timed_out", "cancelled"]
RETRYABLE: list[RetryableStatus] = ["failed", "timed_out", "cancelled"]


class ExecutionRetryFilter(BaseModel):
    """Which of the key's executions a bulk retry runs again: the oldest `limit` that match."""

    model_config = ConfigDict(extra="forbid")

    status: list[RetryableStatus] = Field(
        default_factory=lambda: list(RETRYABLE), min_length=1, description="One status or a list."
    )
    plugin: Name | None = None
    created_after: datetime | None = Field(None, description="Created at or after (UTC if no offset).")
    created_before: datetime | None = Field(None, description="Created before (UTC if no offset).")
    limit: int = Field(100, ge=1, le=MAX_BATCH)

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _window(self) -> "ExecutionRetryFilter":
        after, before = self.created_after, self.created_before
        if after is not None and before is not None and _utc(after) >= _utc(before):
            raise ValueError("created_before must be later than created_after")
        return self


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ExecutionBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executions: list[ExecutionCreate] = Field(min_length=1, max_length=MAX_BATCH)


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str


class ErrorInfo(BaseModel):
    type: str
    message: str


class Progress(BaseModel):
    percent: float
    message: str = ""


class ExecutionEventPublic(BaseModel):
    """An entry of an execution's event log; the SSE message's `data`, its `id` is `seq`."""

    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="1, 2, 3, … per execution; resume after it with `Last-Event-ID`.")
    at: datetime
    kind: EventKind = Field(description="`status`, `progress` or `log`; also the SSE `event` name.")
    data: dict[str, Any] = Field(
        description="`{status, attempt, worker, error}`, `{percent, message}` or `{level, message}`."
    )


class ExecutionsPublic(BaseModel):
    executions: list[ExecutionPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class ExecutionBatchPublic(BaseModel):
    executions: list[ExecutionPublic]


class CommandPublic(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]
    result_type: str


class PluginPublic(BaseModel):
    name: str
    description: str
    version: str
    queue: str
    commands: list[CommandPublic]


class PluginsPublic(BaseModel):
    plugins: list[PluginPublic]


class AgentExecute(BaseModel):
    """The compatibility request: a slash command and its params."""

    command: str = Field(min_length=2, max_length=130, pattern=r"^/", examples=["/latest"])
    params: Params = Field(default_factory=dict)
    plugin: Name | None = Field(None, description="Only needed when several plugins own the command.")


class AgentResult(BaseModel):
    success: bool
    data: Any
    type: str
    plugin: str
    command: str
    execution_id: str
    status: ExecutionStatus


MissedPolicy = Literal["skip", "catch_up"]
OverlapPolicy = Literal["allow", "skip"]
MAX_INTERVAL_S = 366 * 24 * 3600
MAX_JITTER_S = 24 * 3600
JITTER_DOC = (
    "Spread each fire uniformly over [slot, slot + jitter_s] seconds, the same time for a "
    "given slot whichever beat fires it; capped, as Temporal caps it, at the time until the "
    "next slot. `next_fire_times` still lists the slots."
)


class ScheduleFields(WebhookFields):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(None, max_length=128, examples=["*/15 * * * *"], description="5-field cron.")
    interval_s: float | None = Field(None, ge=1, le=MAX_INTERVAL_S, description="Seconds between runs.")
    timezone: str = Field("UTC", max_length=64, examples=["Europe/Berlin"], description="IANA zone for cron.")
    enabled: bool = True
    missed_policy: MissedPolicy = Field(
        "skip",
        description="After downtime: `skip` runs once if overdue, `catch_up` runs each missed slot (bounded).",
    )
    overlap_policy: OverlapPolicy = Field(
        "allow", description="`skip` a slot while the previous run of this schedule is still live."
    )
    priority: int = Field(DEFAULT_PRIORITY, ge=0, le=9)
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)
    max_retries: int | None = Field(None, ge=0, le=100)
    jitter_s: float | None = Field(None, ge=0, le=MAX_JITTER_S, description=JITTER_DOC)
    concurrency_key: ConcurrencyKey | None = None


class ScheduleCreate(ScheduleFields):
    name: str = Field(min_length=1, max_length=128, examples=["morning-news"])
    plugin: Name
    command: Name
    params: Params = Field(default_factory=dict)


# What a stored schedule always has: a PATCH leaves them out to keep them, never sets them to null.
NOT_NULL_ON_UPDATE = (
    "name", "plugin", "command", "params", "timezone", "enabled", "missed_policy", "overlap_policy", "priority",
)  # fmt: skip


class ScheduleUpdate(BaseModel):
    """Only the fields given change; ``null`` clears the optional ones (``SkipJsonSchema``:
    the others are not nullable in the OpenAPI document either)."""

    model_config = ConfigDict(extra="forbid")

    name: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=128)
    plugin: Name | SkipJsonSchema[None] = None
    command: Name | SkipJsonSchema[None] = None
    params: Params | SkipJsonSchema[None] = None
    cron: str | None = Field(None, max_length=128)
    interval_s: float | None = Field(None, ge=1, le=MAX_INTERVAL_S)
    timezone: str | SkipJsonSchema[None] = Field(None, max_length=64)
    enabled: bool | SkipJsonSchema[None] = None
    missed_policy: MissedPolicy | SkipJsonSchema[None] = None
    overlap_policy: OverlapPolicy | SkipJsonSchema[None] = None
    priority: int | SkipJsonSchema[None] = Field(None, ge=0, le=9)
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)
    max_retries: int | None = Field(None, ge=0, le=100)
    jitter_s: float | None = Field(None, ge=0, le=MAX_JITTER_S)
    webhook: WebhookUrl | None = None
    webhook_events: WebhookEvents | None = None
    concurrency_key: ConcurrencyKey | None = None

    @field_validator(*NOT_NULL_ON_UPDATE, mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Only given values reach here (defaults are not validated): an explicit null.
        if value is None:
            raise ValueError(f"`{info.field_name}` cannot be null; leave it out to keep it as it is")
        return value


class SchedulePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    plugin: str
    command: str
    params: dict[str, Any]
    cron: str | None
    interval_s: float | None
    timezone: str
    enabled: bool
    missed_policy: MissedPolicy
    overlap_policy: OverlapPolicy
    priority: int
    timeout_s: float | None
    max_retries: int | None
    jitter_s: float | None
    webhook: str | None = Field(None, validation_alias=AliasChoices("webhook_url", "webhook"))
    webhook_events: Annotated[list[str], BeforeValidator(event_names)] = Field(default_factory=list)
    concurrency_key: str | None = None
    next_run_at: datetime | None
    next_fire_at: datetime | None = Field(
        description="When beat fires `next_run_at`: the slot plus its jitter, before the next slot."
    )
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    next_fire_times: list[datetime] = Field(default_factory=list, description="The next 5, in UTC.")


class SchedulesPublic(BaseModel):
    schedules: list[SchedulePublic]
    next_cursor: str | None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, examples=["ci-robot"])


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    max_running: int | None = Field(None, description="Its executions running at once; null: no limit.")


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret; shown this once, never again.")


class ApiKeysPublic(BaseModel):
    keys: list[ApiKeyPublic]
