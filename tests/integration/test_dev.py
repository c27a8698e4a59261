"""``agentq dev``: one command starts the whole stack, serves executions, and stops clean.

Each test runs the real command in a subprocess with its own data directory and ports,
on the embedded Redis and SQLite, so it needs no services.
"""

import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

START_S = 90.0
STOP_S = 20.0
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}
# What a process that has already gone raises when looked at or signalled.
GONE = (psutil.Error, ProcessLookupError, PermissionError)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dev:
    """A running ``agentq dev``: its output, and every descendant process it ever had."""

    def __init__(self, data_dir: Path, api_port: int, flower_port: int) -> None:
        self.data_dir = data_dir
        # Only this test's settings: no AGENTQ_* from the shell (or CI) may redirect the stack.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTQ_", "FLOWER_"))}
        env |= {
            "AGENTQ_DATA_DIR": str(data_dir),
            "AGENTQ_API_PORT": str(api_port),
            "AGENTQ_FLOWER_PORT": str(flower_port),
        }
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.flower_url = f"http://127.0.0.1:{flower_port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentq.cli", "dev"],
            cwd=data_dir.parent,  # not the repository: agentq dev must not depend on the directory
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.seen: dict[int, psutil.Process] = {}
        self._lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._lock:
                self._lines.append(raw.decode(errors="replace"))

    def output(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def tail(self, lines: int = 80) -> str:
        return "agentq dev output:\n" + "".join(self.output().splitlines(keepends=True)[-lines:])

    def descendants(self) -> list[psutil.Process]:
        """The processes below agentq dev now; each is also remembered for the final check."""
        with suppress(*GONE):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        return [p for p in self.seen.values() if _alive(p)]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Poll ``condition`` while watching the process tree; False on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.descendants()
            if condition():
                return True
            if self.proc.poll() is not None:
                return condition()
            time.sleep(0.2)
        return False

    def leftovers(self, timeout_s: float = 5.0) -> list[str]:
        """Descendants still alive once agentq dev has exited (zombies count as gone)."""
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=timeout_s)
        return [f"{p.pid} {' '.join(_cmdline(p))}" for p in alive if _alive(p)]

    def kill(self) -> None:
        """Leave nothing behind, whatever state the test ended in."""
        if self.proc.poll() is None:
            self.descendants()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for process in self.seen.values():
            # psutil refuses a pid that was reused since, so no unrelated process is hit.
            if _alive(process):
                with suppress(*GONE):
                    process.kill()


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return [str(part) for part in process.cmdline()]
    except psutil.Error:
        return ["?"]


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    started: list[Dev] = []

    def start(api_port: int | None = None) -> Dev:
        # The same data directory each time: a second start continues the first one's state.
        dev = Dev(tmp_path / "var", api_port or free_port(), free_port())
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.kill()


def _ready(dev: Dev) -> bool:
    """agentq dev printed its URLs, which it does once the API answers."""
    out = dev.output()
    return f"{dev.api_url}/docs" in out and dev.flower_url in out


def _api_key(dev: Dev) -> str:
    """The key from the printed curl example, so the test uses what a user would paste."""
    found = re.search(r"Authorization: Bearer ([^']+)'", dev.output())
    assert found, dev.tail()
    return found.group(1)


