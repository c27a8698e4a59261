"""What every benchmark shares: its own database and processes, progress lines, the table.

A benchmark runs against the MariaDB and Redis given by ``AGENTQ_BENCH_MYSQL_URL`` and
``AGENTQ_BENCH_REDIS_URL`` (defaults: root on 127.0.0.1, Redis db 15). It drops and
creates its own database, migrates it with ``agentq migrate``, starts the API (gunicorn)
and a worker, and stops them all on the way out, however it leaves (SIGTERM included).
Redis is shared, never flushed: a run's queue is named after its database, so runs on
different databases (a benchmark and the smoke test, say) do not take each other's messages.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql
import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

# One way to run and stop child processes, shared with the integration tests.
from tests.integration.processes import Proc as Proc
from tests.integration.processes import free_port as free_port
from tests.integration.processes import wait_until as wait_until

ROOT = Path(__file__).resolve().parents[1]
# Committed beside the performance page, so each figure there has its source next to it.
RESULTS_DIR = ROOT / "docs" / "performance"
MYSQL_URL = os.environ.get("AGENTQ_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/agentq_bench")
REDIS_URL = os.environ.get("AGENTQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
ADMIN_KEY = "bench-admin-key"
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")

console = Console(stderr=True, width=160)
out = Console(width=160)
_started = time.monotonic()


def progress(message: str) -> None:
    """One line per phase, with the seconds since the benchmark started."""
    console.print(f"[dim]{time.monotonic() - _started:7.1f}s[/dim] {message}", highlight=False)


def mysql_connect(url: str, database: str | None = None) -> pymysql.connections.Connection:
    u = make_url(url)
    return pymysql.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=database,
        autocommit=True,
        connect_timeout=5,
    )


def mysql_questions(conn: pymysql.connections.Connection) -> int:
    """The server-wide statement count (every client's, this one's included)."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
        row = cur.fetchone()
    return int(row[1]) if row else 0


def python_speed_ms() -> float:
    """Milliseconds one core takes for a million iterations of a pure-Python loop (best of
    three): how fast this machine runs Python, so figures of different machines compare."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(1000 * best, 1)


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python_loop_ms": python_speed_ms(),
        "loadavg": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass
class Row:
    """One figure: what was measured, its baseline (if any) and the target it serves."""

    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


@dataclass
class Report:
    name: str
    params: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loadavg_before: list[float] = field(default_factory=lambda: list(os.getloadavg()))

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        progress(f"[bold]{row.figure}[/bold]: {row.value:,.1f} {row.unit}")
        return row

    def finish(self, results_dir: Path) -> Path:
        after = machine()
        table = Table(
            title=f"bench.{self.name} — {after['cpu_count']} cores, load {self._load(after)}, "
            f"Python loop {after['python_loop_ms']} ms"
        )
        for column in ("figure", "value", "baseline", "ratio", "target", "met"):
            table.add_column(column, justify="left" if column in ("figure", "target") else "right")
        for row in self.rows:
            table.add_row(
                row.figure,
                f"{row.value:,.1f} {row.unit}",
                f"{row.baseline:,.1f} ({row.baseline_name})" if row.baseline else "",
                f"{row.ratio:.2f}×" if row.ratio is not None else "",
                row.target,
                "" if row.met is None else ("yes" if row.met else "no"),
            )
        out.print(table)
        for note in self.notes:
            out.print(f"  note: {note}", highlight=False)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.json"
        document = {
            "name": self.name,
            "params": self.params,
            "machine": {**after, "loadavg_before": self.loadavg_before},
            "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows],
            "notes": self.notes,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        progress(f"wrote {path}")
        return path

    @staticmethod
    def _load(m: dict[str, Any]) -> str:
        return " ".join(f"{x:.2f}" for x in m["loadavg"])


def arguments(description: str, n: int) -> argparse.ArgumentParser:
    """The options every benchmark takes; each adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=n, help=f"executions (default {n})")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument(
        "--database", default=make_url(MYSQL_URL).database or "agentq_bench", help="database to (re)create"
    )
    parser.add_argument("--loglevel", default="WARNING", help="log level of the processes started")
    return parser


