"""Session fixtures: MariaDB and Redis, a migrated database, a real API and worker."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
import redis
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from tests.conftest import DATABASE_URL, REDIS_URL, SERVICES_REQUIRED
from tests.integration.outside import outside_server
from tests.integration.processes import (
    ROOT,
    Proc,
    child_env,
    free_port,
    start_api,
    start_beat,
    start_worker,
    wait_until,
)

ADMIN_KEY = "test-admin-key"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def unavailable(message: str) -> None:
    if SERVICES_REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def reset_services(database_url: str, redis_url: str) -> None:
    """An empty database and Redis db of the tests' own; unreachable fails on CI, skips locally."""
    url = make_url(database_url)
    try:
        conn = pymysql.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            connect_timeout=5,
        )
    except pymysql.MySQLError as exc:
        unavailable(f"MySQL at {url.host}:{url.port} is unreachable: {exc}")
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
        cur.execute(f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=5).flushdb()
    except redis.RedisError as exc:
        unavailable(f"Redis at {redis_url} is unreachable: {exc}")


@pytest.fixture(scope="session")
def database() -> str:
    reset_services(DATABASE_URL, REDIS_URL)
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    return DATABASE_URL


@pytest.fixture(scope="session")
def outside() -> Iterator[str]:
    with outside_server() as url:
        yield url


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    log_dir: Path
    api: Proc
    worker: Proc
    client: httpx.Client
    extra: list[Proc] = field(default_factory=list)

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

    def wait(self, execution_id: str, timeout_s: float = 30) -> dict[str, Any]:
        """Long-poll until terminal; fails the test if it is not within ``timeout_s``."""
        row = self.get(execution_id, wait_s=min(timeout_s, 60))
        assert row["status"] in ("succeeded", "failed", "timed_out", "cancelled"), row
        return row

    def start_worker(self, name: str, queues: str = "agentq", **env: str) -> Proc:
        proc = start_worker(child_env(self.env, **env), self.log_dir, name, queues=queues)
        self.extra.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        """Stop a process started by the test before the session ends."""
        proc.stop()
        self.extra.remove(proc)

    def start_beat(self, name: str, **env: str) -> Proc:
        proc = start_beat(child_env(self.env, **BEAT_ENV, **env), self.log_dir, name)
        self.extra.append(proc)
        return proc


# Beats in tests tick fast, hand over fast and reap often.
BEAT_ENV = {
    "AGENTQ_BEAT_TICK_S": "0.2",
    "AGENTQ_BEAT_LOCK_S": "3",
    "AGENTQ_REAPER_INTERVAL_S": "1",
    "AGENTQ_WEBHOOK_SWEEP_S": "0.5",
}
# A fixed key that encrypts the tests' webhook secrets.
WEBHOOK_SECRET_KEY = "x6PLMxQ8a5r3n7bX0o1hXJ5l3cB1y2k0cJm0nq9Xh4I="


# What every stack's processes get; tests add or override per stack.
BASE_ENV = {
    "AGENTQ_OUTBOUND_ALLOW_PRIVATE": "1",
    "AGENTQ_RETRY_BACKOFF_S": "0.2",
    "AGENTQ_CATALOG_TTL_S": "0.5",
    "AGENTQ_ADMIN_API_KEY": ADMIN_KEY,
    "AGENTQ_KEY_CACHE_S": "1",
    "AGENTQ_RATE_LIMIT_PER_S": "10000",
    "AGENTQ_RATE_LIMIT_BURST": "10000",
    "AGENTQ_WEBHOOK_SECRET_KEY": WEBHOOK_SECRET_KEY,
    "AGENTQ_WEBHOOK_CACHE_S": "0",  # a subscription applies from the next status change
    # Retries a second apart, for half a minute: receivers in tests come back soon.
    "AGENTQ_WEBHOOK_RETRY_DELAYS_S": ",".join(["0"] + ["1"] * 30),
}


@contextmanager
def launch(database_url: str, redis_url: str, log_dir: Path, **env: str) -> Iterator[Stack]:
    """A real API and worker on the given database and Redis, stopped on exit."""
    env = child_env(
        BASE_ENV
        | {"AGENTQ_DATABASE_URL": database_url, "AGENTQ_BROKER_URL": redis_url, "AGENTQ_REDIS_URL": redis_url}
        | env
    )
    port = free_port()
    worker = start_worker(env, log_dir, "w1")
    api = start_api(env, log_dir, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=90, headers=bearer(ADMIN_KEY))
    built = Stack(f"http://127.0.0.1:{port}", env, log_dir, api, worker, client)
    try:
        wait_until(
            lambda: {"echo", "counter"} <= {p["name"] for p in client.get("/v1/plugins").json()["plugins"]},
            60,
            "the worker's plugin catalog",
        )
        yield built
    finally:
        client.close()
        for proc in [*built.extra, built.worker, built.api]:
            proc.stop()
        for proc in [*built.extra, built.worker, built.api]:
            if proc.popen.returncode not in (0, -15, -9, None):
                print(f"--- {proc.name} exited {proc.popen.returncode}:\n{proc.log()[-3000:]}")


@pytest.fixture(scope="session")
def stack(database: str, outside: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    llm = {"AGENTQ_LLM_BASE_URL": f"{outside}/v1", "AGENTQ_LLM_API_KEY": "test-llm-key"}
    with launch(database, REDIS_URL, tmp_path_factory.mktemp("logs"), **llm) as built:
        yield built


@pytest.fixture
def beat(stack: Stack) -> Iterator[Proc]:
    """One beat (reaper every second) for a test; stopped, releasing its lock, after it."""
    proc = start_beat(child_env(stack.env, **BEAT_ENV), stack.log_dir, f"beat-{time.time_ns()}")
    yield proc
    proc.stop()
