"""Strict input, in process: every request here is answered before the database would
be reached (a test that reached it would fail: unit tests open no sockets)."""

import json

import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


# -- cursors ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/executions", "/v1/schedules"])
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",  # 25 characters
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",  # 27
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",  # U is not in the alphabet
        "81ARZ3NDEKTSV4RRFFQ69G5FAV",  # past the largest id
    ],
)
def test_an_unparseable_cursor_is_a_422_naming_it(api: TestClient, path: str, cursor: str) -> None:
    response = api.get(path, params={"cursor": cursor})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "cursor"]]
    assert "next_cursor" in response.json()["detail"]


# -- bodies that are not JSON ---------------------------------------------------------

# A value that is not JSON, and where the problem is said to be.
NOT_JSON = [
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("-Infinity", "-Infinity"),
    ("1e999", "1e999"),
    ("-1e999", "-1e999"),
    ("1.5e400", "1.5e400"),
    ('"\\ud800"', "\\ud800"),  # a lone surrogate is no Unicode character
    ('"a\\udfffb"', "\\udfff"),
]
SUBMIT = '{"plugin": "simulate", "command": "run", "params": {"x": VALUE}}'
BODIES = {
    "/v1/executions": SUBMIT,
    "/v1/executions/batch": '{"executions": [' + SUBMIT + "]}",
    "/v1/schedules": '{"name": "n", "plugin": "echo", "command": "echo", "cron": "* * * * *", "params": {"x": VALUE}}',
    "/api/agent/execute": '{"command": "/echo", "params": {"x": [1, VALUE]}}',
}


@pytest.mark.parametrize("path", BODIES)
@pytest.mark.parametrize(("value", "token"), NOT_JSON)
def test_non_finite_numbers_and_lone_surrogates_are_malformed_json(
    api: TestClient, path: str, value: str, token: str
) -> None:
    body = BODIES[path].replace("VALUE", value)
    response = api.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:agentq:problem:malformed-json"
    assert "RFC 8259" in problem["detail"], problem
    (error,) = problem["errors"]
    assert error["loc"] == ["body", body.index(token)]


def test_strict_json_still_reads_every_json_value() -> None:
    from api.jsonbody import loads

    text = (
        '{"a": [1.5e300, -0.0, 1e-999, 12345678901234567890, "\\ud83d\\ude00", "\\u00e9", "NaN", true, null]}'
    )

    assert loads(text.encode()) == json.loads(text)
    assert loads(b'{"NaN": "Infinity"}') == {"NaN": "Infinity"}


def test_a_body_that_is_not_utf8_is_malformed_json(api: TestClient) -> None:
    response = api.post(
        "/v1/executions",
        content='{"plugin": "echo", "command": "écho"}'.encode("latin-1"),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["type"] == "urn:agentq:problem:malformed-json"
    assert "UTF-8" in response.json()["detail"]


def test_malformed_json_says_what_is_wrong_and_where(api: TestClient) -> None:
    response = api.post(
        "/v1/executions", content=b'{"plugin": "echo",', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert "Expecting property name" in response.json()["detail"]
    assert response.json()["errors"][0]["loc"] == ["body", 18]


# -- Content-Type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_json_without_a_json_content_type_is_415_saying_so(api: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = api.post("/v1/executions", content=b'{"plugin": "echo", "command": "echo"}', headers=headers)

    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:agentq:problem:unsupported-media-type"
    assert "Content-Type: application/json" in problem["detail"]
    assert (content_type or "no Content-Type").split(";")[0] in problem["detail"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_content_types_are_read(api: TestClient, content_type: str) -> None:
    response = api.post(
        "/v1/executions", content=b'{"plugin": "echo"}', headers={"Content-Type": content_type}
    )

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "command"]]


# -- batches ----------------------------------------------------------------------------


def test_a_batch_names_the_item_with_an_unknown_plugin_or_command(api: TestClient) -> None:
    good = {"plugin": "echo", "command": "echo"}
    unknown_plugin = api.post(
        "/v1/executions/batch", json={"executions": [good, good, {"plugin": "nope", "command": "echo"}]}
    )
    unknown_command = api.post(
        "/v1/executions/batch", json={"executions": [good, {"plugin": "echo", "command": "nope"}]}
    )
    single = api.post("/v1/executions", json={"plugin": "nope", "command": "echo"})

    assert unknown_plugin.status_code == 422
    assert unknown_command.status_code == 422
    assert [e["loc"] for e in unknown_plugin.json()["errors"]] == [["body", "executions", 2, "plugin"]]
    assert [e["loc"] for e in unknown_command.json()["errors"]] == [["body", "executions", 1, "command"]]
    assert [e["loc"] for e in single.json()["errors"]] == [["body", "plugin"]]
