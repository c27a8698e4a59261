"""Real agentq processes for the integration tests, started and stopped by fixtures."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = ROOT / "tests" / "fixtures" / "plugins"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # A test server must not outlive a killed test run (it would consume shared queues).
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")


class Proc:
    """A child process in its own process group, its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 2000) -> str:
        return self.log()[-chars:]

    def signal(self, sig: int) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 15) -> int | None:
        """SIGTERM (warm shutdown), then SIGKILL after ``timeout_s``."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(10)


def child_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {**os.environ, **base, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS_DIR), str(ROOT)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(
    env: dict[str, str], log_dir: Path, name: str, queues: str = "agentq", concurrency: int = 8
) -> Proc:
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO",
        "--hostname", f"{name}@%h", "--queues", queues, "--concurrency", str(concurrency),
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return Proc(name, argv, env, log_dir)


def start_api(env: dict[str, str], log_dir: Path, port: int) -> Proc:
    argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("api", argv, env, log_dir)
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 30, "the API")
    return proc


def start_beat(env: dict[str, str], log_dir: Path, name: str) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO"]
    return Proc(name, argv, env, log_dir)
