"""``/v1/webhooks``: subscriptions, secrets and deliveries; and an execution's deliveries."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from agentq.core import queue, store, webhook_secrets
from agentq.core.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from api.auth import OwnerDep
from api.jsonbody import JSONRoute
from api.schemas import Cursor
from api.webhook_schemas import (
    AttemptPublic,
    DeliveriesPublic,
    DeliveryPublic,
    EndpointCreate,
    EndpointCreated,
    EndpointPublic,
    EndpointsPublic,
    EndpointUpdate,
    SecretPublic,
)

router = APIRouter(tags=["webhooks"], route_class=JSONRoute)
# After a rotation the old secret signs too, this long, as the specification allows.
ROTATION_OVERLAP = timedelta(hours=24)
Limit = Annotated[int, Query(ge=1, le=500)]


def _delivery(row: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        webhook_id=f"msg_{row.id}",
        event=row.event,
        execution_id=row.execution_id,
        endpoint_id=row.endpoint_id,
        status=row.status.value,
        attempts=[AttemptPublic.model_validate(a) for a in attempts],
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


@router.post("/v1/webhooks", status_code=201)
def create_webhook(endpoint_in: EndpointCreate, response: Response, owner: OwnerDep) -> EndpointCreated:
    """Subscribe a URL to events of every execution of this key; the secret is shown once."""
    secret = webhook_secrets.new_secret()
    now = utcnow()
    endpoint = store.webhooks.create_endpoint(
        WebhookEndpoint(
            id=store.new_id(),
            owner=owner,
            url=endpoint_in.url,
            events=endpoint_in.events,
            description=endpoint_in.description,
            secret=webhook_secrets.encrypt(secret),
            enabled=True,
            created_at=now,
            updated_at=now,
        )
    )
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return EndpointCreated(**EndpointPublic.model_validate(endpoint).model_dump(), secret=secret)


@router.get("/v1/webhooks")
def read_webhooks(owner: OwnerDep, limit: Limit = 50, cursor: Cursor = None) -> EndpointsPublic:
    """List this key's endpoints, newest first."""
    rows, next_cursor = store.webhooks.list_endpoints(owner, limit=limit, cursor=cursor)
    return EndpointsPublic(webhooks=[EndpointPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/v1/webhooks/default/secret")
def read_default_secret(owner: OwnerDep) -> SecretPublic:
    """The secret that signs this key's per-execution webhooks (`webhook` on a submission)."""
    made = webhook_secrets.encrypt(webhook_secrets.new_secret())
    return SecretPublic(key=webhook_secrets.decrypt(store.webhooks.key_secret(owner, made)))


@router.get("/v1/webhooks/{endpoint_id}")
def read_webhook(endpoint_id: str, owner: OwnerDep) -> EndpointPublic:
    """An endpoint, with whether it is enabled and why not."""
    return EndpointPublic.model_validate(store.webhooks.get_endpoint(endpoint_id, owner))


@router.patch("/v1/webhooks/{endpoint_id}")
def update_webhook(endpoint_id: str, endpoint_in: EndpointUpdate, owner: OwnerDep) -> EndpointPublic:
    """Change an endpoint; `enabled: true` turns a disabled one back on."""
    changes = endpoint_in.model_dump(exclude_unset=True)
    return EndpointPublic.model_validate(store.webhooks.update_endpoint(endpoint_id, owner, changes))


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: str, owner: OwnerDep) -> None:
    """Delete an endpoint; deliveries still due to it fail."""
    store.webhooks.delete_endpoint(endpoint_id, owner)


@router.post("/v1/webhooks/{endpoint_id}/rotate-secret")
def rotate_secret(endpoint_id: str, owner: OwnerDep) -> SecretPublic:
    """A new secret; for 24 h deliveries are signed with the old one too."""
    current = store.webhooks.get_endpoint(endpoint_id, owner)
    secret = webhook_secrets.new_secret()
    changes = {
        "secret": webhook_secrets.encrypt(secret),
        "previous_secret": current.secret,
        "previous_secret_until": utcnow() + ROTATION_OVERLAP,
    }
    store.webhooks.update_endpoint(endpoint_id, owner, changes)
    return SecretPublic(key=secret)


@router.get("/v1/webhooks/{endpoint_id}/deliveries")
def read_webhook_deliveries(
    endpoint_id: str, owner: OwnerDep, limit: Limit = 50, cursor: Cursor = None
) -> DeliveriesPublic:
    """An endpoint's deliveries, newest first, each with its attempts."""
    store.webhooks.get_endpoint(endpoint_id, owner)
    rows, next_cursor = store.webhooks.list_deliveries(
        owner, endpoint_id=endpoint_id, limit=limit, cursor=cursor
    )
    return DeliveriesPublic(deliveries=[_delivery(*r) for r in rows], next_cursor=next_cursor)


@router.post("/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry", status_code=202)
def retry_webhook_delivery(endpoint_id: str, delivery_id: str, owner: OwnerDep) -> None:
    """Send a delivery again now, whatever became of it."""
    queue.publish_deliveries([store.webhooks.retry_delivery(owner, endpoint_id, delivery_id)])


@router.get("/v1/executions/{execution_id}/deliveries")
def read_execution_deliveries(
    execution_id: str, owner: OwnerDep, limit: Limit = 50, cursor: Cursor = None
) -> DeliveriesPublic:
    """An execution's webhook deliveries, newest first, each with its attempts."""
    store.get_execution(execution_id, owner)
    rows, next_cursor = store.webhooks.list_deliveries(
        owner, execution_id=execution_id, limit=limit, cursor=cursor
    )
    return DeliveriesPublic(deliveries=[_delivery(*r) for r in rows], next_cursor=next_cursor)
