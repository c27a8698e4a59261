"""``/v1/limits``: concurrency keys' limits, each owned by the API key that set it."""

from typing import Annotated

from fastapi import APIRouter, Path

from agentq.core import db, queue, store
from agentq.core.errors import NotFound
from api.auth import OwnerDep
from api.jsonbody import JSONRoute
from api.limit_schemas import ConcurrencyKey, LimitPublic, LimitsPublic, LimitUpdate

router = APIRouter(prefix="/v1/limits", tags=["limits"], route_class=JSONRoute)

KeyPath = Annotated[ConcurrencyKey, Path()]


@router.get("")
def read_limits(owner: OwnerDep) -> LimitsPublic:
    """This key's limits, with how many of their executions run and wait now."""
    return LimitsPublic(limits=[LimitPublic.model_validate(s) for s in store.list_limits(owner)])


@router.put("/{concurrency_key}")
async def put_limit(concurrency_key: KeyPath, limit_in: LimitUpdate, owner: OwnerDep) -> LimitPublic:
    """Set how many executions with this `concurrency_key` may run at once; held ones that
    now fit start at once."""

    def put() -> store.LimitState:
        state, admitted = store.put_limit(owner, concurrency_key, limit_in.max_running)
        queue.publish(admitted)
        return state

    return LimitPublic.model_validate(await db.run(put))


@router.delete("/{concurrency_key}", status_code=204)
async def delete_limit(concurrency_key: KeyPath, owner: OwnerDep) -> None:
    """Remove the limit: executions with this key then run as if they had none."""

    def remove() -> bool:
        existed, admitted = store.delete_limit(owner, concurrency_key)
        queue.publish(admitted)
        return existed

    if not await db.run(remove):
        raise NotFound(f"No limit on concurrency key {concurrency_key!r}; `GET /v1/limits` lists them.")
