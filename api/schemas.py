"""Request and response bodies of the HTTP API."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agentq.core.models import DEFAULT_PRIORITY, EventKind, ExecutionStatus
from agentq.core.public import ExecutionPublic as ExecutionPublic
from agentq.core.settings import MAX_TIMEOUT_S, settings
from api.limit_schemas import ConcurrencyKey
from api.webhook_schemas import WebhookFields

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
