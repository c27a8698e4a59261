"""The ``http`` plugin: GET through the outbound guard."""

import re
from collections.abc import Callable

import httpx
import pydantic
import pytest

from agentq.core.errors import PermanentError, RetryLater
from agentq.core.settings import settings
from agentq.plugin import run_command
from tests.unit.conftest import PUBLIC, Handler, run_side_by_side
from workers.plugins.http import HttpPlugin


def get(**params: object) -> dict[str, object]:
    result: dict[str, object] = run_command(HttpPlugin(), "get", params)
    return result


def site(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/old":
        return httpx.Response(301, headers={"Location": "/new"})
    if request.url.path == "/metadata":
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    return httpx.Response(200, json={"path": request.url.path})


def test_get_returns_status_headers_body_and_final_url(serve: Callable[[Handler], None]) -> None:
    serve(site)

    result = get(url="https://example.com/old")

    assert result == {
        "status": 200,
        "headers": {"content-length": "15", "content-type": "application/json"},
        "body": '{"path":"/new"}',
        "truncated": False,
        "url": "https://example.com/new",
    }


def test_get_redirect_to_metadata_address_refused(serve: Callable[[Handler], None]) -> None:
    serve(site)

    with pytest.raises(PermanentError, match=r"169\.254\.169\.254 is a link-local address"):
        get(url="https://example.com/metadata")


def test_get_name_resolving_to_private_refused(serve: Callable[[Handler], None]) -> None:
    serve(site)

    with pytest.raises(
        PermanentError, match=re.escape("intranet.example resolves to 192.168.0.10, a private address")
    ):
        get(url="http://intranet.example/")


def test_get_private_allowed_by_setting(
    serve: Callable[[Handler], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "outbound_allow_private", True)
    serve(site)

    assert get(url="http://intranet.example/x")["status"] == 200
    assert get(url="http://127.0.0.1:8000/x")["status"] == 200


def test_get_caps_body(serve: Callable[[Handler], None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "outbound_max_bytes", 4)
    serve(lambda _request: httpx.Response(200, text="abcdefgh"))

    result = get(url="https://example.com/")

    assert (result["body"], result["truncated"]) == ("abcd", True)


def test_get_reports_error_statuses_as_results(serve: Callable[[Handler], None]) -> None:
    serve(lambda _request: httpx.Response(503, text="busy"))

    result = get(url="https://example.com/")

    assert (result["status"], result["body"]) == (503, "busy")


def test_get_network_error_retries_later(serve: Callable[[Handler], None]) -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    serve(reset)

    with pytest.raises(RetryLater):
        get(url="https://example.com/")


def test_gets_side_by_side_keep_clients_for_their_host(serve: Callable[[Handler], None]) -> None:
    serve(site)

    results, kept = run_side_by_side(
        HttpPlugin(), "get", [{"url": f"https://example.com/{i}"} for i in range(5)]
    )

    assert [r["body"] for r in results] == [f'{{"path":"/{i}"}}' for i in range(5)]
    assert list(kept) == [("https", PUBLIC, 443, "example.com")]


@pytest.mark.parametrize(
    "params",
    [
        {"url": "ftp://example.com/"},
        {"url": "file:///etc/passwd"},
        {"url": "example.com"},
        {"url": "https://example.com/", "timeout_s": 0},
        {"url": "https://example.com/", "timeout_s": 61},
    ],
)
def test_get_invalid_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        get(**params)


def test_get_params_schema_restricts_scheme_and_timeout() -> None:
    schema = HttpPlugin.commands["get"].params_schema()

    assert schema["required"] == ["url"]
    assert schema["properties"]["url"]["pattern"] == "^https?://"
    assert schema["properties"]["timeout_s"]["maximum"] == 60
