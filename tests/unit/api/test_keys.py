"""``/v1/keys`` in process: made and revoked by the admin only."""

from tests.integration.processes import wait_until
from tests.unit.api.conftest import LocalAPI


def test_revoked_key_stops_working(local: LocalAPI) -> None:
    key_id, key = local.new_key("short-lived")
    client = local.client_for(key)
    assert client.get("/v1/executions").status_code == 200

    assert local.client.delete(f"/v1/keys/{key_id}").status_code == 204

    wait_until(lambda: client.get("/v1/executions").status_code == 401, 10, "the revocation")
    listed = {k["id"]: k for k in local.client.get("/v1/keys").json()["keys"]}
    assert listed[key_id]["revoked_at"] is not None
    assert "key" not in listed[key_id]  # secrets are shown once, never listed


def test_only_the_admin_manages_keys(local: LocalAPI) -> None:
    _, key = local.new_key("plain")
    client = local.client_for(key)

    assert client.post("/v1/keys", json={"name": "escalate"}).status_code == 403
    assert client.get("/v1/keys").status_code == 403
