"""Webhooks end to end: real API, workers, beat and a local receiver; signatures checked
with the ``standardwebhooks`` library, as a receiver would."""

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from agentq.client import Client
from agentq.core import store
from agentq.core.models import ADMIN_OWNER, utcnow
from agentq.core.store.sending import Attempted
from tests.conftest import DATABASE_URL
from tests.integration.conftest import ADMIN_KEY, Stack, bearer, launch
from tests.integration.processes import free_port, wait_until
from tests.integration.receiver import Received, receiver
from tests.integration.services import PrivateRedis
from tests.integration.test_cli import agentq


def verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def default_secret(stack: Stack) -> str:
    response = stack.client.get("/v1/webhooks/default/secret")
    assert response.status_code == 200, response.text
    key: str = response.json()["key"]
    assert key.startswith("whsec_")
    return key


def test_execution_webhook_is_signed_with_the_keys_default_secret(stack: Stack) -> None:
    secret = default_secret(stack)
    with receiver() as hooks:
        created = stack.submit("echo", "echo", {"hello": "hooks"}, webhook=hooks.url)
        assert created["webhook"] == hooks.url
        assert created["webhook_events"] == ["completed"]
        stack.wait(created["id"])
        wait_until(lambda: len(hooks.requests()) == 1, 30, "the webhook")

    (request,) = hooks.requests()
    payload = verified(secret, request)
    assert payload["type"] == "execution.succeeded"
    assert payload["data"] == stack.get(created["id"])
    assert request.headers["content-type"] == "application/json"
    deliveries = stack.client.get(f"/v1/executions/{created['id']}/deliveries").json()["deliveries"]
    assert [(d["event"], d["status"], d["webhook_id"]) for d in deliveries] == [
        ("execution.succeeded", "succeeded", request.headers["webhook-id"])
    ]
    assert [a["status_code"] for a in deliveries[0]["attempts"]] == [200]


def test_started_and_completed_both_sent_when_asked(stack: Stack) -> None:
    with receiver() as hooks:
        created = stack.submit("echo", "echo", {}, webhook=hooks.url, webhook_events=["started", "completed"])
        stack.wait(created["id"])
        wait_until(lambda: len(hooks.requests()) == 2, 30, "both webhooks")
    types = sorted(json.loads(r.body)["type"] for r in hooks.requests())
    assert types == ["execution.started", "execution.succeeded"]


