"""Request and response bodies of concurrency limits: a concurrency key's, an API key's."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ConcurrencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$",
        description="Executions sharing it count against its limit (`PUT /v1/limits/{concurrency_key}`).",
        examples=["tenant-42"],
    ),
]
MaxRunning = Annotated[int, Field(ge=1, le=1_000_000, description="How many may run at once.")]


class ApiKeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_running: MaxRunning | None = Field(description="Its executions running at once; null: no limit.")


class LimitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_running: MaxRunning


class LimitPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    concurrency_key: str = Field(validation_alias="name")
    max_running: int
    running: int = Field(description="Its executions running (admitted) now.")
    waiting: int = Field(description="Its executions held back now (by a limit or their `run_at`).")
    updated_at: datetime


class LimitsPublic(BaseModel):
    limits: list[LimitPublic]
