"""Request and response bodies of schedules (``/v1/schedules``)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from agentq.core.models import DEFAULT_PRIORITY
from agentq.core.public import event_names
from agentq.core.settings import MAX_TIMEOUT_S
from api.limit_schemas import ConcurrencyKey
from api.schemas import Name, Params
from api.webhook_schemas import WebhookEvents, WebhookFields, WebhookUrl

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
