"""The public plugin SDK: what ``from agentq import …`` offers, and that it is enough."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentq
import agentq.core.errors
import agentq.plugin
from workers.plugins.registry import load_registry

PUBLIC = ["Context", "PermanentError", "Plugin", "RetryLater", "command", "run_command"]

# A third-party plugin that knows only ``agentq``, installed under the entry point group.
GREETER = '''
from pydantic import BaseModel

from agentq import Context, PermanentError, Plugin, RetryLater, command


class HelloParams(BaseModel):
    who: str = "world"


class Greeter(Plugin):
    name = "sdk-greeter"
    description = "Says hello."

    @command(HelloParams)
    def hello(self, ctx: Context, params: HelloParams) -> dict[str, str]:
        """Greet someone."""
        ctx.progress(50, "thinking")
        return {"greeting": f"hello {params.who}", "execution": ctx.execution_id}

    @command(HelloParams)
    async def later(self, ctx: Context, params: HelloParams) -> None:
        """Ask for another attempt."""
        raise RetryLater("busy", delay_s=3)

    @command(HelloParams)
    def never(self, ctx: Context, params: HelloParams) -> None:
        """Fail for good."""
        raise PermanentError(f"no such person: {params.who}")
'''


def test_public_names_are_the_documented_ones() -> None:
    assert sorted(agentq.__all__) == PUBLIC
    assert set(PUBLIC) <= set(dir(agentq))


def test_public_names_are_the_ones_the_worker_uses() -> None:
    # The runtime recognises the errors and the context by class: they must be the same objects.
    assert agentq.RetryLater is agentq.core.errors.RetryLater
    assert agentq.PermanentError is agentq.core.errors.PermanentError
    assert agentq.Plugin is agentq.plugin.Plugin
    assert agentq.Context is agentq.plugin.Context
    assert agentq.command is agentq.plugin.command
    assert agentq.run_command is agentq.plugin.run_command


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Plugins'"):
        _ = agentq.Plugins
    from agentq import output  # a submodule is still found by name

    assert output.__name__ == "agentq.output"


def test_a_plugin_written_against_agentq_alone_loads_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sdk_greeter.py").write_text(GREETER)
    dist = tmp_path / "sdk_greeter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sdk-greeter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[agentq.plugins]\nsdk-greeter = sdk_greeter:Greeter\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = load_registry()
    plugin, cmd = registry.command("sdk-greeter", "hello")

    assert cmd.params_schema()["properties"]["who"]["default"] == "world"
    ctx = agentq.Context("01SDK", 1)
    assert agentq.run_command(plugin, "hello", {"who": "Ada"}, ctx) == {
        "greeting": "hello Ada",
        "execution": "01SDK",
    }
    assert ctx.last_progress == {"percent": 50.0, "message": "thinking"}
    with pytest.raises(agentq.RetryLater) as retry:
        agentq.run_command(plugin, "later", {})
    assert retry.value.delay_s == 3
    with pytest.raises(agentq.PermanentError, match="no such person: Bob"):
        agentq.run_command(plugin, "never", {"who": "Bob"})


def test_importing_agentq_loads_neither_pydantic_nor_the_api_nor_celery() -> None:
    # The ``agentq`` command imports the package: ``agentq --help`` must stay fast.
    code = textwrap.dedent(
        """
        import sys
        import agentq, agentq.cli
        heavy = {"pydantic", "celery", "kombu", "fastapi", "sqlalchemy", "api", "core", "workers", "tasks"}
        print(" ".join(sorted(heavy & {name.split(".")[0] for name in sys.modules})))
        """
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert loaded.stdout.split() == []


def test_a_command_may_declare_whether_it_computes() -> None:
    from pydantic import BaseModel

    class Params(BaseModel):
        n: int = 1

    class Mixed(agentq.Plugin):
        name = "sdk-mixed"

        @agentq.command(Params, cpu_bound=True)
        def crunch(self, _ctx: agentq.Context, params: Params) -> int:
            return params.n

        @agentq.command(Params)
        def fetch(self, _ctx: agentq.Context, params: Params) -> int:
            return params.n

    assert Mixed.commands["crunch"].cpu_bound is True
    assert Mixed.commands["fetch"].cpu_bound is None  # learned by the worker from its runs
