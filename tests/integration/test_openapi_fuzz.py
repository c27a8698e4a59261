"""Property-based: requests generated from our own OpenAPI schema never get a 5xx.

The schema comes from the app itself; every generated request goes over HTTP to the
real API server of the ``stack`` fixture, with its worker and MariaDB behind it.
"""

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.main import app
from tests.integration.conftest import ADMIN_KEY, Stack, bearer

schema = schemathesis.openapi.from_dict(app.openapi())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_gets_a_5xx(case: schemathesis.Case[Any], stack: Stack) -> None:
    case.call_and_validate(base_url=stack.url, headers=bearer(ADMIN_KEY), checks=[not_a_server_error])
