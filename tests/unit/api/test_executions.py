"""``/v1/executions`` in process: what the API answers and writes, with no worker to run it."""

import time
from pathlib import Path

from tests.unit.api.conftest import PROBLEM, LocalAPI


def test_a_submission_is_answered_with_the_row_as_stored(local: LocalAPI, tmp_path: Path) -> None:
    # No worker: the rows stay as written until cancelled.
    params = {"path": str(tmp_path / "never.txt")}
    single = local.submit("parked", "hit", params, priority=7, timeout_s=12.5)
    item = {"plugin": "parked", "command": "hit", "params": params}
    batch = local.client.post("/v1/executions/batch", json={"executions": [item]}).json()["executions"]
    try:
        for answered in [single, *batch]:
            assert answered == local.get(answered["id"])
            assert (answered["status"], answered["result"], answered["worker"]) == ("queued", None, None)
    finally:
        for answered in [single, *batch]:
            local.client.post(f"/v1/executions/{answered['id']}/cancel")


def test_idempotency_key_returns_same_execution(local: LocalAPI) -> None:
    body = {"plugin": "echo", "command": "echo", "params": {"k": 1}}
    key = {"Idempotency-Key": f"key-{time.time_ns()}"}

    first = local.client.post("/v1/executions", json=body, headers=key)
    second = local.client.post("/v1/executions", json=body, headers=key)
    other = local.client.post("/v1/executions", json={**body, "params": {"k": 2}}, headers=key)

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert other.status_code == 409
    assert first.json()["id"] in other.json()["detail"]
    listed = local.client.get("/v1/executions", params={"plugin": "echo", "limit": 500}).json()["executions"]
    assert sum(1 for e in listed if e["idempotency_key"] == key["Idempotency-Key"]) == 1


def test_batch_with_one_bad_item_writes_nothing(local: LocalAPI) -> None:
    before = local.client.get("/v1/executions", params={"limit": 1}).json()["executions"]
    items = [
        {"plugin": "echo", "command": "echo", "params": {}},
        {"plugin": "simulate", "command": "run", "params": {"sleep_s": "long"}},
    ]

    response = local.client.post("/v1/executions/batch", json={"executions": items})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "executions", 1, "params", "sleep_s"]
    assert local.client.get("/v1/executions", params={"limit": 1}).json()["executions"] == before


def test_batch_over_1000_is_rejected(local: LocalAPI) -> None:
    items = [{"plugin": "echo", "command": "echo"}] * 1001

    response = local.client.post("/v1/executions/batch", json={"executions": items})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "executions"]


def test_long_poll_times_out_with_current_state(local: LocalAPI) -> None:
    created = local.submit("simulate", "run", {"sleep_s": 10, "mode": "async"})

    polled = local.get(created["id"], wait_s=1)

    assert polled["status"] in ("queued", "running")
    local.client.post(f"/v1/executions/{created['id']}/cancel")


def test_unknown_ids_and_routes_are_404_problems(local: LocalAPI) -> None:
    for response in (
        local.client.get("/v1/executions/01AAAAAAAAAAAAAAAAAAAAAAAA"),
        local.client.get("/v1/executions/01AAAAAAAAAAAAAAAAAAAAAAAA", params={"wait": 1}),
        local.client.post("/v1/executions/01AAAAAAAAAAAAAAAAAAAAAAAA/cancel"),
        local.client.get("/v1/nothing-here"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 404


def test_bad_query_values_are_422(local: LocalAPI) -> None:
    assert local.client.get("/v1/executions", params={"status": "sleeping"}).status_code == 422
    assert local.client.get("/v1/executions", params={"limit": 0}).status_code == 422
    assert local.client.get("/v1/executions/x", params={"wait": 61}).status_code == 422
