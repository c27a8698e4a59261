"""The database engines and sessions; one engine per process, created lazily after fork.

On MySQL the API also has an engine on its event loop (asyncmy): a request with no other
under way is written from the loop itself, without a hop to a thread and back.
"""

import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from agentq.core.settings import settings


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits out short write locks.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _autocommit(autocommit: bool) -> dict[str, Any]:
    # Each statement its own transaction: none ends in a COMMIT (a round trip) or a
    # ROLLBACK (skipped).
    return {"isolation_level": "AUTOCOMMIT", "skip_autocommit_rollback": True} if autocommit else {}


def _mysql_options(connect_args: dict[str, Any]) -> dict[str, Any]:
    return {
        "pool_size": 20,
        "max_overflow": 30,
        "pool_recycle": 1800,
        # No ROLLBACK when a connection goes back to the pool: every use is a Session
        # transaction (session_scope) that ends in COMMIT or ROLLBACK first, or work in
        # autocommit, which leaves no transaction; one closed mid-transaction is rolled
        # back by SQLAlchemy on close, and one garbage-collected is closed, not pooled.
        # The pool's ROLLBACK was a round trip per transaction.
        "pool_reset_on_return": None,
        # Results may be up to 16 MiB of JSON; the drivers' own cap is 16 MiB including the SQL.
        "connect_args": {"max_allowed_packet": 64 * 1024 * 1024, "charset": "utf8mb4", **connect_args},
    }


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """The engine of ``url``; with ``autocommit``, for work of one statement."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, **_autocommit(autocommit)
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # TLS when the URL asks for it (ssl_ca=…, ssl_verify_cert=…). Otherwise PyMySQL ≥ 1.2
    # builds a TLS context for every connection (~65 ms of CPU) to try TLS unverified.
    plain = {} if _asks_for_tls(make_url(url)) else {"ssl_disabled": True}
    made = create_engine(url, **_mysql_options(plain), **_autocommit(autocommit))
    _ping_when_idle(made)
    return made


def _asks_for_tls(url: URL) -> bool:
    return any(option.startswith("ssl") for option in url.query)


def _async_url(url: str) -> URL | None:
    """``url`` with MySQL's asyncio driver; None where the event loop has no driver for it:
    SQLite, and TLS (set up by PyMySQL's URL options, which asyncmy does not take)."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("mysql", "mariadb") or _asks_for_tls(parsed):
        return None
    return parsed.set(drivername=f"{parsed.get_backend_name()}+asyncmy")


def has_async_engine() -> bool:
    """Whether this process's database can be used from the event loop (``async_engine``)."""
    return _async_url(settings.database_url) is not None


def make_async_engine(url: URL) -> AsyncEngine:
    """An autocommit engine on the running event loop, for work of one statement."""
    made = create_async_engine(url, **_mysql_options({}), **_autocommit(True))
    _ping_when_idle(made.sync_engine)
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
        # One the event loop kept (``loop_connection``) has been idle since its last use.
        record.info["idle_since"] = record.info.pop("last_used", None) or time.monotonic()

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


def out_of_reach(exc: BaseException) -> bool:
    """Whether ``exc`` says that the database could not be reached, or not in time, rather
    than that it refused what a statement sent: then the same work fails in any shape."""
    if isinstance(exc, InterfaceError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return exc.orig.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    # MySQL's client errors (2000-2999: cannot connect, server gone away, lost connection)
    # are about the connection; the server's own (1000-1999, 3000 and up), about the work.
    return isinstance(code, int) and 2000 <= code < 3000


def deadlocked(exc: BaseException) -> bool:
    """Whether the database rolled ``exc``'s transaction back for a lock conflict with
    another (MySQL's deadlock or lock wait timeout): the same work, read again, may pass."""
    if not isinstance(exc, DBAPIError) or exc.orig is None or not exc.orig.args:
        return False
    return exc.orig.args[0] in (1205, 1213)


@cache
def engine() -> Engine:
    return make_engine(settings.database_url)


@cache
def autocommit_engine() -> Engine:
    return make_engine(settings.database_url, autocommit=True)


@cache
def async_engine() -> AsyncEngine:
    """The event loop's engine (``_async_url``); its connections belong to the loop that made
    them, so ``dispose_async_engine`` closes them before the loop ends."""
    url = _async_url(settings.database_url)
    if url is None:
        raise RuntimeError(f"no asyncio driver for {settings.database_url}: use the thread pool")
    return make_async_engine(url)


# Connections of ``async_engine`` kept between uses, each with when it was last used.
_kept: list[tuple[AsyncConnection, float]] = []
KEPT_CONNECTIONS = 4


@asynccontextmanager
async def loop_connection() -> AsyncIterator[AsyncConnection]:
    """A connection of ``async_engine`` for one use on the event loop.

    Taking a connection from the pool and handing it back costs SQLAlchemy's asyncio layer
    about 0.15 ms of CPU, as much as the statement an unloaded request makes, so up to
    ``KEPT_CONNECTIONS`` are kept between uses. One idle for more than
    ``PING_AFTER_IDLE_S`` goes back to the pool as idle since its last use, so that the
    pool pings it before it is used again. One whose use failed goes back at once
    (invalidated if the database went away).
    """
    now = time.monotonic()
    while _kept:
        connection, used = _kept.pop()
        if now - used <= PING_AFTER_IDLE_S:
            break
        await _hand_back(connection, used)
    else:
        connection = await async_engine().connect()
    try:
        yield connection
    except BaseException:
        await connection.close()
        raise
    if len(_kept) < KEPT_CONNECTIONS:
        _kept.append((connection, time.monotonic()))
    else:
        await connection.close()


async def _hand_back(connection: AsyncConnection, last_used: float) -> None:
    if connection.sync_connection is not None and not connection.invalidated:
        connection.sync_connection.connection.info["last_used"] = last_used
    await connection.close()


async def dispose_async_engine() -> None:
    while _kept:
        await _kept.pop()[0].close()
    if async_engine.cache_info().currsize:
        await async_engine().dispose()
        async_engine.cache_clear()


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
