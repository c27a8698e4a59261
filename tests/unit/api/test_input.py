"""Strict input, in process: what the API refuses, and the problem that says why.

Requests to ``api`` are answered before the database would be reached (a test that
reached it would fail: unit tests open no sockets); those to ``local`` go through to its
SQLite database, as to a deployed API.
"""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.schedule_schemas import NOT_NULL_ON_UPDATE
from tests.unit.api.conftest import PROBLEM, LocalAPI

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


# -- catalog, fields and sizes, on a database ---------------------------------------------


def test_unknown_plugin_lists_what_is_offered(local: LocalAPI) -> None:
    response = local.client.post("/v1/executions", json={"plugin": "nope", "command": "x"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert "echo" in problem["detail"]
    assert "simulate" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "plugin"]


def test_unknown_command_lists_the_plugins_commands(local: LocalAPI) -> None:
    response = local.client.post("/v1/executions", json={"plugin": "simulate", "command": "walk"})

    assert response.status_code == 422
    assert "run" in response.json()["detail"]


def test_bad_params_point_at_the_field(local: LocalAPI) -> None:
    response = local.client.post(
        "/v1/executions",
        json={"plugin": "simulate", "command": "run", "params": {"sleep_s": -1, "mode": "fast"}},
    )

    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["errors"]]
    assert ["body", "params", "mode"] in locs
    assert ["body", "params", "sleep_s"] in locs


def test_bad_fields_and_malformed_json(local: LocalAPI) -> None:
    out_of_range = local.client.post(
        "/v1/executions", json={"plugin": "echo", "command": "echo", "priority": 10}
    )
    extra = local.client.post("/v1/executions", json={"plugin": "echo", "command": "echo", "colour": "red"})
    malformed = local.client.post(
        "/v1/executions", content=b'{"plugin": "echo",', headers={"Content-Type": "application/json"}
    )

    assert out_of_range.status_code == 422
    assert out_of_range.json()["errors"][0]["loc"] == ["body", "priority"]
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["loc"] == ["body", "colour"]
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == PROBLEM
    assert "JSON" in malformed.json()["detail"]


def test_body_over_the_cap_is_413(local: LocalAPI) -> None:
    big = json.dumps({"plugin": "echo", "command": "echo", "params": {"x": "y" * (1024 * 1024)}}).encode()

    declared = local.client.post("/v1/executions", content=big, headers={"Content-Type": "application/json"})
    chunked = local.client.post(
        "/v1/executions", content=iter([big[:1000], big[1000:]]), headers={"Content-Type": "application/json"}
    )

    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM


def test_params_depth_size_and_string_lengths_are_422(local: LocalAPI) -> None:
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
        response = local.client.post("/v1/executions", json=body)
        assert response.status_code == 422, (str(body)[:80], response.text)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"]
    long_key = local.client.post(
        "/v1/executions", json={"plugin": "echo", "command": "echo"}, headers={"Idempotency-Key": "k" * 256}
    )
    assert long_key.status_code == 422


# -- bad input among good, at once ----------------------------------------------------------
# The API writes the single submissions that arrive together in one transaction (group
# commit): a bad request among them gets its 4xx, writes nothing, and fails no good one.

GOOD = 40
ROUNDS = 3


def _deep(levels: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for _ in range(levels - 1):
        params = {"n": params}
    return params


def _post_at_once(local: LocalAPI, bodies: list[str]) -> list[httpx.Response]:
    """POST every body at the same moment, each from a thread of its own."""
    start = threading.Barrier(len(bodies))

    def post(body: str) -> httpx.Response:
        start.wait(30)
        answer: httpx.Response = local.client.post(
            "/v1/executions", content=body, headers={"Content-Type": "application/json"}
        )
        return answer

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def _written(local: LocalAPI, run: str) -> list[dict[str, Any]]:
    page = local.client.get("/v1/executions", params={"limit": 500}).json()["executions"]
    return [e for e in page if e["params"].get("run") == run]


def _interleaved(good: list[str], bad: list[str]) -> list[str]:
    bodies = list(good)
    step = len(good) // len(bad)
    for i, body in enumerate(bad):
        bodies.insert(i * (step + 1) + step // 2, body)
    return bodies


def test_non_json_numbers_lone_surrogates_and_deep_params_fail_alone(local: LocalAPI) -> None:
    for _ in range(ROUNDS):
        run = uuid.uuid4().hex
        good = [
            json.dumps({"plugin": "echo", "command": "echo", "params": {"run": run, "i": i}})
            for i in range(GOOD)
        ]
        head = '{"plugin": "echo", "command": "echo", "params": {"run": "' + run + '", "x": '
        not_json = [head + value + "}}" for value in ("NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"')]
        too_deep = json.dumps({"plugin": "echo", "command": "echo", "params": {"run": run, **_deep(32)}})
        bodies = _interleaved(good, [*not_json, too_deep])

        answers = dict(zip(bodies, _post_at_once(local, bodies), strict=True))

        assert [answers[b].status_code for b in good] == [202] * GOOD, [answers[b].text for b in good]
        assert [answers[b].status_code for b in not_json] == [400] * len(not_json)
        assert all("RFC 8259" in answers[b].json()["detail"] for b in not_json)
        assert answers[too_deep].status_code == 422, answers[too_deep].text
        assert sorted(e["params"]["i"] for e in _written(local, run)) == list(range(GOOD))


# -- PATCH of a schedule: null only for what a schedule may lack ----------------------


@pytest.mark.parametrize("field", NOT_NULL_ON_UPDATE)
def test_patching_a_required_schedule_field_to_null_is_a_422_naming_it(api: TestClient, field: str) -> None:
    response = api.patch("/v1/schedules/01ARZ3NDEKTSV4RRFFQ69G5FAV", json={field: None})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [e["loc"] for e in response.json()["errors"]] == [["body", field]]
    assert f"`{field}` cannot be null" in response.json()["detail"]


def test_the_openapi_document_says_which_schedule_fields_a_patch_may_clear(api: TestClient) -> None:
    fields = api.get("/openapi.json").json()["components"]["schemas"]["ScheduleUpdate"]["properties"]

    nullable = {name for name, schema in fields.items() if {"type": "null"} in schema.get("anyOf", [])}

    assert nullable == {
        "cron",
        "interval_s",
        "timeout_s",
        "max_retries",
        "jitter_s",
        "webhook",
        "webhook_events",
        "concurrency_key",
    }
    assert nullable.isdisjoint(NOT_NULL_ON_UPDATE)