def _answers(url: str, text: str = "") -> bool:
    try:
        response = httpx.get(url, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and text in response.text


def _submit(client: httpx.Client, body: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    # A worker publishes its plugins as it becomes ready; until then the API answers 422.
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.post("/v1/executions", json=body)
        if response.status_code != 422 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 202, response.text
    execution: dict[str, Any] = response.json()
    return execution


def _wait_terminal(client: httpx.Client, execution_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/v1/executions/{execution_id}", params={"wait": 10})
        assert response.status_code == 200, response.text
        execution: dict[str, Any] = response.json()
        if execution["status"] in TERMINAL or time.monotonic() > deadline:
            return execution


def test_dev_runs_an_execution_and_stops_on_sigterm(start_dev: Callable[..., Dev]) -> None:
    # Given agentq dev, started from nothing but a data directory
    dev = start_dev()
    assert dev.wait_for(lambda: _ready(dev), START_S), dev.tail()
    assert "curl -s -X POST" in dev.output()
    auth = {"Authorization": f"Bearer {_api_key(dev)}"}

    # When an echo execution is submitted over HTTP
    params = {"hello": "world", "n": [1, 2, 3]}
    with httpx.Client(base_url=dev.api_url, headers=auth, timeout=30, trust_env=False) as client:
        submitted = _submit(client, {"plugin": "echo", "command": "echo", "params": params})
        execution = _wait_terminal(client, submitted["id"])

    # Then a worker runs it to success, the console answers where the banner says, and Flower is up
    assert execution["status"] == "succeeded", execution
    assert f"Console {dev.api_url}/ui" in dev.output(), dev.tail()
    assert _answers(f"{dev.api_url}/ui/sign-in", "API key"), dev.tail()
    assert execution["result"] == params
    assert dev.wait_for(lambda: _answers(f"{dev.flower_url}/healthcheck", "OK"), 30), dev.tail()
    names = " ".join(" ".join(_cmdline(p)) for p in dev.descendants())
    for part in ("redis-server", "uvicorn", "worker", "beat", "flower"):
        assert part in names, names

    # And the agentq command runs as the banner spells it, from a shell that has no venv
    exported = re.search(r"^  export (AGENTQ_URL=\S+) (AGENTQ_API_KEY=\S+)$", dev.output(), re.M)
    example = re.search(
        r"^  (\S+(?: -m agentq.cli)?) submit echo echo -p hello=world --wait$", dev.output(), re.M
    )
    assert exported, dev.tail()
    assert example, dev.tail()
    env = {"PATH": os.defpath, "HOME": os.environ.get("HOME", "/tmp")}
    env |= dict(pair.split("=", 1) for pair in exported.groups())
    cli = subprocess.run(
        [*shlex.split(example.group(1)), "submit", "echo", "echo", "-p", "hello=world", "--wait", "--json"],
        cwd=dev.data_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert '"result":{"hello":"world"}' in cli.stdout

    # When agentq dev gets SIGTERM, it exits 0 and no process it started remains
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(timeout=STOP_S) == 0, dev.tail()
    assert dev.leftovers() == [], dev.tail()


def test_dev_stops_everything_when_a_child_dies(start_dev: Callable[..., Dev]) -> None:
    # Given a running agentq dev
    dev = start_dev()
    assert dev.wait_for(lambda: _ready(dev), START_S), dev.tail()

    # When its worker dies
    workers = [p for p in dev.descendants() if "worker" in _cmdline(p)]
    assert workers, dev.tail()
    workers[0].kill()

    # Then agentq dev names it, stops the rest and exits non-zero
    assert dev.proc.wait(timeout=STOP_S) != 0, dev.tail()
    assert "worker exited unexpectedly" in dev.output(), dev.tail()
    assert dev.leftovers() == [], dev.tail()


def test_dev_fails_cleanly_when_the_api_port_is_taken(start_dev: Callable[..., Dev]) -> None:
    # Given another program listening on the API port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()

        # When agentq dev starts
        dev = start_dev(api_port=blocker.getsockname()[1])
        dev.wait_for(lambda: False, START_S)

        # Then it names the API, stops the rest and exits non-zero
        assert dev.proc.returncode not in (None, 0), dev.tail()
    assert "api exited unexpectedly" in dev.output(), dev.tail()
    assert dev.leftovers() == [], dev.tail()


def _row(dev: Dev, execution_id: str) -> tuple[str, int]:
    """The execution's status and attempts as the SQLite file holds them, read directly."""
    with sqlite3.connect(dev.data_dir / "agentq.db") as db:
        found = db.execute("SELECT status, attempts FROM executions WHERE id = ?", (execution_id,)).fetchone()
    assert found is not None, execution_id
    return str(found[0]), int(found[1])


def test_dev_stopped_during_a_run_leaves_nothing_running(start_dev: Callable[..., Dev]) -> None:
    # Given agentq dev running an execution that lasts far longer than a stop may take
    dev = start_dev()
    assert dev.wait_for(lambda: _ready(dev), START_S), dev.tail()
    auth = {"Authorization": f"Bearer {_api_key(dev)}"}
    with httpx.Client(base_url=dev.api_url, headers=auth, timeout=30, trust_env=False) as client:
        submitted = _submit(client, {"plugin": "simulate", "command": "run", "params": {"sleep_s": 120}})
        assert dev.wait_for(lambda: _row(dev, submitted["id"])[0] == "running", 60), dev.tail()

    # When Ctrl-C stops it
    dev.proc.send_signal(signal.SIGINT)
    assert dev.proc.wait(timeout=60) == 0, dev.tail()
    assert dev.leftovers() == [], dev.tail()

    # Then the worker handed the run back rather than being killed with it: the row waits
    # in `retrying` (its message back on the embedded Redis), not `running` forever
    assert _row(dev, submitted["id"]) == ("retrying", 1), dev.tail()
    assert "killing worker" not in dev.output(), dev.tail()

    # And the next start runs it again
    again = start_dev()
    assert again.wait_for(lambda: _row(again, submitted["id"]) == ("running", 2), START_S), again.tail()