@dataclass
class Stack:
    """A migrated database, Redis, and the processes started on them."""

    database_url: str
    database: str
    env: dict[str, str]
    log_dir: Path
    procs: list[Proc] = field(default_factory=list)
    api_url: str = ""
    _db: pymysql.connections.Connection | None = None
    # The source tree the processes run from: this one, or another version's (a baseline).
    root: Path = ROOT

    @property
    def db(self) -> pymysql.connections.Connection:
        if self._db is None:
            self._db = mysql_connect(self.database_url, self.database)
        return self._db

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=kwargs.pop("timeout", 60),
            **kwargs,
        )

    def async_client(self, connections: int, timeout_s: float = 60) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def start_api(self, workers: int = 2) -> Proc:
        port = free_port()
        # No access log: the anchors' servers wrote none either.
        env = {
            **self.env,
            "AGENTQ_API_PORT": str(port),
            "AGENTQ_API_WORKERS": str(workers),
            "AGENTQ_API_ACCESS_LOG": "false",
        }
        argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api.main:app"]
        argv += ["--bind", f"127.0.0.1:{port}"]
        proc = self._start("api", argv, env)
        self.api_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{self.api_url}/healthz").status_code == 200, 60, "the API")
        return proc

    def start_worker(
        self,
        name: str = "w1",
        concurrency: int | None = None,
        profile: Path | None = None,
        queues: str | None = None,
        **env: str,
    ) -> Proc:
        """A worker (of the run's queue, or ``queues``); with ``profile``, sampled
        (bench/profiled_worker.py), its stacks to that file."""
        launcher = ["bench.profiled_worker", str(profile.resolve()), "--"] if profile else ["celery"]
        argv = [
            sys.executable, "-m", *launcher, "-A", "workers.app", "worker",
            "--loglevel", self.env["AGENTQ_LOG_LEVEL"], "--hostname", f"{name}@%h", "--queues", queues or self.env["AGENTQ_DEFAULT_QUEUE"],
            "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        return self._start(name, argv, {**self.env, **env})

    def start_beat(self, name: str, **env: str) -> Proc:
        """A beat (``celery beat`` with the database scheduler), its state file of its own."""
        argv = [
            sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", self.env["AGENTQ_LOG_LEVEL"],
            "--schedule", str(self.log_dir / f"{name}-celerybeat-schedule"),
        ]  # fmt: skip
        return self._start(name, argv, {**self.env, **env})

    def wait_for_plugins(self, *names: str) -> None:
        with self.client() as client:
            wait_until(
                lambda: set(names) <= {p["name"] for p in client.get("/v1/plugins").json()["plugins"]},
                90,
                "the worker's plugin catalog",
                interval_s=0.3,
            )

    def start(self, name: str, argv: list[str], **env: str) -> Proc:
        """Any other process, with the stack's environment; stopped with the stack."""
        return self._start(name, argv, {**self.env, **env})

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, self.log_dir, cwd=self.root)
        self.procs.append(proc)
        return proc

    def counts(self) -> dict[str, int]:
        with self.db.cursor() as cur:
            cur.execute("SELECT status, COUNT(*) FROM executions GROUP BY status")
            return {str(status): int(count) for status, count in cur.fetchall()}

    def wait_terminal(self, total: int, timeout_s: float, what: str, interval_s: float = 0.05) -> float:
        """Seconds (monotonic clock) when ``total`` rows are terminal; a progress line a second."""
        deadline = time.monotonic() + timeout_s
        last_line = 0.0
        while True:
            counts = self.counts()
            now = time.monotonic()
            done = sum(counts.get(s, 0) for s in TERMINAL)
            if done >= total:
                return now
            if now - last_line >= 1:
                progress(f"  {what}: {done:,}/{total:,} terminal {dict(sorted(counts.items()))}")
                last_line = now
            if now > deadline:
                raise TimeoutError(f"{what}: only {done} of {total} terminal after {timeout_s:g}s: {counts}")
            self._check_alive()
            time.sleep(interval_s)

    def wait_until_running(self, total: int, timeout_s: float = 60) -> None:
        wait_until(lambda: self.counts().get("running", 0) >= total, timeout_s, f"{total} running", 0.1)

    def _check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive:
                raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.tail()}")

    def stop(self, proc: Proc) -> None:
        proc.stop()
        self.procs.remove(proc)


def queue_name(database: str) -> str:
    """The Celery queue of the runs on ``database``."""
    return f"bench.{database}"


def reset_database(name: str) -> str:
    """Drop and create ``name``; returns its SQLAlchemy URL."""
    with mysql_connect(MYSQL_URL) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def stack(database: str, loglevel: str = "WARNING", root: Path = ROOT, **env: str) -> Iterator[Stack]:
    """A fresh database (migrated) and Redis db; every process started is stopped on exit.

    The processes run the code under ``root``: this tree, or a baseline exported elsewhere.
    """
    # SIGTERM (make, a test timeout) unwinds like Ctrl-C, so the processes below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    queue = queue_name(database)
    progress(f"database {database}: drop, create, migrate; Redis {REDIS_URL}, queue {queue}")
    url = reset_database(database)
    with redis.Redis.from_url(REDIS_URL) as r:
        r.delete(queue, *r.keys(f"{queue}:*"))  # what an interrupted run on this database left
    base = {
        **os.environ,
        "AGENTQ_DATABASE_URL": url,
        "AGENTQ_BROKER_URL": REDIS_URL,
        "AGENTQ_REDIS_URL": REDIS_URL,
        "AGENTQ_ADMIN_API_KEY": ADMIN_KEY,
        "AGENTQ_RATE_LIMIT_PER_S": "0",
        "AGENTQ_LOG_LEVEL": loglevel.upper(),
        "AGENTQ_LOG_FORMAT": "text",
        "AGENTQ_DEFAULT_QUEUE": queue,
        "PYTHONPATH": str(root),
        **env,
    }
    subprocess.run(
        [sys.executable, "-m", "agentq.cli", "migrate"], env=base, cwd=root, check=True, timeout=120
    )
    log_dir = Path(os.environ.get("AGENTQ_BENCH_LOG_DIR", ROOT / "var" / "bench-logs" / database))
    log_dir.mkdir(parents=True, exist_ok=True)
    built = Stack(url, database, base, log_dir, root=root)
    try:
        yield built
    finally:
        for proc in reversed(built.procs):
            proc.stop()
        if built._db is not None:
            built._db.close()
        progress(f"stopped {len(built.procs)} processes (logs in {log_dir})")


def chunks(n: int, size: int) -> Iterator[int]:
    """Sizes of the chunks that make up ``n``."""
    for start in range(0, n, size):
        yield min(size, n - start)


def submit_batches(client: httpx.Client, n: int, item: dict[str, Any], size: int = 1000) -> list[str]:
    """POST /v1/executions/batch in chunks of ``size``; returns the ids."""
    ids: list[str] = []
    for count in chunks(n, size):
        response = client.post("/v1/executions/batch", json={"executions": [item] * count})
        response.raise_for_status()
        ids += [e["id"] for e in response.json()["executions"]]
    return ids


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
