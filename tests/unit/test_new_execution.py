"""A new execution's defaults are filled in one place, whoever creates it."""

from datetime import UTC, datetime

import pytest

from agentq.core import store
from agentq.core.models import DEFAULT_PRIORITY, Schedule
from agentq.core.schedules import spec as schedule_spec
from agentq.core.settings import settings


@pytest.fixture(autouse=True)
def server_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "default_timeout_s", 123.0)
    monkeypatch.setattr(settings, "default_max_retries", 4)
    monkeypatch.setattr(settings, "default_queue", "agentq.default")


def test_what_a_request_leaves_out_is_the_servers() -> None:
    spec = store.NewExecution.with_defaults("echo", "echo", {"a": 1})

    assert (spec.queue, spec.priority, spec.timeout_s, spec.max_retries) == ("agentq.default", 5, 123.0, 4)
    assert DEFAULT_PRIORITY == 5


def test_what_a_request_gives_is_kept_zero_included() -> None:
    spec = store.NewExecution.with_defaults(
        "echo", "echo", {}, queue="agentq.slow", priority=0, timeout_s=2.5, max_retries=0, owner="team"
    )

    assert (spec.queue, spec.priority, spec.timeout_s, spec.max_retries) == ("agentq.slow", 0, 2.5, 0)
    assert spec.owner == "team"


def test_a_schedule_without_limits_fires_with_the_servers() -> None:
    schedule = Schedule(
        id="S1",
        plugin="echo",
        command="echo",
        params={},
        queue="agentq.cron",
        priority=7,
        timeout_s=None,
        max_retries=None,
        owner="team",
    )
    slot = datetime(2026, 1, 1, tzinfo=UTC)

    spec = schedule_spec(schedule, slot)

    assert (spec.queue, spec.priority, spec.timeout_s, spec.max_retries) == ("agentq.cron", 7, 123.0, 4)
    assert (spec.schedule_id, spec.slot_at, spec.owner) == ("S1", slot, "team")
