"""Request and response bodies of webhooks: subscriptions, secrets, deliveries."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agentq.core.outbound import url_refusal

EndpointEvent = Literal[
    "execution.started",
    "execution.succeeded",
    "execution.failed",
    "execution.timed_out",
    "execution.cancelled",
]
ALL_EVENTS: list[EndpointEvent] = [
    "execution.succeeded",
    "execution.failed",
    "execution.timed_out",
    "execution.cancelled",
    "execution.started",
]
ExecutionWebhookEvent = Literal["started", "completed"]
DEFAULT_EVENTS: list[ExecutionWebhookEvent] = ["completed"]


def _allowed(url: str) -> str:
    # Names are resolved when the request is sent (and pinned); literal addresses and
    # loopback names are refused at once.
    if why := url_refusal(url, resolve=False):
        raise ValueError(f"webhook URL refused: {why}")
    return url


def _allowed_resolved(url: str) -> str:
    if why := url_refusal(url, resolve=True):
        raise ValueError(f"webhook URL refused: {why}")
    return url


WebhookUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_allowed)]
EndpointUrl = Annotated[
    str,
    Field(min_length=1, max_length=2048, examples=["https://example.com/hooks"]),
    AfterValidator(_allowed_resolved),
]
WebhookEvents = Annotated[
    list[ExecutionWebhookEvent],
    Field(
        min_length=1,
        max_length=2,
        description="What the execution's own `webhook` is sent: `started`, `completed` (any terminal status).",
    ),
]


class WebhookFields(BaseModel):
    """An execution's own webhook (also a schedule's, which its executions inherit)."""

    webhook: WebhookUrl | None = Field(
        None, description="An absolute http(s) URL: signed with the key's default secret."
    )
    webhook_events: WebhookEvents = Field(default_factory=lambda: list(DEFAULT_EVENTS))


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: EndpointUrl
    events: list[EndpointEvent] = Field(default_factory=lambda: list(ALL_EVENTS), min_length=1)
    description: str = Field("", max_length=255)


class EndpointUpdate(BaseModel):
    """Only the fields given change; `enabled: true` turns a disabled endpoint back on."""

    model_config = ConfigDict(extra="forbid")

    url: EndpointUrl | None = None
    events: list[EndpointEvent] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=255)
    enabled: bool | None = None


class EndpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled: 410 Gone, or failing for days.")
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointPublic):
    secret: str = Field(description="`whsec_…`: verifies its deliveries; shown in this answer only.")


class EndpointsPublic(BaseModel):
    webhooks: list[EndpointPublic]
    next_cursor: str | None


class SecretPublic(BaseModel):
    key: str = Field(description="`whsec_…`")


class AttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    at: datetime
    status_code: int | None = Field(description="The HTTP status; null when there was no answer.")
    error: str | None = Field(description="The connection error, when there was no answer.")
    duration_ms: float
    response: str | None = Field(description="The first KiB of the response body.")
    next_attempt_at: datetime | None = Field(description="When the next attempt was due after this one.")


class DeliveryPublic(BaseModel):
    id: str
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    event: str
    execution_id: str
    endpoint_id: str | None = Field(description="Null: the execution's own `webhook`.")
    status: Literal["pending", "succeeded", "failed"]
    attempts: list[AttemptPublic]
    next_attempt_at: datetime | None = Field(description="When it is due again, while pending.")
    created_at: datetime
    delivered_at: datetime | None


class DeliveriesPublic(BaseModel):
    deliveries: list[DeliveryPublic]
    next_cursor: str | None
