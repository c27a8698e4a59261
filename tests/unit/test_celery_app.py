"""One home per concern: the Celery app and its configuration (``agentq/core/queue.py``), kombu's
patches (``agentq/core/broker.py``), and packages that import each other one way only."""

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from kombu.transport import redis as kombu_redis

from agentq.core import broker, queue
from agentq.core.settings import settings

ROOT = Path(__file__).resolve().parents[2]

# What each package of the running system may import of the others: core is below
# everything; the API and the worker never import each other; the tasks sit on top.
MAY_IMPORT = {
    "agentq": {"agentq.core"},  # the SDK, CLI and client: none of the processes' packages
    "agentq.core": set(),
    "api": {"agentq.core"},
    "workers": {"agentq.core", "agentq"},  # agentq: the plugin SDK, which built-in plugins use
    "tasks": {"agentq.core", "workers"},
    "beat_schedule": {"agentq.core"},
}


def _package(module: str) -> str:
    """The package of ``MAY_IMPORT`` (or ``agentq``) that ``module`` belongs to."""
    return "agentq.core" if module.split(".")[:2] == ["agentq", "core"] else module.split(".")[0]


def test_the_worker_and_beat_settings_are_the_apps_own() -> None:
    conf = queue.app.conf
    assert conf.worker_pool == "threads"
    assert conf.worker_concurrency == settings.worker_concurrency
    assert conf.beat_scheduler == "beat_schedule:DatabaseScheduler"
    assert {entry["task"] for entry in conf.beat_schedule.values()} == {
        queue.REAP_EXECUTIONS,
        queue.PURGE_EXECUTIONS,
        queue.SUBMIT_EXECUTION,
        queue.SWEEP_WEBHOOKS,
    }
    assert conf.include == queue.TASK_MODULES
    # A maintenance pass beat sent while no worker ran is dropped, not run late.
    assert conf.beat_schedule["reap-expired-leases"]["options"]["expires"] == settings.reaper_interval_s


def test_the_worker_app_registers_its_tasks_through_include_only() -> None:
    script = (
        "import sys, workers.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tasks'))\n"
        "workers.app.app.loader.import_default_modules()\n"
        "print(sorted(t for t in workers.app.app.tasks if t.startswith('agentq.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()

    assert out[0] == "[]"  # importing the worker's app imports no task module
    assert out[1] == repr(
        sorted(
            [
                *(queue.PURGE_EXECUTIONS, queue.REAP_EXECUTIONS, queue.RUN_EXECUTION, queue.SUBMIT_EXECUTION),
                *(queue.DELIVER_WEBHOOKS, queue.SWEEP_WEBHOOKS),
            ]
        )
    )


def _imports(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names |= {_package(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(_package(node.module))
    return names


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_packages_import_each_other_one_way(package: str) -> None:
    ours = {*MAY_IMPORT, "agentq"}
    path = ROOT / package.replace(".", "/")
    sources = [path.with_suffix(".py")] if path.with_suffix(".py").exists() else path.rglob("*.py")
    imported = {
        (name, str(source.relative_to(ROOT)))
        for source in sources
        for name in _imports(source) & ours
        if name != package
    }
    assert {(name, where) for name, where in imported if name not in MAY_IMPORT[package]} == set()


def test_a_channel_whose_connection_was_closed_raises_a_connection_error() -> None:
    # agentq.core.queue applied agentq/core/broker.py to kombu when it made the app.
    assert kombu_redis.Channel._connparams is broker._connparams_of_open_channel
    closed = SimpleNamespace(connection=SimpleNamespace(client=None))

    with pytest.raises(redis.ConnectionError):
        kombu_redis.Channel._connparams(closed)  # type: ignore[no-untyped-call, arg-type]
