"""Catalog validation, problem+json mapping and settings, without any service."""

import asyncio
import json

import pytest
from jsonschema import Draft202012Validator

from api.catalog import Catalog
from api.problems import agentq_error
from core.errors import (
    BrokerUnavailable,
    ExecutionNotFound,
    IdempotencyConflict,
    InvalidParams,
    UnknownPlugin,
)
from core.settings import Settings
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

    body = json.loads(response.body)
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    assert body["status"] == status and body["type"].startswith("urn:agentq:problem:")
    assert body["detail"]


def test_settings_normalise_mysql_url_and_default_to_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(
        database_url="mysql://u:p@db/agentq", data_dir=tmp_path, broker_url="redis://r:6379/0", redis_url=""
    )
    assert s.database_url == "mysql+pymysql://u:p@db/agentq"
    assert s.redis_url == "redis://r:6379/0"
    assert Settings(database_url="", data_dir=tmp_path).database_url.startswith("sqlite:///")
