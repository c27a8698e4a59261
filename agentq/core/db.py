"""The database engines and sessions, created lazily after fork.

Workers and beat use sync engines (PyMySQL, sqlite3). The API uses asyncio engines on
its event loop (asyncmy, aiosqlite): the hot paths await their plans on them, and every
other store function, sync code, runs on them through SQLAlchemy's greenlet bridge
(``run``). Each process has two engines of one kind: one whose connections hold
transactions, one in autocommit for work of one statement.
"""

import asyncio
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.util import await_, greenlet_spawn

from agentq.core.settings import settings

P = ParamSpec("P")
T = TypeVar("T")


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


def _async_url(url: str) -> tuple[URL, dict[str, Any]]:
    """``url`` with its asyncio driver (asyncmy on MySQL, aiosqlite on SQLite), and the
    connect arguments that stand for what its query asks of PyMySQL (TLS: ``ssl_*``)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite"), {}
    tls = {k: v for k, v in parsed.query.items() if k.startswith("ssl")}
    parsed = parsed.set(drivername=f"{backend}+asyncmy").difference_update_query(tls)
    return parsed, ({"ssl": _tls_context(tls)} if tls else {})


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """PyMySQL's URL options of TLS (``ssl_ca``, ``ssl_cert``, ``ssl_key``,
    ``ssl_verify_cert``, ``ssl_check_hostname``) as the context asyncmy takes."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca"))
    if options.get("ssl_cert"):
        context.load_cert_chain(options["ssl_cert"], options.get("ssl_key"))
    if str(options.get("ssl_verify_cert", "true")).lower() in ("false", "0", "no"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif str(options.get("ssl_check_hostname", "true")).lower() in ("false", "0", "no"):
        context.check_hostname = False
    return context


def make_async_engine(url: str, *, autocommit: bool = False) -> AsyncEngine:
    """The asyncio engine of ``url``, on the running event loop; with ``autocommit``, for
    work of one statement."""
    async_url, connect_args = _async_url(url)
    if async_url.get_backend_name() == "sqlite":
        made = create_async_engine(
            async_url, connect_args={"check_same_thread": False, "timeout": 10}, **_autocommit(autocommit)
        )
        event.listen(made.sync_engine, "connect", _sqlite_pragmas)
        return made
    made = create_async_engine(async_url, **_mysql_options(connect_args), **_autocommit(autocommit))
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


# The process serving the API on an event loop (``serve_on_loop``): its engines are asyncio
# engines, on that loop, and sync store code runs on them through SQLAlchemy's greenlet
# bridge (``run``). Workers and beat keep sync engines.
_loop: asyncio.AbstractEventLoop | None = None


def serve_on_loop() -> None:
    """Make this process's engines asyncio engines on the running event loop (the API's)."""
    global _loop
    _forget()
    _loop = asyncio.get_running_loop()


async def stop_serving_on_loop() -> None:
    """Close the asyncio engines' connections before their loop ends."""
    global _loop
    for made in (_async_engine, _async_autocommit_engine):
        if made.cache_info().currsize:
            await made().dispose()
    _forget()
    _loop = None


def _forget() -> None:
    for cached in (
        engine,
        autocommit_engine,
        _async_engine,
        _async_autocommit_engine,
        _sessions,
        _autocommit_sessions,
    ):
        cached.cache_clear()


@cache
def _async_engine() -> AsyncEngine:
    return make_async_engine(settings.database_url)


@cache
def _async_autocommit_engine() -> AsyncEngine:
    return make_async_engine(settings.database_url, autocommit=True)


@cache
def engine() -> Engine:
    return _async_engine().sync_engine if _loop is not None else make_engine(settings.database_url)


@cache
def autocommit_engine() -> Engine:
    if _loop is not None:
        return _async_autocommit_engine().sync_engine
    return make_engine(settings.database_url, autocommit=True)


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``, sync store code, awaited on the API's event loop: its
    statements run on the asyncio engines through SQLAlchemy's greenlet bridge."""
    return await greenlet_spawn(partial(fn, *args, **kwargs))


def call(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` from any thread: in the API, one other than its event loop's
    hands it to the loop (``run``) and waits; elsewhere it runs here."""
    loop = _loop
    if loop is None or _on_loop_thread(loop):
        return fn(*args, **kwargs)
    return asyncio.run_coroutine_threadsafe(run(fn, *args, **kwargs), loop).result()


def blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``, blocking I/O other than the database's (the broker's): from
    store code on the API's event loop, on a thread while the loop goes on; elsewhere here."""
    loop = _loop
    if loop is None or not _on_loop_thread(loop):
        return fn(*args, **kwargs)
    return await_(asyncio.to_thread(fn, *args, **kwargs))


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


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
    if _loop is None:
        for made in (engine, autocommit_engine):
            if made.cache_info().currsize:
                made().dispose(close=False)
