"""The database engine and sessions; one engine per process, created lazily after fork."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from core.settings import settings


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits out short write locks.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """The engine of ``url``; with ``autocommit``, for work of one statement: each is its
    own transaction, so none ends in a COMMIT (a round trip) or a ROLLBACK (skipped)."""
    options: dict[str, Any] = (
        {"isolation_level": "AUTOCOMMIT", "skip_autocommit_rollback": True} if autocommit else {}
    )
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Results may be up to 16 MiB of JSON; PyMySQL's own cap is 16 MiB including the SQL.
    connect_args: dict[str, Any] = {"max_allowed_packet": 64 * 1024 * 1024, "charset": "utf8mb4"}
    if not any(option.startswith("ssl") for option in make_url(url).query):
        # TLS when the URL asks for it (ssl_ca=…, ssl_verify_cert=…). Otherwise PyMySQL ≥ 1.2
        # builds a TLS context for every connection (~65 ms of CPU) to try TLS unverified.
        connect_args["ssl_disabled"] = True
    made = create_engine(
        url,
        pool_size=20,
        max_overflow=30,
        pool_recycle=1800,
        # No ROLLBACK when a connection goes back to the pool: every use is a Session
        # transaction (session_scope) that ends in COMMIT or ROLLBACK first, or a read in
        # autocommit (autocommit_scope), which leaves no transaction; one closed
        # mid-transaction is rolled back by SQLAlchemy on close, and one garbage-collected
        # is closed, not pooled. The pool's ROLLBACK was a round trip per transaction.
        pool_reset_on_return=None,
        connect_args=connect_args,
        **options,
    )
    _ping_when_idle(made)
    return made


# A pooled connection idle longer than this is pinged before use.
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection before use only if it has been idle for ``PING_AFTER_IDLE_S``.

    A restarted database leaves the pool's connections dead; pinging each at checkout
    (``pool_pre_ping``) finds out before a request fails, but costs every transaction a
    round trip. A restart takes longer than the idle bound, so the first connection used
    after one is pinged, and its failure replaces them all; one in use every moment has
    just answered.
    """

    def checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        now = time.monotonic()  # a new connection has no stamp: it has just answered too
        if now - record.info.get("idle_since", now) > PING_AFTER_IDLE_S:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:
                # The database went away: every pooled connection is replaced as it is
                # checked out, this one at once.
                raise InvalidatePoolError(f"a pooled connection is dead: {exc}") from exc

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


@cache
def engine() -> Engine:
    return make_engine(settings.database_url)


@cache
def autocommit_engine() -> Engine:
    return make_engine(settings.database_url, autocommit=True)


@cache
def _sessions() -> sessionmaker[Session]:
    return sessionmaker(engine(), expire_on_commit=False)


@cache
def _autocommit_sessions() -> sessionmaker[Session]:
    return sessionmaker(autocommit_engine())


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with _sessions().begin() as session:
        yield session


@contextmanager
def autocommit_scope() -> Iterator[Session]:
    """A session in autocommit: the server commits each statement as it runs (or undoes
    it, if it fails), and the session ends without a round trip. For one SELECT (it reads
    what is committed when it runs) or one write, which is atomic by itself. Reads that
    must agree with each other, and writes of more than one statement, go in a
    ``session_scope``."""
    with _autocommit_sessions()() as session:
        yield session


def dispose_after_fork() -> None:
    """Drop connections inherited from a parent process without closing the parent's."""
    for made in (engine, autocommit_engine):
        if made.cache_info().currsize:
            made().dispose(close=False)
