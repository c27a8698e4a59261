"""``/v1/keys``: API keys, managed with the admin key."""

from fastapi import APIRouter, Response

from agentq.core import keys, queue, store
from agentq.core.errors import NotFound
from api.auth import AdminDep
from api.jsonbody import JSONRoute
from api.limit_schemas import ApiKeyUpdate
from api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeysPublic

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=JSONRoute)


@router.post("", status_code=201)
def create_key(key_in: ApiKeyCreate, response: Response, _: AdminDep) -> ApiKeyCreated:
    """Create a key; its secret is in this answer only."""
    key, secret = keys.create(key_in.name)
    response.headers["Location"] = f"/v1/keys/{key.id}"
    return ApiKeyCreated(**ApiKeyPublic.model_validate(key).model_dump(), key=secret)


@router.get("")
def read_keys(_: AdminDep) -> ApiKeysPublic:
    """Every key, revoked ones included; never their secrets."""
    return ApiKeysPublic(keys=[ApiKeyPublic.model_validate(k) for k in store.list_api_keys()])


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, _: AdminDep) -> None:
    """Revoke a key; it stops working within AGENTQ_KEY_CACHE_S."""
    if store.revoke_api_key(key_id) is None:
        raise NotFound(f"No API key with id {key_id!r}.")


@router.patch("/{key_id}")
def update_key(key_id: str, key_in: ApiKeyUpdate, _: AdminDep) -> ApiKeyPublic:
    """Set how many of a key's executions may run at once (`max_running`; null: no limit)."""
    key, admitted = store.set_key_max_running(key_id, key_in.max_running)
    if key is None:
        raise NotFound(f"No API key with id {key_id!r}.")
    store.forget_limits()
    queue.publish(admitted)
    return ApiKeyPublic.model_validate(key)
