"""Property-based: requests generated from our own OpenAPI schema never get a 5xx.

The schema comes from the app itself; every generated request goes over HTTP to the
real API server of the ``stack`` fixture, with its worker and MariaDB behind it.
"""

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.main import app
from tests.integration.conftest import ADMIN_KEY, Stack, bearer

schema = schemathesis.openapi.from_dict(app.openapi())
# Fuzzed under a key of its own: a bulk retry runs the caller's past failures again (under
# the admin key, the minute-long sleeps and CPU burns of the tests before), and a webhook
# subscription would receive the events of every later execution of its key.
OWN_KEY = r"^(/v1/executions/retry|/v1/webhooks.*)$"


@schema.exclude(path_regex=OWN_KEY).parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_gets_a_5xx(case: schemathesis.Case[Any], stack: Stack) -> None:
    case.call_and_validate(base_url=stack.url, headers=bearer(ADMIN_KEY), checks=[not_a_server_error])


@pytest.fixture
def fresh_key(stack: Stack) -> str:
    response = stack.client.post("/v1/keys", json={"name": f"fuzz-{time.time_ns()}"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


@schema.include(path_regex=OWN_KEY).parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_under_a_key_of_its_own_gets_a_5xx(
    case: schemathesis.Case[Any], stack: Stack, fresh_key: str
) -> None:
    case.call_and_validate(base_url=stack.url, headers=bearer(fresh_key), checks=[not_a_server_error])
