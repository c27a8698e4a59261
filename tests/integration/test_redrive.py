"""Re-driving executions that failed, timed out or were cancelled, against the real API and worker."""

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentq.core import store
from agentq.core.models import ADMIN_OWNER
from tests.integration.conftest import Stack, bearer
from tests.integration.processes import wait_until

PROBLEM = "application/problem+json"
Row = dict[str, Any]


@pytest.fixture
def tenant(stack: Stack) -> Any:
    """A client of a new API key, whose executions no other test makes."""
    response = stack.client.post("/v1/keys", json={"name": f"redrive-{time.time_ns()}"})
    assert response.status_code == 201, response.text
    with httpx.Client(base_url=stack.url, headers=bearer(response.json()["key"]), timeout=90) as client:
        yield client


def submit(client: httpx.Client, plugin: str, command: str, params: Row, **fields: Any) -> Row:
    response = client.post(
        "/v1/executions", json={"plugin": plugin, "command": command, "params": params, **fields}
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def ended(client: httpx.Client, execution: Row) -> Row:
    row = client.get(f"/v1/executions/{execution['id']}", params={"wait": 30}).json()
    assert row["status"] in ("succeeded", "failed", "timed_out", "cancelled"), row
    return row  # type: ignore[no-any-return]


def flaky(tmp_path: Path) -> Row:
    """Params of a ``flaky`` run: it fails while ``tmp_path/outage`` exists."""
    (tmp_path / "outage").touch()
    return {"path": str(tmp_path / "runs.txt"), "fail_while": str(tmp_path / "outage")}


def runs(params: Row) -> list[str]:
    """The executions that ran a ``flaky`` or ``counter`` command, in order."""
    return [line.split()[0] for line in Path(params["path"]).read_text().splitlines()]


def retry(client: httpx.Client, execution: Row, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else None
    return client.post(f"/v1/executions/{execution['id']}/retry", headers=headers)


def test_retry_runs_a_failed_execution_again_as_a_new_one_pointing_at_it(
    stack: Stack, tmp_path: Path
) -> None:
    params = flaky(tmp_path)
    original = stack.wait(
        stack.submit("flaky", "hit", params, priority=7, timeout_s=12.5, max_retries=2)["id"]
    )
    assert original["status"] == "failed"
    (tmp_path / "outage").unlink()  # the outage is over

    response = retry(stack.client, original)

    assert response.status_code == 202, response.text
    again = response.json()
    assert response.headers["Location"] == f"/v1/executions/{again['id']}"
    assert again["id"] != original["id"]
    assert again["retry_of"] == original["id"]
    assert again["status"] == "queued"
    for field in ("plugin", "command", "params", "priority", "timeout_s", "max_retries"):
        assert again[field] == original[field], field
    done = stack.wait(again["id"])
    assert (done["status"], done["attempts"], done["retry_of"]) == ("succeeded", 1, original["id"])
    assert runs(params) == [original["id"], again["id"]]
    assert stack.get(original["id"]) == original  # the original is left as it was


def test_a_retry_retried_points_at_its_direct_original_and_each_retry_is_a_new_run(
    stack: Stack, tmp_path: Path
) -> None:
    params = flaky(tmp_path)
    original = stack.wait(stack.submit("flaky", "hit", params)["id"])
    first = stack.wait(retry(stack.client, original).json()["id"])  # fails again: the outage goes on
    (tmp_path / "outage").unlink()

    second = stack.wait(retry(stack.client, first).json()["id"])
    third = stack.wait(retry(stack.client, original).json()["id"])

    assert first["status"] == "failed"
    assert (first["retry_of"], second["retry_of"], third["retry_of"]) == (
        original["id"],
        first["id"],
        original["id"],
    )
    assert (second["status"], third["status"]) == ("succeeded", "succeeded")
    assert runs(params) == [original["id"], first["id"], second["id"], third["id"]]


def test_retry_copies_the_queue_and_options_of_timed_out_and_cancelled_runs(
    stack: Stack, tmp_path: Path
) -> None:
    timed_out = stack.wait(
        stack.submit("simulate", "run", {"sleep_s": 10, "mode": "async"}, timeout_s=0.5)["id"]
    )
    parked = stack.submit("parked", "hit", {"path": str(tmp_path / "never.txt")}, priority=2)
    cancelled = stack.client.post(f"/v1/executions/{parked['id']}/cancel").json()

    again_timed_out = stack.wait(retry(stack.client, timed_out).json()["id"])
    again_cancelled = retry(stack.client, cancelled).json()
    try:
        assert timed_out["status"] == "timed_out"
        assert (again_timed_out["status"], again_timed_out["timeout_s"]) == ("timed_out", 0.5)
        assert again_timed_out["retry_of"] == timed_out["id"]
        assert (again_cancelled["retry_of"], again_cancelled["priority"]) == (cancelled["id"], 2)
        row = store.get_execution(again_cancelled["id"], ADMIN_OWNER)
        assert (row.queue, row.status, row.retry_of) == ("agentq.parked", "queued", cancelled["id"])
    finally:
        stack.client.post(f"/v1/executions/{again_cancelled['id']}/cancel")


def test_retrying_what_has_not_failed_is_a_409_naming_its_status(stack: Stack, tmp_path: Path) -> None:
    queued = stack.submit("parked", "hit", {"path": str(tmp_path / "never.txt")})
    running = stack.submit("simulate", "run", {"sleep_s": 60, "mode": "async"})
    succeeded = stack.wait(stack.submit("echo", "echo", {})["id"])
    wait_until(lambda: stack.get(running["id"])["status"] == "running", 15, "running")
    try:
        for execution, status in ((queued, "queued"), (running, "running"), (succeeded, "succeeded")):
            response = retry(stack.client, execution)

            assert response.status_code == 409, response.text
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["type"] == "urn:agentq:problem:not-retryable"
            assert f"is {status}" in response.json()["detail"]
    finally:
        for execution in (queued, running):
            stack.client.post(f"/v1/executions/{execution['id']}/cancel")
    listed = stack.client.get("/v1/executions", params={"limit": 500}).json()["executions"]
    assert not [e for e in listed if e["retry_of"] in (queued["id"], running["id"], succeeded["id"])]


def test_retrying_another_keys_execution_is_a_404(stack: Stack, tenant: httpx.Client, tmp_path: Path) -> None:
    theirs = stack.wait(stack.submit("flaky", "hit", flaky(tmp_path))["id"])

    response = retry(tenant, theirs)
    unknown = retry(tenant, {"id": "01KAV8W3Q5M2X9R7T4B6N8P0CD"})

    assert (response.status_code, unknown.status_code) == (404, 404)
    assert response.json()["type"] == unknown.json()["type"] == "urn:agentq:problem:execution-not-found"
    assert runs(theirs["params"]) == [theirs["id"]]


def test_retry_with_an_idempotency_key_replays_its_first_answer(stack: Stack, tmp_path: Path) -> None:
    params = flaky(tmp_path)
    original = stack.wait(stack.submit("flaky", "hit", params)["id"])
    other = stack.wait(stack.submit("flaky", "hit", params)["id"])
    key = f"retry-{time.time_ns()}"

    first = retry(stack.client, original, key)
    second = retry(stack.client, original, key)
    elsewhere = retry(stack.client, other, key)

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert elsewhere.status_code == 409
    assert elsewhere.json()["type"] == "urn:agentq:problem:idempotency-conflict"
    stack.wait(first.json()["id"])
    assert runs(params) == [original["id"], other["id"], first.json()["id"]]


# -- in bulk ---------------------------------------------------------------------------


def retry_many(client: httpx.Client, body: Row, key: str | None = None) -> list[Row]:
    headers = {"Idempotency-Key": key} if key else None
    response = client.post("/v1/executions/retry", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["executions"]  # type: ignore[no-any-return]


def just_after(execution: Row) -> str:
    return (datetime.fromisoformat(execution["created_at"]) + timedelta(microseconds=1)).isoformat()


def test_bulk_retry_picks_exactly_the_keys_rows_the_filter_names(
    stack: Stack, tenant: httpx.Client, tmp_path: Path
) -> None:
    params = flaky(tmp_path)
    parked = {"path": str(tmp_path / "never.txt")}
    made = {
        "flaky1": submit(tenant, "flaky", "hit", params),
        "failed": submit(tenant, "simulate", "run", {"fail_times": 1}, max_retries=0),
        "timed_out": submit(tenant, "simulate", "run", {"sleep_s": 10, "mode": "async"}, timeout_s=0.3),
        "cancelled": submit(tenant, "parked", "hit", parked),
        "succeeded": submit(tenant, "echo", "echo", {}),
        "queued": submit(tenant, "parked", "hit", parked),
        "flaky2": submit(tenant, "flaky", "hit", params),
    }
    theirs = stack.wait(stack.submit("flaky", "hit", params)["id"])  # the admin's: never picked
    tenant.post(f"/v1/executions/{made['cancelled']['id']}/cancel")
    rows = {name: ended(tenant, e) for name, e in made.items() if name != "queued"}
    assert [rows[n]["status"] for n in ("flaky1", "failed", "timed_out", "cancelled", "flaky2")] == [
        "failed",
        "failed",
        "timed_out",
        "cancelled",
        "failed",
    ]
    until = just_after(made["flaky2"])  # leaves out the retries these calls make
    ids = {name: e["id"] for name, e in made.items()}

    def originals(body: Row) -> list[str]:
        again = retry_many(tenant, {"created_before": until, **body})
        assert all(a["status"] == "queued" and a["id"] not in ids.values() for a in again)
        return [a["retry_of"] for a in again]

    try:
        assert originals({}) == [ids[n] for n in ("flaky1", "failed", "timed_out", "cancelled", "flaky2")]
        assert originals({"status": "failed", "plugin": "flaky"}) == [ids["flaky1"], ids["flaky2"]]
        assert originals({"status": ["timed_out", "cancelled"]}) == [ids["timed_out"], ids["cancelled"]]
        window = {
            "created_after": made["failed"]["created_at"],
            "created_before": made["cancelled"]["created_at"],
        }
        assert originals(window) == [ids["failed"], ids["timed_out"]]
        assert originals({"limit": 2}) == [ids["flaky1"], ids["failed"]]
        assert originals({"plugin": "counter"}) == []
    finally:
        listed = tenant.get("/v1/executions", params={"plugin": "parked"}).json()["executions"]
        for execution in listed:
            tenant.post(f"/v1/executions/{execution['id']}/cancel")
    # The retries run: flaky1 three times more, flaky2 twice; the admin's run is left alone.
    wait_until(lambda: len(runs(params)) == 3 + 3 + 2, 30, "the flaky retries")
    admins = stack.client.get("/v1/executions", params={"plugin": "flaky", "limit": 500}).json()["executions"]
    assert not [e for e in admins if e["retry_of"] == theirs["id"]]


def test_bulk_retry_with_an_idempotency_key_replays_its_first_answer(
    tenant: httpx.Client, tmp_path: Path
) -> None:
    params = flaky(tmp_path)
    original = ended(tenant, submit(tenant, "flaky", "hit", params))
    key = f"bulk-{time.time_ns()}"

    first = retry_many(tenant, {"plugin": "flaky"}, key)
    ended(tenant, first[0])  # failed too: the filter now matches it as well
    response = tenant.post("/v1/executions/retry", json={"plugin": "flaky"}, headers={"Idempotency-Key": key})
    without_key = retry_many(tenant, {"plugin": "flaky"})

    assert [e["retry_of"] for e in first] == [original["id"]]
    assert response.status_code == 202
    assert response.headers["Idempotent-Replayed"] == "true"
    assert [e["id"] for e in response.json()["executions"]] == [first[0]["id"]]
    assert [e["retry_of"] for e in without_key] == [original["id"], first[0]["id"]]
    assert first[0]["idempotency_key"] == f"{key}#{original['id']}"
