"""A wheel of agentq installed alone into a fresh venv, with no requirements file, runs.

That is what a plugin author or a Dockerfile without the pins gets, so every module the
installed code imports must come with what pyproject.toml declares. The venv is made once
for the module (pip resolves from the configured index: a minute or two). Its processes
run in a directory outside the repository, so that nothing is imported from the tree.
"""

import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.integration.processes import ROOT, Proc, free_port, wait_until

BUILD_S = 300
INSTALL_S = 900
RUN_S = 120
ADMIN_KEY = "install-test-admin-key"
ACTIVE_BEAT = "this beat is now the active one"


@dataclass(frozen=True)
class Install:
    venv: Path
    wheel: Path
    home: Path  # where its processes run: outside the repository

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without its venv, its import path or agentq's settings."""
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not name.startswith("AGENTQ_")
        }
        return env | {
            "PATH": os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")]),
            "AGENTQ_DATA_DIR": str(self.home / "var"),
            "AGENTQ_DATABASE_URL": f"sqlite:///{self.home / 'agentq.db'}",
            "AGENTQ_BROKER_URL": REDIS_URL,
            **extra,
        }

    def run(
        self, *argv: str, timeout_s: float = RUN_S, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=self.home,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def start(self, name: str, argv: list[str], log_dir: Path, **env: str) -> Proc:
        return Proc(name, argv, self.env(PYTHONUNBUFFERED="1", **env), log_dir, cwd=self.home)


def copy_sources(into: Path) -> Path:
    """What the wheel is built from, copied so that the build leaves the tree as it was."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    packages = {pattern.split(".")[0].rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    into.mkdir()
    for name in ["pyproject.toml", pyproject["project"]["readme"]]:
        shutil.copy2(ROOT / name, into / name)
    for name in setuptools.get("py-modules", []):
        shutil.copy2(ROOT / f"{name}.py", into / f"{name}.py")
    for name in packages:
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    base = tmp_path_factory.mktemp("install")
    source = copy_sources(base / "source")
    # The wheel needs only the build backend that this venv already has.
    build = [
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(base / "dist"),
        str(source),
    ]
    checked(subprocess.run([sys.executable, "-m", *build], capture_output=True, text=True, timeout=BUILD_S))
    (wheel,) = (base / "dist").glob("agentq-*.whl")
    venv = base / "venv"
    checked(
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=RUN_S
        )
    )
    home = base / "home"
    home.mkdir()
    install = Install(venv, wheel, home)
    checked(install.run(install.bin("python"), "-m", "pip", "install", str(wheel), timeout_s=INSTALL_S))
    yield install
    shutil.rmtree(base, ignore_errors=True)  # a quarter of a gigabyte


def test_the_wheel_takes_only_the_top_level_names_the_docs_list(installed: Install) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        top = {name.split("/")[0].removesuffix(".py") for name in wheel.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {
        "agentq", "api", "tasks", "workers", "beat_schedule",
    }  # fmt: skip


def test_the_api_the_celery_app_beat_and_the_cli_import(installed: Install) -> None:
    code = (
        "import api.main, workers.app, beat_schedule, agentq.cli\n"
        "for module in (api.main, workers.app, beat_schedule, agentq.cli): print(module.__file__)"
    )
    imported = checked(installed.run(installed.bin("python"), "-c", code))

    files = [Path(line) for line in imported.stdout.split()]
    assert len(files) == 4
    assert all(path.is_relative_to(installed.venv) for path in files), files

    shown = checked(installed.run(installed.bin("agentq"), "--help"))
    assert "Usage: agentq" in shown.stdout
    assert "migrate" in shown.stdout


@dataclass(frozen=True)
class Started:
    url: str
    worker: Proc
    beat: Proc
    api: Proc

    def running(self) -> bool:
        return self.worker.alive and self.beat.alive and self.api.alive

    def logs(self) -> str:
        return "\n".join(
            f"--- {proc.name}:\n{proc.tail(3000)}" for proc in (self.worker, self.beat, self.api)
        )


@pytest.fixture
def started(installed: Install, tmp_path: Path) -> Iterator[Started]:
    """The installed API, worker and beat on SQLite and the test Redis."""
    env = {
        "AGENTQ_ADMIN_API_KEY": ADMIN_KEY,
        "AGENTQ_CATALOG_TTL_S": "0.5",
        # A queue of its own: nothing it sends reaches another test's worker.
        "AGENTQ_DEFAULT_QUEUE": f"agentq-install-{time.time_ns()}",
        "AGENTQ_BEAT_TICK_S": "0.2",
        "AGENTQ_BEAT_LOCK_S": "3",
    }
    checked(installed.run(installed.bin("agentq"), "migrate", env=env))
    python = installed.bin("python")
    port = free_port()
    celery = [python, "-m", "celery", "-A", "workers.app"]
    procs = [
        installed.start("worker", [*celery, "worker", "--loglevel", "INFO", "--hostname", "install@%h",
                                   "--concurrency", "2", "--without-mingle", "--without-gossip"], tmp_path, **env),
        installed.start("beat", [*celery, "beat", "--loglevel", "INFO"], tmp_path, **env),
        installed.start("api", [python, "-m", "uvicorn", "api.main:app", "--port", str(port)], tmp_path, **env),
    ]  # fmt: skip
    try:
        yield Started(f"http://127.0.0.1:{port}", *procs)
    finally:
        for proc in procs:
            proc.stop()


def test_the_installed_worker_beat_and_api_run_an_execution(started: Started) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=started.url, headers=headers, timeout=60) as client:
        # Each wait ends early when a process exits: one that crashes at import does so at once.
        wait_until(
            lambda: not started.running() or client.get("/healthz").status_code == 200,
            60,
            "the installed API",
        )
        wait_until(
            lambda: (
                not started.running()
                or "echo" in {p["name"] for p in client.get("/v1/plugins").json()["plugins"]}
            ),
            90,
            "the installed worker's plugin catalog",
        )
        assert started.running(), started.logs()
        submitted = client.post(
            "/v1/executions", json={"plugin": "echo", "command": "echo", "params": {"from": "the wheel"}}
        )
        assert submitted.status_code == 202, submitted.text
        row = client.get(f"/v1/executions/{submitted.json()['id']}", params={"wait": 30}).json()

    assert (row["status"], row["result"]) == ("succeeded", {"from": "the wheel"})
    wait_until(lambda: ACTIVE_BEAT in started.beat.log(), 60, "the installed beat to lead")
    assert started.running(), started.logs()


def test_the_news_plugin_comes_with_the_worker_extra(installed: Install) -> None:
    code = (
        "from workers.plugins.registry import load_registry\nprint(*sorted(p.name for p in load_registry()))"
    )

    without = checked(installed.run(installed.bin("python"), "-c", code))
    assert without.stdout.split() == ["echo", "http", "llm", "simulate"]
    assert "pip install 'agentq[worker]'" in without.stderr

    extra = f"{installed.wheel}[worker]"
    checked(installed.run(installed.bin("python"), "-m", "pip", "install", extra, timeout_s=INSTALL_S))
    with_extra = checked(installed.run(installed.bin("python"), "-c", code))
    assert with_extra.stdout.split() == ["echo", "http", "llm", "news", "simulate"]
