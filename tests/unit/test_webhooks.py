"""Webhooks in process: URLs refused at submit (422 naming the field), signatures that a
receiver's ``standardwebhooks`` verifies (through a rotation too), the payload's cap and
the retry schedule."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from agentq.core import webhook_secrets
from agentq.core.errors import PermanentError
from agentq.core.models import Execution, ExecutionStatus
from agentq.core.settings import settings
from agentq.core.store.sending import Claimed, next_attempt_at
from workers.webhook_http import Origin, request, target
from workers.webhooks import payload, signed_headers

ECHO = {"plugin": "echo", "command": "echo", "params": {}}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/", "http://[::1]/", "http://localhost/"]
)
def test_a_private_webhook_is_a_422_naming_the_field(api: TestClient, url: str) -> None:
    response = api.post("/v1/executions", json={**ECHO, "webhook": url})

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "webhook"]]
    assert "AGENTQ_OUTBOUND_ALLOW_PRIVATE" in response.text


def test_a_private_webhook_in_a_batch_names_its_item(api: TestClient) -> None:
    batch = {"executions": [ECHO, {**ECHO, "webhook": "http://192.168.1.1/"}]}
    response = api.post("/v1/executions/batch", json=batch)

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "executions", 1, "webhook"]]


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/hook", "http://169.254.169.254/latest"])
def test_a_subscription_to_a_refused_url_is_a_422(api: TestClient, url: str) -> None:
    response = api.post("/v1/webhooks", json={"url": url})

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "url"]]


def test_unknown_webhook_events_are_a_422(api: TestClient) -> None:
    response = api.post(
        "/v1/executions", json={**ECHO, "webhook": "https://example.com/", "webhook_events": ["finished"]}
    )

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:2] == ["body", "webhook_events"]


def _claimed(secrets: tuple[str, ...], result: object = None) -> Claimed:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    execution = Execution(
        id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
        plugin="echo",
        command="echo",
        params={},
        status=ExecutionStatus.SUCCEEDED,
        result=result,
        attempts=1,
        max_retries=0,
        priority=5,
        timeout_s=10,
        created_at=now,
        webhook_url="https://example.com/",
        webhook_events=2,
    )
    encrypted = tuple(webhook_secrets.encrypt(s) for s in secrets)
    return Claimed(
        "01ARZ3NDEKTSV4RRFFQ69G5FAW", 1, "execution.succeeded", now, None, "https://x/", encrypted, execution
    )


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "webhook_secret_key", Fernet.generate_key().decode())


@pytest.mark.usefixtures("secret_key")
def test_a_signed_delivery_verifies_with_standardwebhooks() -> None:
    secret = webhook_secrets.new_secret()
    claimed = _claimed((secret,), result={"ok": True})
    body = payload(claimed)
    headers = signed_headers(claimed, body, datetime.now(UTC))

    verified = Webhook(secret).verify(body, headers)

    assert verified["type"] == "execution.succeeded"
    assert verified["timestamp"] == "2026-01-02T03:04:05Z"
    assert verified["data"]["result"] == {"ok": True}
    assert verified["data"]["webhook_events"] == ["completed"]
    assert headers["webhook-id"] == "msg_01ARZ3NDEKTSV4RRFFQ69G5FAW"
    with pytest.raises(Exception, match="signature"):
        Webhook(webhook_secrets.new_secret()).verify(body, headers)


@pytest.mark.usefixtures("secret_key")
def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = webhook_secrets.new_secret(), webhook_secrets.new_secret()
    claimed = _claimed((old, new))
    body = payload(claimed)
    headers = signed_headers(claimed, body, datetime.now(UTC))

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


@pytest.mark.usefixtures("secret_key")
def test_a_result_over_the_cap_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "webhook_max_result_bytes", 100)

    data = json.loads(payload(_claimed(("whsec_AAAA",), result={"text": "x" * 200})))["data"]

    assert data["result"] is None
    assert data["result_truncated"] is True


@pytest.mark.usefixtures("secret_key")
def test_secrets_are_encrypted_at_rest() -> None:
    secret = webhook_secrets.new_secret()
    stored = webhook_secrets.encrypt(secret)

    assert secret not in stored
    assert webhook_secrets.decrypt(stored) == secret


def test_the_retry_schedule_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "webhook_retry_delays_s", "0,10,100")
    at = datetime(2026, 1, 1, tzinfo=UTC)

    second = next_attempt_at(1, at)
    third = next_attempt_at(2, at)

    assert second is not None
    assert timedelta(seconds=9) <= second - at <= timedelta(seconds=11)
    assert third is not None
    assert timedelta(seconds=90) <= third - at <= timedelta(seconds=110)
    assert next_attempt_at(3, at) is None  # one attempt per entry


@pytest.mark.parametrize(
    ("url", "origin", "head"),
    [
        (
            "https://example.com/hook?a=1#frag",
            ("https", "example.com", 443),
            b"POST /hook?a=1 HTTP/1.1\r\nHost: example.com\r\n",
        ),
        (
            "http://example.com:8080",
            ("http", "example.com", 8080),
            b"POST / HTTP/1.1\r\nHost: example.com:8080\r\n",
        ),
        (
            "http://[2001:db8::1]:81/h",
            ("http", "2001:db8::1", 81),
            b"POST /h HTTP/1.1\r\nHost: [2001:db8::1]:81\r\n",
        ),
        (
            "https://bücher.example/a b",
            ("https", "xn--bcher-kva.example", 443),
            b"POST /a%20b HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n",
        ),
    ],
)
def test_a_webhook_url_becomes_its_origin_and_request_line(url: str, origin: Origin, head: bytes) -> None:
    parsed = target(url)

    assert parsed.origin == origin
    assert parsed.head.startswith(head)


def test_credentials_in_a_webhook_url_go_as_basic_auth() -> None:
    head = target("https://user:p%40ss@example.com/hook").head

    assert b"\r\nAuthorization: Basic dXNlcjpwQHNz\r\n" in head  # user:p@ss
    assert b"user" not in head.split(b"\r\n")[1]  # not in Host


@pytest.mark.parametrize("url", ["ftp://example.com/", "/relative", "http://example.com/a\r\nX-Injected: 1"])
def test_a_url_the_sender_cannot_speak_to_is_refused(url: str) -> None:
    with pytest.raises(PermanentError):
        target(url)


def test_the_request_carries_its_body_and_the_senders_headers() -> None:
    data = request(target("http://example.com/hook"), {"webhook-id": "msg_1"}, b'{"a":1}')

    head, body = data.split(b"\r\n\r\n")
    assert body == b'{"a":1}'
    assert head.split(b"\r\n")[2:] == [b"User-Agent: agentq", b"Content-Length: 7", b"webhook-id: msg_1"]
