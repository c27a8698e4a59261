"""Catalog validation, problem+json mapping and settings, without any service."""

import asyncio
import json
import re
from collections.abc import Callable

import pytest
from fastapi.exceptions import RequestValidationError
from jsonschema import Draft202012Validator
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from agentq.core.errors import (
    AgentqError,
    BrokerUnavailable,
    ExecutionNotFound,
    IdempotencyConflict,
    InvalidParams,
    UnknownPlugin,
)
from agentq.core.settings import Settings
from api.catalog import Catalog
from api.limits import BodyLimit
from api.problems import agentq_error, database_error, http_error, unexpected_error, validation_error
from workers.plugins.registry import Registry
from workers.plugins.simulate import SimulatePlugin


def simulate_catalog() -> Catalog:
    registry = Registry()
    registry.add(SimulatePlugin)
    return Catalog(60, load=lambda: registry.catalog("agentq"))


def test_catalog_validates_params_against_published_schema() -> None:
    catalog = simulate_catalog()
    entry = catalog.resolve("simulate", "run")

    catalog.validate(entry, {"sleep_s": 1, "mode": "async"}, ("body", "params"))
    with pytest.raises(InvalidParams) as caught:
        catalog.validate(entry, {"sleep_s": -1, "mode": "fast"}, ("body", "params"))

    assert {tuple(e["loc"]) for e in caught.value.errors} == {
        ("body", "params", "sleep_s"),
        ("body", "params", "mode"),
    }
    assert "sleep_s" in caught.value.detail


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"fail_times": 2.0},  # an integer written as a float
        {"fail_times": 2.5},
        {"sleep_s": True},
        {"mode": "async", "sleep_s": 0},
        {"mode": None},
        {"extra": 1},
        {"sleep_s": 10**30},
    ],
)
def test_catalog_accepts_exactly_what_jsonschema_accepts(params: dict[str, object]) -> None:
    catalog = simulate_catalog()
    entry = catalog.resolve("simulate", "run")
    valid = not list(Draft202012Validator(entry.params_schema).iter_errors(params))

    try:
        catalog.validate(entry, params, ("body", "params"))
        accepted = True
    except InvalidParams:
        accepted = False

    assert accepted == valid


def test_catalog_unknown_plugin_lists_offered() -> None:
    with pytest.raises(UnknownPlugin, match="Offered: simulate"):
        simulate_catalog().resolve("nope", "run")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ExecutionNotFound("x"), 404),
        (IdempotencyConflict("reused"), 409),
        (InvalidParams("bad"), 422),
        (BrokerUnavailable("down"), 503),
    ],
)
def test_errors_map_to_problem_json(error: Exception, status: int) -> None:
    response = asyncio.run(agentq_error(None, error))  # type: ignore[arg-type]

    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    assert body["status"] == status
    assert body["type"].startswith("urn:agentq:problem:")
    assert body["detail"]


def test_settings_normalise_mysql_url_and_default_to_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(
        database_url="mysql://u:p@db/agentq", data_dir=tmp_path, broker_url="redis://r:6379/0", redis_url=""
    )
    assert s.database_url == "mysql+pymysql://u:p@db/agentq"
    assert s.redis_url == "redis://r:6379/0"
    assert Settings(database_url="", data_dir=tmp_path).database_url.startswith("sqlite:///")


def _error_classes(base: type[AgentqError] = AgentqError) -> list[type[AgentqError]]:
    found = [base]
    for sub in base.__subclasses__():
        found += _error_classes(sub)
    return found


def _instance(cls: type[AgentqError]) -> AgentqError:
    try:
        return cls("x")
    except TypeError:  # RateLimited, RetryLater: a delay too
        with_delay: Callable[..., AgentqError] = cls
        return with_delay("x", 1.0)


def _refused_body() -> dict[str, object]:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", b"999999999")]}
    asyncio.run(BodyLimit(None)(scope, receive, send))  # type: ignore[arg-type]
    return json.loads(sent[-1]["body"])  # type: ignore[arg-type,no-any-return]


def test_every_problem_type_has_one_title_everywhere() -> None:
    """Every way the API words a problem, walked: one title per type, in words."""
    answers = [asyncio.run(agentq_error(None, _instance(cls))) for cls in _error_classes()]  # type: ignore[arg-type]
    answers += [
        asyncio.run(validation_error(None, RequestValidationError(errors)))  # type: ignore[arg-type]
        for errors in (
            [{"type": "missing", "loc": ("body", "command"), "msg": "Field required"}],
            [{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error", "ctx": {"error": "x"}}],
        )
    ]
    answers += [
        asyncio.run(http_error(None, HTTPException(status, detail)))  # type: ignore[arg-type]
        for status, detail in ((404, "Not Found"), (404, "No such thing"), (405, "Method Not Allowed"))
    ]
    answers += [
        asyncio.run(database_error(None, OperationalError("SELECT 1", {}, Exception("gone")))),  # type: ignore[arg-type]
        asyncio.run(unexpected_error(None, RuntimeError("bug"))),  # type: ignore[arg-type]
    ]
    bodies = [json.loads(bytes(a.body)) for a in answers] + [_refused_body()]

    titles: dict[str, set[str]] = {}
    for body in bodies:
        titles.setdefault(body["type"], set()).add(body["title"])
    assert {t: len(ts) for t, ts in titles.items() if len(ts) > 1} == {}
    assert titles["urn:agentq:problem:invalid-request"] == {"Invalid request"}
    assert titles["urn:agentq:problem:http-404"] == {"Not found"}
    for body in bodies:  # words, not a class name
        assert re.fullmatch(r"[A-Z][a-z]*( [A-Za-z]+)*", body["title"]), body["title"]
