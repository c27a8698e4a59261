"""A bulk retry's filter, in process: a bad one is a 422 naming the field before the
database would be reached (unit tests open no sockets), and a key the API cannot derive
the retries' own keys from is refused."""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentq.core import db, store
from agentq.core.errors import InvalidRequest
from agentq.core.models import ExecutionStatus
from api.schemas import ExecutionRetryFilter
from tests.unit.api.conftest import PROBLEM, LocalAPI


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"status": "succeeded"}, ["body", "status", 0]),
        ({"status": ["failed", "running"]}, ["body", "status", 1]),
        ({"status": []}, ["body", "status"]),
        ({"status": 3}, ["body", "status"]),
        ({"plugin": ""}, ["body", "plugin"]),
        ({"plugin": "no spaces"}, ["body", "plugin"]),
        ({"created_after": "yesterday"}, ["body", "created_after"]),
        ({"created_before": "2026-13-01T00:00:00Z"}, ["body", "created_before"]),
        ({"limit": 0}, ["body", "limit"]),
        ({"limit": 1001}, ["body", "limit"]),
        ({"limit": "many"}, ["body", "limit"]),
        ({"owner": "someone-else"}, ["body", "owner"]),
    ],
)
def test_a_bad_retry_filter_is_a_422_naming_the_field(
    api: TestClient, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = api.post("/v1/executions/retry", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert loc in [e["loc"] for e in response.json()["errors"]]
    assert str(loc[1]) in response.json()["detail"]


def test_a_retry_window_that_ends_before_it_starts_is_a_422_saying_so(api: TestClient) -> None:
    body = {"created_after": "2026-12-07T10:00:00Z", "created_before": "2026-12-07T09:00:00+00:00"}

    response = api.post("/v1/executions/retry", json=body)

    assert response.status_code == 422, response.text
    assert "created_before must be later than created_after" in response.json()["detail"]


def test_a_retry_filter_takes_one_status_or_several_and_defaults_to_every_ending_but_success() -> None:
    assert ExecutionRetryFilter().status == ["failed", "timed_out", "cancelled"]
    assert ExecutionRetryFilter().limit == 100
    assert ExecutionRetryFilter.model_validate({"status": "timed_out"}).status == ["timed_out"]
    both = ExecutionRetryFilter.model_validate({"status": ["failed", "cancelled"]})
    assert both.status == ["failed", "cancelled"]


def test_a_naive_time_in_a_retry_filter_is_read_as_utc() -> None:
    with pytest.raises(ValueError, match="later than"):
        ExecutionRetryFilter.model_validate(
            {"created_after": "2026-12-07T10:00:00", "created_before": "2026-12-07T11:00:00+02:00"}
        )


@pytest.mark.parametrize(
    "statuses", [[], [ExecutionStatus.SUCCEEDED], [ExecutionStatus.FAILED, ExecutionStatus.RUNNING]]
)
def test_the_store_re_drives_only_what_has_failed_timed_out_or_been_cancelled(
    statuses: list[ExecutionStatus],
) -> None:
    with pytest.raises(InvalidRequest, match="failed, timed_out, cancelled"):
        store.RetryFilter(statuses=statuses)


@pytest.mark.parametrize("limit", [0, 1001])
def test_the_store_re_drives_1_to_1000_at_once(limit: int) -> None:
    with pytest.raises(InvalidRequest, match="1 to 1000"):
        store.RetryFilter(limit=limit, created_after=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_bulk_retry_key_too_long_to_derive_its_rows_keys_from_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=f"at most {store.MAX_BULK_KEY} characters"):
        db.call(
            store.retry_executions,
            store.RetryFilter(),
            "owner",
            idempotency_key="k" * (store.MAX_BULK_KEY + 1),
        )


def test_a_bulk_retry_key_too_long_for_its_rows_keys_is_a_422(local: LocalAPI) -> None:
    _, key = local.new_key("redrive")
    tenant = local.client_for(key)

    response = tenant.post("/v1/executions/retry", json={}, headers={"Idempotency-Key": "k" * 229})

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
