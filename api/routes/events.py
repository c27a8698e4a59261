"""``/v1/executions/{id}/events``: an execution's event log as Server-Sent Events."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from agentq.core.models import Execution
from agentq.core.settings import settings
from api import polling
from api.auth import OwnerDep
from api.onloop import LoopRoute
from api.schemas import ExecutionEventPublic

router = APIRouter(prefix="/v1/executions", tags=["executions"], route_class=LoopRoute)

STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: each message has `id` = seq, `event` = kind and "
        "`data` = the event as JSON (ExecutionEventPublic); `: heartbeat` comments in between.",
        "content": {"text/event-stream": {}},
    }
}


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat")


async def _messages(row: Execution, after_seq: int) -> AsyncIterator[ServerSentEvent]:
    async for event in polling.follow(row, after_seq):
        body = ExecutionEventPublic.model_validate(event).model_dump_json()
        yield ServerSentEvent(data=body, id=str(event.seq), event=event.kind.value)


@router.get("/{execution_id}/events", response_class=EventSourceResponse, responses=STREAM)
async def read_events(
    execution_id: str,
    owner: OwnerDep,
    last_event_id: Annotated[
        int | None, Header(ge=0, description="Resume after this event (the last `id` received).")
    ] = None,
) -> EventSourceResponse:
    """Follow an execution: its events so far, then live ones, until its terminal status."""
    row = await polling.read(execution_id, owner)  # another owner's id is a 404, before the stream
    return EventSourceResponse(
        _messages(row, last_event_id or 0),
        ping=settings.events_heartbeat_s,
        ping_message_factory=_heartbeat,
    )
