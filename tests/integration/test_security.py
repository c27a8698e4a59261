"""Keys, tenants and limits, against the real API and worker."""

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from agentq.core import queue, store
from tests.integration.conftest import ADMIN_KEY, Stack, bearer
from tests.integration.processes import Proc, child_env, free_port, start_api, start_worker, wait_until

PROBLEM = "application/problem+json"


def new_key(stack: Stack, name: str) -> tuple[str, str]:
    response = stack.client.post("/v1/keys", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["key"]


def client_for(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers=bearer(key), timeout=30)


def test_a_key_sees_only_its_own_executions_and_schedules(stack: Stack) -> None:
    _, key_a = new_key(stack, "tenant-a")
    _, key_b = new_key(stack, "tenant-b")
    a, b = client_for(stack, key_a), client_for(stack, key_b)
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
        stack.client.get(f"/v1/executions/{mine['id']}"),  # the admin is a tenant too
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
    assert a.get(f"/v1/executions/{mine['id']}", params={"wait": 30}).json()["status"] == "succeeded"


def test_requests_without_a_valid_key_are_401(stack: Stack) -> None:
    anonymous = httpx.Client(base_url=stack.url, timeout=10)
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


def test_revoked_key_stops_working(stack: Stack) -> None:
    key_id, key = new_key(stack, "short-lived")
    client = client_for(stack, key)
    assert client.get("/v1/executions").status_code == 200

    assert stack.client.delete(f"/v1/keys/{key_id}").status_code == 204

    wait_until(lambda: client.get("/v1/executions").status_code == 401, 10, "the revocation")
    listed = {k["id"]: k for k in stack.client.get("/v1/keys").json()["keys"]}
    assert listed[key_id]["revoked_at"] is not None
    assert "key" not in listed[key_id]  # secrets are shown once, never listed


def test_only_the_admin_manages_keys(stack: Stack) -> None:
    _, key = new_key(stack, "plain")
    client = client_for(stack, key)

    assert client.post("/v1/keys", json={"name": "escalate"}).status_code == 403
    assert client.get("/v1/keys").status_code == 403


def test_body_over_the_cap_is_413(stack: Stack) -> None:
    big = json.dumps({"plugin": "echo", "command": "echo", "params": {"x": "y" * (1024 * 1024)}}).encode()

    declared = stack.client.post("/v1/executions", content=big, headers={"Content-Type": "application/json"})
    chunked = stack.client.post(
        "/v1/executions", content=iter([big[:1000], big[1000:]]), headers={"Content-Type": "application/json"}
    )

    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM


def test_params_depth_size_and_string_lengths_are_422(stack: Stack) -> None:
    deep: dict = {}  # type: ignore[type-arg]
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    cases = [
        {"plugin": "echo", "command": "echo", "params": deep},
        {"plugin": "echo", "command": "echo", "params": {"x": "y" * (300 * 1024)}},
        {"plugin": "e" * 65, "command": "echo"},
        {"plugin": "echo", "command": "echo", "idempotency_key": "k" * 256},
    ]
    for body in cases:
        response = stack.client.post("/v1/executions", json=body)
        assert response.status_code == 422, (str(body)[:80], response.text)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"]
    long_key = stack.client.post(
        "/v1/executions", json={"plugin": "echo", "command": "echo"}, headers={"Idempotency-Key": "k" * 256}
    )
    assert long_key.status_code == 422


@pytest.fixture
def strict_api(stack: Stack) -> Iterator[str]:
    """A second API process on the same stack, limited to 1 request/s with a burst of 3."""
    port = free_port()
    env = child_env(stack.env, AGENTQ_RATE_LIMIT_PER_S="1", AGENTQ_RATE_LIMIT_BURST="3")
    proc = start_api(env, stack.log_dir, port)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def test_rate_limit_per_key_is_429_with_retry_after(stack: Stack, strict_api: str) -> None:
    _, key = new_key(stack, "chatty")
    _, other = new_key(stack, "quiet")
    with httpx.Client(base_url=strict_api, timeout=10) as client:
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


@pytest.fixture
def guarded_worker(stack: Stack) -> Iterator[tuple[Proc, str]]:
    """A worker that may not reach private addresses, on a queue of its own."""
    name = f"agentq.guarded.{time.time_ns()}"
    env = child_env(stack.env, AGENTQ_OUTBOUND_ALLOW_PRIVATE="0")
    proc = start_worker(env, stack.log_dir, f"guarded-{time.time_ns()}", queues=name)
    wait_until(lambda: "ready." in proc.log(), 60, "the guarded worker")
    yield proc, name
    proc.stop()


def test_outbound_guard_refuses_private_addresses(
    stack: Stack, outside: str, guarded_worker: tuple[Proc, str]
) -> None:
    _, name = guarded_worker
    specs = [
        store.NewExecution("http", "get", {"url": f"{outside}/hello"}, name, 5, 30, 0),
        store.NewExecution("news", "latest", {"feed_url": f"{outside}/feed.xml"}, name, 5, 30, 0),
        store.NewExecution(
            "http", "get", {"url": "http://169.254.169.254/latest/meta-data/"}, name, 5, 30, 0
        ),
    ]
    submitted = store.create_executions(specs)
    queue.enqueue([s.execution for s in submitted])

    for s in submitted:
        done = stack.wait(s.execution.id)
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "PermanentError"
        assert "AGENTQ_OUTBOUND_ALLOW_PRIVATE" in done["error"]["message"]
