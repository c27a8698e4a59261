"""An execution as clients see it: the body of ``GET /v1/executions/{id}``, and the
``data`` of a webhook (sent by workers, which import no API code)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from agentq.core.models import ExecutionStatus, WebhookEvents

# ``webhook_events`` of a request and of an answer: what an execution's own webhook is sent.
WEBHOOK_EVENT_NAMES = {"started": WebhookEvents.STARTED, "completed": WebhookEvents.COMPLETED}


def event_names(flags: Any) -> Any:
    """The names of an execution's ``webhook_events`` bits (a list passes as it is)."""
    if isinstance(flags, int):
        return [name for name, flag in WEBHOOK_EVENT_NAMES.items() if flags & flag]
    return flags


def event_flags(names: Sequence[str]) -> int:
    return sum(int(WEBHOOK_EVENT_NAMES[name]) for name in set(names))


def webhook_columns(url: str | None, names: Sequence[str]) -> dict[str, Any]:
    """The row's columns of a request's ``webhook`` and ``webhook_events``."""
    return {"webhook_url": url, "webhook_events": event_flags(names) if url else 0}


class ExecutionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    plugin: str
    command: str
    params: dict[str, Any]
    status: ExecutionStatus
    result: Any
    error: dict[str, Any] | None
    progress: dict[str, Any] | None
    attempts: int
    max_retries: int
    priority: int
    timeout_s: float
    schedule_id: str | None
    slot_at: datetime | None
    idempotency_key: str | None
    retry_of: str | None = Field(description="The execution this one runs again (a retry).")
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    webhook: str | None = Field(
        None, validation_alias=AliasChoices("webhook_url", "webhook"), description="Its own webhook URL."
    )
    webhook_events: Annotated[list[str], BeforeValidator(event_names)] = Field(
        default_factory=list, description="What its own webhook is sent: `started`, `completed`."
    )
    concurrency_key: str | None = None
    run_at: datetime | None = None
    waiting_on: list[str] | None = Field(
        None,
        description="While `queued` and held back: `run_at`, or the full limits "
        "(`api_key`, `plugin:<name>`, `concurrency_key:<name>`).",
    )