@pytest.mark.usefixtures("beat")
def test_receiver_failing_twice_gets_the_event_three_times_with_one_id(stack: Stack) -> None:
    with receiver(answers=[500, 500]) as hooks:
        endpoint = stack.client.post("/v1/webhooks", json={"url": hooks.url, "events": ["execution.failed"]})
        assert endpoint.status_code == 201, endpoint.text
        secret = endpoint.json()["secret"]
        try:
            created = stack.submit("simulate", "run", {"fail_times": 5}, max_retries=0)
            assert stack.wait(created["id"])["status"] == "failed"
            wait_until(lambda: len(hooks.requests()) == 3, 60, "three attempts")
        finally:
            stack.client.delete(f"/v1/webhooks/{endpoint.json()['id']}")

    requests = hooks.requests()
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert all(verified(secret, r)["data"]["id"] == created["id"] for r in requests)
    (delivery,) = stack.client.get(f"/v1/executions/{created['id']}/deliveries").json()["deliveries"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert delivery["status"] == "succeeded"


@pytest.mark.usefixtures("beat")
def test_receiver_down_for_20_s_gets_every_event_once_up(stack: Stack) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    created = [stack.submit("echo", "echo", {"n": n}, webhook=url) for n in range(5)]
    for row in created:
        stack.wait(row["id"])
    time.sleep(20)  # the receiver is down: attempts fail with connection refused

    with receiver(port=port) as hooks:
        wait_until(lambda: len({json.loads(r.body)["data"]["id"] for r in hooks.requests()}) == 5, 60, "all")
    for row in created:
        (delivery,) = stack.client.get(f"/v1/executions/{row['id']}/deliveries").json()["deliveries"]
        assert delivery["status"] == "succeeded"
        assert delivery["attempts"][0]["status_code"] is None
        assert delivery["attempts"][0]["error"]


def test_worker_killed_while_delivering_loses_nothing(tmp_path: Path) -> None:
    redis_server = PrivateRedis(tmp_path)
    try:
        with (
            receiver(hang_first=True) as hooks,
            launch(DATABASE_URL, redis_server.url, tmp_path, AGENTQ_WEBHOOK_TIMEOUT_S="2") as private,
        ):
            created = private.submit("echo", "echo", {}, webhook=hooks.url)
            private.wait(created["id"])
            wait_until(lambda: len(hooks.requests()) == 1, 30, "the first attempt")

            private.worker.kill()  # with the delivery in flight, unrecorded
            private.start_worker("w2")
            private.start_beat("beat")

            wait_until(lambda: len(hooks.requests()) >= 2, 60, "the delivery sent again")
            wait_until(
                lambda: (
                    private.client.get(f"/v1/executions/{created['id']}/deliveries").json()["deliveries"][0][
                        "status"
                    ]
                    == "succeeded"
                ),
                30,
                "the delivery recorded",
            )
    finally:
        redis_server.stop()


def test_subscriptions_are_per_key(stack: Stack) -> None:
    other = stack.client.post("/v1/keys", json={"name": f"hooks-{time.time_ns()}"}).json()["key"]
    with receiver() as hooks:
        mine = stack.client.post("/v1/webhooks", json={"url": hooks.url, "events": ["execution.succeeded"]})
        assert mine.status_code == 201
        endpoint_id = mine.json()["id"]
        try:
            theirs = stack.client.get(f"/v1/webhooks/{endpoint_id}", headers=bearer(other))
            assert theirs.status_code == 404
            assert stack.client.get("/v1/webhooks", headers=bearer(other)).json()["webhooks"] == []
            theirs_run = stack.client.post(
                "/v1/executions",
                json={"plugin": "echo", "command": "echo", "params": {}},
                headers=bearer(other),
            ).json()
            stack.client.get(f"/v1/executions/{theirs_run['id']}?wait=30", headers=bearer(other))
            mine_run = stack.submit("echo", "echo", {})
            stack.wait(mine_run["id"])
            wait_until(lambda: len(hooks.requests()) >= 1, 30, "the subscription's event")
            time.sleep(1)  # anything else would have come by now
            assert [json.loads(r.body)["data"]["id"] for r in hooks.requests()] == [mine_run["id"]]
        finally:
            stack.client.delete(f"/v1/webhooks/{endpoint_id}")


def test_schedule_executions_inherit_the_schedules_webhook(stack: Stack) -> None:
    with receiver() as hooks:
        body = {"name": f"hooked-{time.time_ns()}", "plugin": "echo", "command": "echo", "interval_s": 3600}
        schedule = stack.client.post("/v1/schedules", json={**body, "webhook": hooks.url}).json()
        try:
            assert schedule["webhook"] == hooks.url
            fired = stack.client.post(f"/v1/schedules/{schedule['id']}/run").json()
            assert fired["webhook"] == hooks.url
            stack.wait(fired["id"])
            wait_until(lambda: len(hooks.requests()) == 1, 30, "the webhook")
        finally:
            stack.client.delete(f"/v1/schedules/{schedule['id']}")
    assert json.loads(hooks.requests()[0].body)["data"]["schedule_id"] == schedule["id"]


def test_client_and_cli_manage_webhooks(stack: Stack) -> None:
    with receiver() as hooks, Client(stack.url, api_key=ADMIN_KEY) as client:
        created = client.create_webhook(hooks.url, ["execution.succeeded"], description="cli test")
        try:
            assert created.secret.startswith("whsec_")
            execution = client.submit("echo", "echo", {})
            client.wait(execution.id)
            wait_until(lambda: len(hooks.requests()) == 1, 30, "the webhook")
            Webhook(created.secret).verify(hooks.requests()[0].body, hooks.requests()[0].headers)
            wait_until(
                lambda: client.deliveries(webhook_id=created.id).deliveries[0].status == "succeeded",
                30,
                "the delivery recorded",
            )
            listed = agentq(stack, "webhooks", "list")
            assert listed.returncode == 0, listed.stderr
            assert created.id in listed.stdout
            shown = agentq(stack, "webhooks", "deliveries", created.id)
            assert shown.returncode == 0, shown.stderr
            assert "execution.succeeded" in shown.stdout
            new_secret = client.rotate_webhook_secret(created.id)
            assert new_secret != created.secret
        finally:
            removed = agentq(stack, "webhooks", "rm", created.id)
        assert removed.returncode == 0, removed.stderr
        assert created.id not in [w.id for w in client.list_webhooks().webhooks]


def test_a_410_disables_the_endpoint_and_a_retry_sends_again(stack: Stack) -> None:
    with receiver(answers=[410]) as hooks:
        endpoint = stack.client.post(
            "/v1/webhooks", json={"url": hooks.url, "events": ["execution.succeeded"]}
        )
        endpoint_id = endpoint.json()["id"]
        try:
            created = stack.submit("echo", "echo", {})
            stack.wait(created["id"])
            wait_until(
                lambda: not stack.client.get(f"/v1/webhooks/{endpoint_id}").json()["enabled"], 30, "disabled"
            )
            assert "410" in stack.client.get(f"/v1/webhooks/{endpoint_id}").json()["disabled_reason"]
            (delivery,) = stack.client.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()["deliveries"]
            assert delivery["status"] == "failed"

            enabled = stack.client.patch(f"/v1/webhooks/{endpoint_id}", json={"enabled": True}).json()
            assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
            retried = stack.client.post(f"/v1/webhooks/{endpoint_id}/deliveries/{delivery['id']}/retry")
            assert retried.status_code == 202, retried.text
            wait_until(lambda: len(hooks.requests()) == 2, 30, "the retry")
        finally:
            stack.client.delete(f"/v1/webhooks/{endpoint_id}")
    first, second = hooks.requests()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_an_endpoint_failing_for_days_is_disabled(stack: Stack) -> None:
    endpoint = stack.client.post("/v1/webhooks", json={"url": "https://example.com/hooks"}).json()
    try:
        six_days_ago = utcnow() - timedelta(days=6)
        store.webhooks.update_endpoint(endpoint["id"], ADMIN_OWNER, {"failing_since": six_days_ago})

        # Another failed attempt, five days and more into the streak.
        failed = Attempted("01ARZ3NDEKTSV4RRFFQ69G5FAV", 1, endpoint["id"], utcnow(), 5.0, status_code=500)
        recorded = store.sending.record_attempts([failed])

        assert recorded.disabled == [endpoint["id"]]
        shown = stack.client.get(f"/v1/webhooks/{endpoint['id']}").json()
        assert shown["enabled"] is False
        assert "failed since" in shown["disabled_reason"]
    finally:
        stack.client.delete(f"/v1/webhooks/{endpoint['id']}")


def test_metrics_show_webhook_deliveries(stack: Stack) -> None:
    with receiver() as hooks:
        created = stack.submit("echo", "echo", {}, webhook=hooks.url)
        stack.wait(created["id"])
        wait_until(lambda: len(hooks.requests()) == 1, 30, "the webhook")
    wait_until(
        lambda: 'agentq_webhook_deliveries_total{outcome="delivered"}' in stack.client.get("/metrics").text,
        30,
        "the delivery counted",
    )
    text = stack.client.get("/metrics").text
    assert "agentq_webhook_deliveries_pending" in text
    assert "agentq_webhook_latency_seconds_bucket" in text
