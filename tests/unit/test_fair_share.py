"""Fair share without services: limit names as clients see them, the plugin limit a worker
publishes, and the start-time rules of a submission."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from agentq.core import scopes
from agentq.core.settings import settings
from agentq.plugin import Context, Plugin, command
from api.schemas import ExecutionCreate
from workers.plugins.registry import Registry
from workers.plugins.simulate import SimulateParams


class Capped(Plugin):
    name = "capped"
    max_concurrency = 3

    @command(SimulateParams)
    def run(self, ctx: Context, params: SimulateParams) -> None:
        """Nothing."""


def test_limit_names_never_show_an_owner() -> None:
    owner = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert scopes.public_name(scopes.api_key_scope(owner)) == "api_key"
    assert scopes.public_name(scopes.plugin_scope("llm")) == "plugin:llm"
    assert scopes.public_name(scopes.concurrency_key_scope(owner, "a:b")) == "concurrency_key:a:b"


def test_a_worker_publishes_its_plugins_limit_and_the_setting_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = Registry()
    registry.add(Capped)
    assert {e.max_concurrency for e in registry.catalog("agentq")} == {3}
    monkeypatch.setattr(settings, "plugin_limits", {"capped": 7})
    assert {e.max_concurrency for e in registry.catalog("agentq")} == {7}


def test_a_start_time_is_run_at_or_delay_s_within_the_horizon() -> None:
    base = {"plugin": "echo", "command": "echo"}
    soon = datetime.now(UTC) + timedelta(hours=1)
    assert ExecutionCreate.model_validate({**base, "run_at": soon.isoformat()}).starts_at() == soon
    delayed = ExecutionCreate.model_validate({**base, "delay_s": 60}).starts_at()
    assert delayed is not None
    assert delayed > datetime.now(UTC) + timedelta(seconds=59)
    assert ExecutionCreate.model_validate(base).starts_at() is None
    with pytest.raises(ValidationError, match="not both"):
        ExecutionCreate.model_validate({**base, "run_at": soon.isoformat(), "delay_s": 1})
    with pytest.raises(ValidationError, match="AGENTQ_RUN_AT_HORIZON_S"):
        ExecutionCreate.model_validate({**base, "delay_s": settings.run_at_horizon_s + 60})
    with pytest.raises(ValidationError, match="timezone"):
        ExecutionCreate.model_validate({**base, "run_at": "2030-01-01T00:00:00"})
