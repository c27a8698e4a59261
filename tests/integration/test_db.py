"""A connection goes back to the pool without a ROLLBACK of the pool's own: nothing of a
transaction may outlive it, however it ended. A poll's read is one statement, and so is a
single submission's write, on a thread as on the event loop, which keeps its connections
between uses. Writers that share rows lock them through the primary key, in id order."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import pymysql
import pytest
from sqlalchemy import Dialect, Update, event, text, update
from sqlalchemy.exc import ProgrammingError

from agentq.core import db, store
from agentq.core.db import autocommit_scope, engine, session_scope
from agentq.core.errors import IdempotencyConflict
from agentq.core.models import ADMIN_OWNER, EventKind, Execution, utcnow

T = TypeVar("T")
ECHO = store.NewExecution(
    plugin="echo", command="echo", params={}, queue="agentq", priority=5, timeout_s=60, max_retries=0
)


@pytest.fixture
def execution_id(database: str) -> str:  # noqa: ARG001 (requested for its side effect: the schema)
    return store.create_executions([ECHO])[0].execution.id


@pytest.fixture
def observer(database: str) -> Iterator[pymysql.connections.Connection]:  # noqa: ARG001 (requested for its side effect: the schema)
    url = engine().url
    conn = pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=url.database,
        autocommit=True,
    )
    with conn:
        yield conn


def _one(cur: pymysql.cursors.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None
    return row


def _log_lines(observer: pymysql.connections.Connection, execution_id: str) -> int:
    """The row as committed; a locking read that fails at once if a transaction holds it."""
    with observer.cursor() as cur:
        cur.execute("SELECT log_lines FROM executions WHERE id = %s FOR UPDATE NOWAIT", (execution_id,))
        return int(_one(cur)[0])


def _set_log_lines(execution_id: str, value: int) -> Update:
    return update(Execution).where(Execution.id == execution_id).values(log_lines=value)


def test_a_committed_transaction_is_visible_and_holds_no_lock(
    execution_id: str, observer: pymysql.connections.Connection
) -> None:
    with session_scope() as session:
        session.execute(_set_log_lines(execution_id, 9))

    assert _log_lines(observer, execution_id) == 9


def test_a_failed_transaction_is_rolled_back_before_its_connection_is_pooled(
    execution_id: str, observer: pymysql.connections.Connection
) -> None:
    def fail_midway() -> None:
        with session_scope() as session:
            session.execute(_set_log_lines(execution_id, 8))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        fail_midway()

    assert _log_lines(observer, execution_id) == 0


def test_a_connection_closed_mid_transaction_is_rolled_back(
    execution_id: str, observer: pymysql.connections.Connection
) -> None:
    with engine().connect() as conn:
        conn.execute(_set_log_lines(execution_id, 7))
        with pytest.raises(pymysql.err.OperationalError):  # the row is locked
            _log_lines(observer, execution_id)

    assert _log_lines(observer, execution_id) == 0


class Via:
    """The API's reads and single submissions: on a thread, or awaited on the event loop."""

    def __init__(self, runner: asyncio.Runner | None) -> None:
        self.runner = runner

    def get(self, execution_id: str) -> Execution:
        if self.runner is None:
            return store.get_execution(execution_id, ADMIN_OWNER)
        return self.runner.run(store.get_execution_on_loop(execution_id, ADMIN_OWNER))

    def create(self, spec: store.NewExecution) -> store.Submitted:
        if self.runner is None:
            return store.create_executions([spec])[0]
        return self.runner.run(store.create_execution_on_loop(spec))

    def sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Other store code, on the engines of the API's reads (the loop's through ``db.run``)."""
        return fn(*args) if self.runner is None else self.runner.run(db.run(fn, *args))

    def dialect(self) -> Dialect:
        return db.autocommit_engine().dialect  # in the loop's case, its asyncio engine's

    def connection_id(self) -> int:
        sql = text("SELECT CONNECTION_ID()")
        if self.runner is None:
            with autocommit_scope() as session:
                return int(session.execute(sql).scalar_one())

        def on_loop() -> int:
            with db.autocommit_engine().connect() as connection:
                return int(connection.execute(sql).scalar_one())

        return self.runner.run(db.run(on_loop))


@pytest.fixture(params=["thread", "loop"])
def via(request: pytest.FixtureRequest, database: str) -> Iterator[Via]:  # noqa: ARG001 (requested for its side effect: the schema)
    if request.param == "thread":
        yield Via(None)
        return
    with asyncio.Runner() as runner:
        runner.run(_serve_on_loop())
        yield Via(runner)
        runner.run(db.stop_serving_on_loop())


async def _serve_on_loop() -> None:
    db.serve_on_loop()


@pytest.fixture
def query_log(observer: pymysql.connections.Connection) -> Iterator["QueryLog"]:
    """The server's general log, on for the test: statements are counted per connection, so
    other clients of the shared server (a stack's worker, another test run) do not count."""
    with observer.cursor() as cur:
        cur.execute("SELECT @@global.general_log, @@global.log_output")
        was_on, output = _one(cur)
        cur.execute("SET GLOBAL log_output = 'TABLE'")
        cur.execute("TRUNCATE mysql.general_log")
        cur.execute("SET GLOBAL general_log = 1")
    try:
        yield QueryLog(observer)
    finally:
        with observer.cursor() as cur:
            cur.execute("SET GLOBAL general_log = %s", (was_on,))
            cur.execute("SET GLOBAL log_output = %s", (output,))


class QueryLog:
    def __init__(self, observer: pymysql.connections.Connection) -> None:
        self._observer = observer
        self._mark = self._now()

    def _now(self) -> Any:
        with self._observer.cursor() as cur:
            cur.execute("SELECT NOW(6)")
            return _one(cur)[0]

    def since_last(self, mark: str = "", kind: str = "") -> Counter[str]:
        """Statements since the last call, by kind (``INSERT … SELECT`` apart), sent over the
        connections that sent a statement of ``kind`` naming ``mark``."""
        now = self._now()
        with self._observer.cursor() as cur:
            cur.execute(
                "SELECT thread_id, argument FROM mysql.general_log "
                "WHERE command_type = 'Query' AND event_time >= %s AND event_time < %s",
                (self._mark, now),
            )
            rows = [
                (int(t), sql if isinstance(sql, str) else sql.decode(errors="replace"))
                for t, sql in cur.fetchall()
            ]
        self._mark = now
        ours = {t for t, sql in rows if mark and mark in sql and _kind(sql) == kind}
        return Counter(_kind(sql) for t, sql in rows if t in ours)


def _kind(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper()
    return "INSERT_SELECT" if verb == "INSERT" and "SELECT" in sql.upper() else verb


def test_a_poll_reads_in_one_statement_what_is_committed(
    execution_id: str, query_log: QueryLog, via: Via
) -> None:
    via.get(execution_id)  # a first connection reads the server's settings
    query_log.since_last()
    polled = [via.get(execution_id) for _ in range(5)]

    def set_log_lines() -> None:
        with session_scope() as session:
            session.execute(_set_log_lines(execution_id, 3))

    via.sync(set_log_lines)
    polled.append(via.get(execution_id))
    counts = query_log.since_last(execution_id, "SELECT")

    assert [row.log_lines for row in polled] == [0] * 5 + [3]
    # Six SELECTs over the polls' connections, and nothing else: no read ends in a round trip.
    assert {kind: counts[kind] for kind in ("SELECT", "COMMIT", "ROLLBACK")} == {
        "SELECT": 6,
        "COMMIT": 0,
        "ROLLBACK": 0,
    }


@pytest.mark.usefixtures("database")
def test_locking_by_id_and_status_goes_through_the_primary_key(
    observer: pymysql.connections.Connection,
) -> None:
    """A worker's heartbeat names every running row: for ``id IN (…) AND status …`` MySQL
    would then as soon scan the status index, locking its entries before the rows, the
    opposite order of a finish's UPDATE by id (the two deadlocked under load)."""
    ids = [s.execution.id for s in store.create_executions([ECHO] * 400)]
    running, queued = ids[:5], ids[5:10]
    with observer.cursor() as cur:
        cur.execute("UPDATE executions SET status = 'succeeded' WHERE id NOT IN %s", (running + queued,))
        cur.execute("UPDATE executions SET status = 'running', attempts = 1 WHERE id IN %s", (running,))
        cur.execute("ANALYZE TABLE executions")
    keys: dict[str, list[str]] = {}  # a locking statement: the indexes it reads through

    def explain(_conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        locking = statement.startswith("UPDATE") or statement.endswith("FOR UPDATE")
        if locking and "executions.status" in statement.partition("WHERE")[2]:
            sql = cursor.mogrify(statement, parameters)
            with observer.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(f"EXPLAIN {sql}")
                keys[sql] = [row["key"] for row in cur.fetchall()]

    event.listen(engine(), "before_cursor_execute", explain)
    try:
        store.heartbeat([(i, 1) for i in running], "w1", lease_s=60)
        store.lease_unclaimed(queued, utcnow() + timedelta(seconds=60))
        store.claim([(queued, 0)], "w1", lease_s=60)
    finally:
        event.remove(engine(), "before_cursor_execute", explain)

    assert len(keys) == 3, keys  # the heartbeat's, the reaper's and the claim's
    assert {sql: used for sql, used in keys.items() if used != ["PRIMARY"]} == {}


WRITES = ("INSERT", "INSERT_SELECT", "COMMIT")


@pytest.mark.usefixtures("database")
def test_a_submission_is_one_statement_and_its_row_is_its_queued_event(
    observer: pymysql.connections.Connection, query_log: QueryLog, via: Via
) -> None:
    via.create(ECHO)  # a first connection reads the server's settings
    query_log.since_last()
    row = via.create(ECHO).execution
    single = query_log.since_last(row.id, "INSERT")
    pair = via.sync(store.create_executions, [ECHO, ECHO])
    batch = query_log.since_last(pair[0].execution.id, "INSERT")

    # The row's INSERT alone, committed as it runs: no COMMIT, no INSERT … SELECT of a
    # `queued` event. Two rows commit together.
    assert {kind: single[kind] for kind in WRITES} == {"INSERT": 1, "INSERT_SELECT": 0, "COMMIT": 0}
    assert {kind: batch[kind] for kind in WRITES} == {"INSERT": 1, "INSERT_SELECT": 0, "COMMIT": 1}
    assert _log_lines(observer, row.id) == 0  # committed, and no lock held

    via.sync(store.claim, [([row.id], 0)], "w1", 60)
    events = via.sync(store.read_events, row, 0)
    assert [(e.seq, e.kind.value, e.data["status"]) for e in events] == [
        (1, "status", "queued"),
        (2, "status", "running"),
    ]
    assert events[0].at == row.created_at
    assert [e.seq for e in via.sync(store.read_events, row, 1)] == [2]
    assert [e.seq for e in via.sync(store.read_events, row, 0, 1)] == [1]


def test_a_queued_event_stored_by_an_earlier_version_is_read_once(
    execution_id: str, observer: pymysql.connections.Connection
) -> None:
    row = store.get_execution(execution_id, ADMIN_OWNER)
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO execution_events (execution_id, seq, at, kind, data) VALUES (%s, 1, %s, 'status', %s)",
            (execution_id, row.created_at, '{"status": "queued", "stored": true}'),
        )

    assert [(e.seq, e.data) for e in store.read_events(row, 0)] == [(1, {"status": "queued", "stored": True})]


def test_a_known_key_answers_its_execution_or_a_conflict(via: Via) -> None:
    keyed = replace(ECHO, idempotency_key=f"k-{time.monotonic_ns()}")
    first = via.create(keyed)
    again = via.create(keyed)

    assert first.created
    assert not again.created
    assert again.execution.id == first.execution.id
    assert again.execution.params == {}
    assert again.execution.created_at == first.execution.created_at
    with pytest.raises(IdempotencyConflict):
        via.create(replace(keyed, params={"other": 1}))


def test_a_connection_in_steady_use_is_not_pinged_and_an_idle_one_is(
    execution_id: str, monkeypatch: pytest.MonkeyPatch, via: Via
) -> None:
    pinged: list[object] = []
    dialect = via.dialect()
    ping = dialect.do_ping

    def recorded_ping(conn: Any) -> bool:
        pinged.append(conn)
        return ping(conn)

    monkeypatch.setattr(dialect, "do_ping", recorded_ping)
    via.get(execution_id)

    for _ in range(5):
        via.get(execution_id)
    in_use = len(pinged)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.05)
    time.sleep(0.1)
    via.get(execution_id)

    assert in_use == 0
    assert len(pinged) == 1


def test_a_dead_idle_connection_is_replaced_before_it_fails_a_request(
    execution_id: str, observer: pymysql.connections.Connection, monkeypatch: pytest.MonkeyPatch, via: Via
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.05)
    dead = via.connection_id()
    with observer.cursor() as cur:
        cur.execute(f"KILL {dead}")  # as a database restart leaves it
    time.sleep(0.1)

    assert via.get(execution_id).id == execution_id
    assert via.connection_id() != dead


@pytest.mark.usefixtures("database")
def test_the_loops_connections_go_back_to_the_pool_even_after_a_failed_use() -> None:
    async def scenario() -> tuple[int, int]:
        db.serve_on_loop()

        def use(sql: str) -> int:
            with db.autocommit_engine().connect() as connection:
                return int(connection.execute(text(sql)).scalar_one())

        with pytest.raises(ProgrammingError, match="no_such_table"):
            await db.run(use, "SELECT * FROM no_such_table")
        answer = await db.run(use, "SELECT 2")
        pool = db.autocommit_engine().pool
        checked_out = pool.checkedout()  # type: ignore[attr-defined]
        await db.stop_serving_on_loop()
        return answer, checked_out

    with asyncio.Runner() as runner:
        answer, checked_out = runner.run(scenario())

    assert answer == 2
    assert checked_out == 0


def test_progress_and_log_lines_of_a_running_attempt_are_written_in_order(database: str) -> None:  # noqa: ARG001 (the schema)
    (submitted,) = store.create_executions([ECHO])
    row = submitted.execution
    store.claim([([row.id], 0)], "w1", lease_s=60)
    progress = store.NewEvent(EventKind.PROGRESS, {"percent": 50, "message": "half"})
    line = store.NewEvent(EventKind.LOG, {"level": "info", "message": "hello"})

    written = store.record_events({(row.id, 1): [progress, line]})

    assert written == {row.id}
    events = store.read_events(row, 0)
    assert [(e.seq, e.kind.value) for e in events] == [
        (1, "status"),
        (2, "status"),
        (3, "progress"),
        (4, "log"),
    ]
