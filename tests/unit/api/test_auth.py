"""Keys, tenants and the rate limit, in process: who may see and do what."""

import time

import pytest

from agentq.core.settings import settings
from tests.unit.api.conftest import ADMIN_KEY, PROBLEM, LocalAPI, bearer


def test_a_key_sees_only_its_own_executions_and_schedules(local: LocalAPI) -> None:
    _, key_a = local.new_key("tenant-a")
    _, key_b = local.new_key("tenant-b")
    a, b = local.client_for(key_a), local.client_for(key_b)
    body = {"plugin": "echo", "command": "echo", "params": {"secret": "a"}}
    mine = a.post("/v1/executions", json=body, headers={"Idempotency-Key": "same-key"}).json()
    theirs = b.post("/v1/executions", json=body, headers={"Idempotency-Key": "same-key"}).json()
    schedule = a.post(
        "/v1/schedules", json={"name": "shared-name", "plugin": "echo", "command": "echo", "interval_s": 3600}
    ).json()

    assert mine["id"] != theirs["id"]  # idempotency keys are per tenant
    assert a.get(f"/v1/executions/{mine['id']}").status_code == 200
    for response in (
        b.get(f"/v1/executions/{mine['id']}"),
        b.get(f"/v1/executions/{mine['id']}", params={"wait": 1}),
        b.post(f"/v1/executions/{mine['id']}/cancel"),
        b.get(f"/v1/schedules/{schedule['id']}"),
        b.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False}),
        b.post(f"/v1/schedules/{schedule['id']}/run"),
        b.delete(f"/v1/schedules/{schedule['id']}"),
        local.client.get(f"/v1/executions/{mine['id']}"),  # the admin is a tenant too
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
    assert [e["id"] for e in b.get("/v1/executions").json()["executions"]] == [theirs["id"]]
    assert b.get("/v1/schedules").json()["schedules"] == []
    assert (
        b.post(
            "/v1/schedules",
            json={"name": "shared-name", "plugin": "echo", "command": "echo", "interval_s": 3600},
        ).status_code
        == 201
    )  # schedule names are per tenant
    # b's cancel did nothing: no worker runs it here, so it is still queued.
    assert a.get(f"/v1/executions/{mine['id']}").json()["status"] == "queued"


def test_requests_without_a_valid_key_are_401(local: LocalAPI) -> None:
    anonymous = local.client_for(None)
    for response in (
        anonymous.get("/v1/executions"),
        anonymous.post("/v1/executions", json={"plugin": "echo", "command": "echo"}),
        anonymous.get("/v1/plugins"),
        anonymous.post("/api/agent/execute", json={"command": "/echo"}),
        anonymous.get("/v1/executions", headers={"Authorization": "Bearer aq_not-a-key"}),
        anonymous.get("/v1/executions", headers={"Authorization": f"Basic {ADMIN_KEY}"}),
    ):
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.get("/healthz").status_code == 200


def test_rate_limit_per_key_is_429_with_retry_after(local: LocalAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = local.new_key("chatty")
    _, other = local.new_key("quiet")
    # From here on, 1 request/s with a burst of 3.
    monkeypatch.setattr(settings, "rate_limit_per_s", 1.0)
    monkeypatch.setattr(settings, "rate_limit_burst", 3)
    client = local.client_for(None)
    codes = [client.get("/v1/executions", headers=bearer(key)).status_code for _ in range(6)]
    limited = client.get("/v1/executions", headers=bearer(key))
    unaffected = client.get("/v1/executions", headers=bearer(other))
    time.sleep(float(limited.headers["Retry-After"]) + 0.2)
    recovered = client.get("/v1/executions", headers=bearer(key))

    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == PROBLEM
    assert int(limited.headers["Retry-After"]) >= 1
    assert unaffected.status_code == 200  # one bucket per key
    assert recovered.status_code == 200
