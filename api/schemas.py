"""Request and response bodies of the HTTP API."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from core.models import ExecutionStatus
from core.settings import MAX_TIMEOUT_S

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255)]
MAX_BATCH = 1000


class ExecutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: Name = Field(examples=["echo"])
    command: Name = Field(examples=["echo"])
    params: dict[str, Any] = Field(default_factory=dict, examples=[{"hello": "world"}])
    priority: int = Field(5, ge=0, le=9, description="0–9, 9 runs first.")
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S, description="Defaults to the server's.")
    max_retries: int | None = Field(None, ge=0, le=100, description="Retries after the first attempt.")
    idempotency_key: IdempotencyKey | None = Field(
        None, description="Batch items only; a single submit takes the Idempotency-Key header."
    )


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
    idempotency_key: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


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
    params: dict[str, Any] = Field(default_factory=dict)
    plugin: Name | None = Field(None, description="Only needed when several plugins own the command.")


class AgentResult(BaseModel):
    success: bool
    data: Any
    type: str
    plugin: str
    command: str
    execution_id: str
    status: ExecutionStatus
