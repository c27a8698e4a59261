"""The docs pages and the OpenAPI security scheme, in process (no service behind them)."""

import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.unit.conftest import API_KEY

PROBLEM = "application/problem+json"


# -- docs ---------------------------------------------------------------------------

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_the_api_serves(api: TestClient, page: str) -> None:
    html = api.get(page)

    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://|//[a-z]", html.text), "the page refers to another origin"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(a.endswith(".js") for a in assets), assets
    for url in assets:
        served = api.get(url)
        assert served.status_code == 200, url
        kind = ASSET_TYPES[url[url.rindex(".") :]]
        assert kind in served.headers["content-type"], (url, served.headers["content-type"])
        assert len(served.content) > 1000


def test_swagger_ui_sends_the_schema_to_no_online_validator(api: TestClient) -> None:
    assert '"validatorUrl": null' in api.get("/docs").text


# -- security scheme ----------------------------------------------------------------

PUBLIC = {"/healthz", "/readyz", "/metrics"}


def test_openapi_declares_the_bearer_key_on_every_route_that_needs_it(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()

    ((name, scheme),) = schema["components"]["securitySchemes"].items()
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    operations = [(path, op) for path, ops in schema["paths"].items() for op in ops.values()]
    assert {path for path, _ in operations} >= PUBLIC | {"/v1/executions", "/v1/keys"}
    for path, op in operations:
        if path in PUBLIC:
            assert "security" not in op, path
        else:
            assert op["security"] == [{name: []}], path


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic dXNlcjpwYXNz", API_KEY])
def test_a_missing_key_is_a_401_problem_saying_what_to_send(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = TestClient(create_app()).get("/v1/executions", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == 'Bearer realm="agentq"'
    assert response.json()["detail"] == "Send an API key: `Authorization: Bearer <key>`."
