"""``/v1/executions/…/retry``: run failed, timed-out or cancelled executions again."""

from typing import Annotated

from fastapi import APIRouter, Header, Response

from agentq.core import store
from agentq.core.models import ExecutionStatus
from api.auth import OwnerDep
from api.jsonbody import JSONRoute
from api.schemas import ExecutionBatchPublic, ExecutionPublic, ExecutionRetryFilter, IdempotencyKey
from api.submit import resubmit, resubmit_many

router = APIRouter(prefix="/v1/executions", tags=["executions"], route_class=JSONRoute)


@router.post("/retry", status_code=202)
def retry_executions(
    filter_in: ExecutionRetryFilter,
    response: Response,
    owner: OwnerDep,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> ExecutionBatchPublic:
    """Run the key's failed, timed-out or cancelled executions that match again, oldest first."""
    selection = store.RetryFilter(
        statuses=[ExecutionStatus(s) for s in filter_in.status],
        plugin=filter_in.plugin,
        created_after=filter_in.created_after,
        created_before=filter_in.created_before,
        limit=filter_in.limit,
    )
    submitted = resubmit_many(selection, owner, idempotency_key=idempotency_key)
    if submitted and not any(s.created for s in submitted):
        response.headers["Idempotent-Replayed"] = "true"
    return ExecutionBatchPublic(executions=[ExecutionPublic.model_validate(s.execution) for s in submitted])


@router.post("/{execution_id}/retry", status_code=202)
def retry_execution(
    execution_id: str,
    response: Response,
    owner: OwnerDep,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> ExecutionPublic:
    """Run a failed, timed-out or cancelled execution again, as a new execution."""
    submitted = resubmit(execution_id, owner, idempotency_key=idempotency_key)
    response.headers["Location"] = f"/v1/executions/{submitted.execution.id}"
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return ExecutionPublic.model_validate(submitted.execution)
