"""``/v1/executions``: submit, batch, poll (with long-poll), list, cancel."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from agentq.core import db, notify, queue, store
from agentq.core.models import Execution, ExecutionStatus
from agentq.core.settings import settings
from api import polling
from api.auth import OwnerDep
from api.jsonbody import JSONRoute
from api.schemas import (
    Cursor,
    ExecutionBatchCreate,
    ExecutionBatchPublic,
    ExecutionCreate,
    ExecutionPublic,
    ExecutionsPublic,
    IdempotencyKey,
)
from api.submit import Single, submit, submit_single

router = APIRouter(prefix="/v1/executions", tags=["executions"], route_class=JSONRoute)


@router.post("", status_code=202)
async def create_execution(
    execution_in: ExecutionCreate,
    response: Response,
    owner: OwnerDep,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> ExecutionPublic:
    """Queue an agent execution; an `Idempotency-Key` seen before returns its execution."""
    submitted = await submit_single(Single(execution_in, owner, idempotency_key))
    response.headers["Location"] = f"/v1/executions/{submitted.execution.id}"
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return ExecutionPublic.model_validate(submitted.execution)


@router.post("/batch", status_code=202)
def create_executions(batch_in: ExecutionBatchCreate, owner: OwnerDep) -> ExecutionBatchPublic:
    """Queue up to 1,000 executions in one transaction; answers in request order."""
    submitted = submit(batch_in.executions, owner, batch=True)
    return ExecutionBatchPublic(executions=[ExecutionPublic.model_validate(s.execution) for s in submitted])


@router.get("/{execution_id}")
async def read_execution(
    execution_id: str,
    owner: OwnerDep,
    wait: Annotated[
        float, Query(ge=0, le=settings.max_wait_s, description="Long-poll up to this many seconds.")
    ] = 0,
) -> ExecutionPublic:
    """Poll an execution; `?wait=S` returns as soon as it is terminal, or after S seconds."""
    row = await (
        polling.wait_terminal(execution_id, owner, wait) if wait else polling.read(execution_id, owner)
    )
    return ExecutionPublic.model_validate(row)


@router.get("")
def read_executions(
    owner: OwnerDep,
    status: ExecutionStatus | None = None,
    plugin: Annotated[str | None, Query(max_length=64)] = None,
    schedule_id: Annotated[str | None, Query(max_length=26)] = None,
    waiting: Annotated[
        bool | None, Query(description="`true`: only those held back (`waiting_on`); `false`: the others.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> ExecutionsPublic:
    """List executions, newest first, filtered by status, plugin, schedule or being held."""
    rows, next_cursor = store.list_executions(
        owner,
        status=status,
        plugin=plugin,
        schedule_id=schedule_id,
        waiting=waiting,
        limit=limit,
        cursor=cursor,
    )
    return ExecutionsPublic(
        executions=[ExecutionPublic.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post("/{execution_id}/cancel")
async def cancel_execution(execution_id: str, owner: OwnerDep) -> ExecutionPublic:
    """Cancel a queued or running execution: a queued one never starts, a running one is stopped."""
    row = await db.run(cancel, execution_id, owner)
    return ExecutionPublic.model_validate(row)


def cancel(execution_id: str, owner: str) -> Execution:
    """Cancel an execution of `owner`'s and wake whoever waits on it (the API and the console)."""
    row, admitted = store.cancel_execution(execution_id, owner)
    notify.publish(row.id, row.status)  # wakes long-polls and event streams
    queue.publish(admitted)  # held executions that took the slot it freed
    return row
