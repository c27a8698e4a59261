"""The plugin SDK, the registry and the built-in echo and simulate plugins."""

import asyncio
import logging
import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agentq.core.errors import PluginNotFound, RetryLater, UnknownCommand
from agentq.plugin import Context, Plugin, command, run_command
from workers.plugins import registry as registry_module
from workers.plugins.echo import EchoPlugin
from workers.plugins.registry import DuplicatePlugin, Registry, load_registry
from workers.plugins.simulate import SimulatePlugin


class Nothing(BaseModel):
    pass


class Twin(Plugin):
    name = "echo"

    @command(Nothing)
    def noop(self, ctx: Context, params: Nothing) -> None:
        """Do nothing."""


def test_registry_loads_builtins_and_refuses_duplicates() -> None:
    registry = load_registry()

    assert {"echo", "simulate", "http", "news", "llm"} <= {p.name for p in registry}
    with pytest.raises(DuplicatePlugin, match="'echo' is already registered"):
        registry.add(Twin)


def test_a_plugin_whose_dependency_is_missing_is_left_out_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given feedparser not installed (the worker extra left out): importing it fails
    monkeypatch.setitem(sys.modules, "feedparser", None)
    monkeypatch.delitem(sys.modules, "workers.plugins.news", raising=False)

    with caplog.at_level(logging.ERROR, logger="workers.plugins.registry"):
        registry = load_registry()

    # Then the news plugin is left out, named in an error, and the others serve
    names = {p.name for p in registry}
    assert "news" not in names
    assert {"echo", "simulate", "http", "llm"} <= names
    assert {entry.plugin for entry in registry.catalog("agentq")} == names
    assert "feedparser" in registry.left_out["news"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "plugin news" in record.getMessage()
    assert "feedparser" in record.getMessage()
    assert "ModuleNotFoundError" in record.getMessage() or "ImportError" in record.getMessage()


def test_an_installed_plugin_that_cannot_be_imported_is_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = EntryPoint("broken", "agentq_no_such_module:BrokenPlugin", registry_module.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry_module, "entry_points", lambda **_: [broken])

    with caplog.at_level(logging.ERROR, logger="workers.plugins.registry"):
        registry = load_registry()

    assert "broken" in registry.left_out
    assert "agentq_no_such_module" in registry.left_out["broken"]
    assert {"echo", "simulate"} <= {p.name for p in registry}
    assert any("plugin broken" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_registry_lookup_errors_name_what_exists() -> None:
    registry = Registry()
    registry.add(SimulatePlugin)

    with pytest.raises(PluginNotFound):
        registry.get("nope")
    with pytest.raises(UnknownCommand, match="it offers: run"):
        registry.command("simulate", "walk")


def test_catalog_entries_carry_schema_queue_and_description() -> None:
    registry = Registry()
    registry.add(SimulatePlugin)

    (entry,) = registry.catalog("agentq")

    assert (entry.plugin, entry.command, entry.queue, entry.result_type) == (
        "simulate",
        "run",
        "agentq",
        "simulate",
    )
    assert entry.params_schema["properties"]["mode"]["enum"] == ["sync", "async"]
    assert entry.description.startswith("Wait, fail")


def test_commands_are_collected_with_sync_and_async_kinds() -> None:
    class Mixed(Plugin):
        name = "mixed"

        @command(Nothing)
        def a(self, _ctx: Context, _params: Nothing) -> int:
            return 1

        @command(Nothing, name="b-async")
        async def b(self, _ctx: Context, _params: Nothing) -> int:
            return 2

    assert {n: c.is_async for n, c in Mixed.commands.items()} == {"a": False, "b-async": True}
    assert run_command(Mixed(), "b-async", {}) == 2


def test_echo_returns_params() -> None:
    assert run_command(EchoPlugin(), "echo", {"a": 1, "b": [True]}) == {"a": 1, "b": [True]}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_simulate_reports_progress_and_result(mode: str) -> None:
    seen: list[dict[str, Any]] = []
    ctx = Context("01TEST", 1, on_progress=seen.append)

    result = run_command(
        SimulatePlugin(), "run", {"sleep_s": 0.05, "progress_steps": 2, "result_bytes": 3, "mode": mode}, ctx
    )

    assert result["filler"] == "xxx"
    assert result["mode"] == mode
    assert [p["percent"] for p in seen] == [50.0, 100.0]


def test_simulate_fails_the_first_attempts_retryably() -> None:
    with pytest.raises(RetryLater):
        run_command(SimulatePlugin(), "run", {"fail_times": 2}, Context("01TEST", 2))
    assert run_command(SimulatePlugin(), "run", {"fail_times": 2}, Context("01TEST", 3))["attempt"] == 3


def test_simulate_rejects_bad_params() -> None:
    with pytest.raises(ValidationError):
        run_command(SimulatePlugin(), "run", {"mode": "fast"})


def test_ctx_asleep_raises_when_stopped() -> None:
    ctx = Context("01TEST", 1)
    ctx.interrupt("cancelled")

    with pytest.raises(BaseException, match="cancelled"):
        asyncio.run(ctx.asleep(0))


def test_ctx_logger_hands_lines_to_on_log_and_still_logs(caplog: pytest.LogCaptureFixture) -> None:
    lines: list[tuple[int, str]] = []
    ctx = Context("01TEST", 1, on_log=lambda level, message: lines.append((level, message)))

    with caplog.at_level(logging.INFO, logger="agentq.plugin"):
        ctx.logger.info("fetched %d items from %s", 3, "feed")
        ctx.logger.info("%(who)s done", {"who": "ada"})
        ctx.logger.debug("too chatty")
        try:
            raise ValueError("bad feed")
        except ValueError:
            ctx.logger.exception("parse failed")

    assert lines == [
        (logging.INFO, "fetched 3 items from feed"),
        (logging.INFO, "ada done"),
        (logging.ERROR, "parse failed\nValueError: bad feed"),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "fetched 3 items from feed",
        "ada done",
        "parse failed",
    ]
    assert caplog.records[0].funcName == "test_ctx_logger_hands_lines_to_on_log_and_still_logs"
