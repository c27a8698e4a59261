"""Private Redis and MariaDB servers that fault tests may stop, kill and restart.

Each runs on its own port and data directory, so the shared services are never touched.
"""

import shutil
import subprocess
from pathlib import Path

import pymysql
import redis

from tests.integration.processes import Proc, free_port, wait_until


class PrivateRedis:
    """redis-server with AOF on every write, as production runs it."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None
        self.start()

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ]  # fmt: skip
        self.proc = Proc(f"redis-{self.port}", argv, {}, self.dir)
        wait_until(lambda: redis.Redis(port=self.port).ping(), 15, "the private Redis")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class PrivateMariaDB:
    """A throw-away mariadbd with its own data directory; root without a password."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "mariadb"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"mysql+pymysql://root@127.0.0.1:{self.port}/agentq"
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.dir / 'data'}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.proc: Proc | None = None
        self.start()
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE agentq CHARACTER SET utf8mb4")

    def connect(self) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2)

    def start(self) -> None:
        argv = [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.dir / 'data'}",
            f"--port={self.port}", f"--socket={self.dir / 'sock'}", "--bind-address=127.0.0.1", "--user=root",
            "--skip-grant-tables", "--skip-log-bin", "--max-allowed-packet=64M", "--innodb-buffer-pool-size=64M",
        ]  # fmt: skip
        self.proc = Proc(f"mariadb-{self.port}", argv, {}, self.dir)
        wait_until(self._answers, 60, "the private MariaDB")

    def _answers(self) -> bool:
        self.connect().close()
        return True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout_s=30)
            self.proc = None
