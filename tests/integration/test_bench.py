"""Every benchmark still runs: tiny sizes, and it writes figures (never how fast they are)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
import redis
from sqlalchemy.engine import make_url

from tests.conftest import DATABASE_URL, REDIS_URL
from tests.integration.conftest import unavailable
from tests.integration.processes import ROOT

# A benchmark drops and creates its database, so never the one the integration stack
# uses; in Redis it uses a queue named after that database, so sharing the db is safe.
BENCH_DATABASE = f"{make_url(DATABASE_URL).database}_bench"

# Tiny runs; each benchmark starts its own API and worker on its own database.
RUNS = {
    "throughput": ["--n", "20", "--single-s", "1"],
    "io_concurrency": ["--n", "20", "--concurrency", "64"],
    "submit": ["--n", "20", "--duration", "1"],
    "poll": ["--n", "20", "--duration", "2", "--window", "1"],
    "memory": ["--n", "20", "--chunk", "10", "--warm-up", "20"],
    "console": ["--n", "300", "--requests", "2"],
    # Interval schedules only (cron waits for a minute); its baseline the commit checked out.
    "schedules": [
        "--n", "20", "--scenarios", "interval", "--interval-s", "2", "--window-s", "4",
        "--grace-s", "10", "--lead-s", "5", "--baseline", "HEAD",
    ],
    "webhooks": ["--n", "20", "--rounds", "1"],
    "fairness": [
        "--backlog", "8", "--b-runs", "2", "--limit-runs", "5", "--p1-n", "50", "--p1-rounds", "1",
        "--baseline", "HEAD",
    ],
    "cpu_fairness": [
        "--backlog", "20", "--b-runs", "2", "--io-runs", "10", "--p1-n", "50", "--rounds", "1",
        "--baseline", "HEAD",
    ],
}  # fmt: skip
# Two stacks, one after the other; fairness starts seven.
TIMEOUTS_S = {"schedules": 300, "fairness": 900, "cpu_fairness": 600}
# Figures a benchmark must have written (a part of each row's name).
FIGURES = {
    "fairness": ["B submit→succeeded p99", "A throughput", "most running at once", "wall time", "P1 batch"],
    "cpu_fairness": ["B echo submit→succeeded p99", "A runs/s", "I/O-bound sync runs", "P1 batch"],
    "io_concurrency": [
        "async sleep",
        "GETs, bare asyncio, one shared httpx.AsyncClient",
        "event-loop CPU per http call",
        "http GETs answered at once, one worker",
        "http runs that ran more than once",
        "event-loop lag p99 during the http runs",
        "llm chats answered after 0.5 s, one worker",
        "llm runs that ran more than once",
        "event-loop lag p99 during the llm runs",
    ],
}


@pytest.fixture(scope="module")
def services() -> None:
    # Skips (or fails on CI) as the other integration tests do when a service is missing.
    url = make_url(DATABASE_URL)
    try:
        pymysql.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            connect_timeout=5,
        ).close()
    except pymysql.MySQLError as exc:
        unavailable(f"MySQL at {url.host}:{url.port} is unreachable: {exc}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")


@pytest.mark.parametrize("name", RUNS)
@pytest.mark.usefixtures("services")
def test_benchmark_writes_figures(name: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AGENTQ_BENCH_MYSQL_URL": DATABASE_URL,
        "AGENTQ_BENCH_REDIS_URL": REDIS_URL,
        "AGENTQ_BENCH_LOG_DIR": str(tmp_path / "logs"),
    }
    argv = [sys.executable, "-m", f"bench.{name}", *RUNS[name]]
    argv += ["--results-dir", str(tmp_path), "--database", BENCH_DATABASE]
    timeout_s = TIMEOUTS_S.get(name, 120)
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads((tmp_path / f"{name}.json").read_text())
    assert document["machine"]["cpu_count"] == os.cpu_count()
    assert document["rows"], document
    for row in document["rows"]:
        assert isinstance(row["value"], int | float), row
    for figure in FIGURES.get(name, []):
        assert any(figure in row["figure"] for row in document["rows"]), (figure, document["rows"])
