"""A connection goes back to the pool without a ROLLBACK of the pool's own: nothing of a
transaction may outlive it, however it ended."""

from collections.abc import Iterator

import pymysql
import pytest
from sqlalchemy import Update, update

from core import store
from core.db import engine, session_scope
from core.models import Execution


@pytest.fixture
def execution_id(database: str) -> str:
    spec = store.NewExecution(
        plugin="echo", command="echo", params={}, queue="agentq", priority=5, timeout_s=60, max_retries=0
    )
    return store.create_executions([spec])[0].execution.id


@pytest.fixture
def observer(database: str) -> Iterator[pymysql.connections.Connection]:
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


def _log_lines(observer: pymysql.connections.Connection, execution_id: str) -> int:
    """The row as committed; a locking read that fails at once if a transaction holds it."""
    with observer.cursor() as cur:
        cur.execute("SELECT log_lines FROM executions WHERE id = %s FOR UPDATE NOWAIT", (execution_id,))
        return int(cur.fetchone()[0])


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
    with pytest.raises(RuntimeError), session_scope() as session:
        session.execute(_set_log_lines(execution_id, 8))
        raise RuntimeError("the request failed")

    assert _log_lines(observer, execution_id) == 0


def test_a_connection_closed_mid_transaction_is_rolled_back(
    execution_id: str, observer: pymysql.connections.Connection
) -> None:
    with engine().connect() as conn:
        conn.execute(_set_log_lines(execution_id, 7))
        with pytest.raises(pymysql.err.OperationalError):  # the row is locked
            _log_lines(observer, execution_id)

    assert _log_lines(observer, execution_id) == 0
