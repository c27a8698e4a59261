"""What the store's modules share about rows: the tables, the status groups, the order in
which writers lock rows, ORM objects built without a session, and keyset pages."""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import Select, Table, Update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, configure_mappers
from sqlalchemy.sql import Executable

from agentq.core.models import Execution, ExecutionEvent, ExecutionStatus

S = ExecutionStatus
EXECUTIONS = cast(Table, Execution.__table__)
EVENTS = cast(Table, ExecutionEvent.__table__)
CLAIMABLE = (S.QUEUED, S.RETRYING)
CANCELLABLE = (S.QUEUED, S.RUNNING, S.RETRYING)
# MySQL's dialect names: a mysql:// URL to MariaDB is "mysql", a mariadb:// one "mariadb".
_MYSQL_DIALECTS = ("mysql", "mariadb")
_Locking = TypeVar("_Locking", bound=Executable)


def by_primary_key(statement: _Locking) -> _Locking:
    """``statement`` (``id IN (…) AND status …``) reads its rows through the primary key.

    Writers lock the rows they share in id order, through the primary key, so that they
    never lock them in opposite orders. With few rows in a status, MySQL would rather scan
    the status index, locking its entries before the rows: against a finish's UPDATE by id
    (rows, then their index entries), the opposite order, and the two deadlock.
    """
    for dialect in _MYSQL_DIALECTS:
        if isinstance(statement, Select):
            statement = statement.with_hint(Execution, "FORCE INDEX (PRIMARY)", dialect)
        elif isinstance(statement, Update):
            statement = statement.with_hint("FORCE INDEX (PRIMARY)", dialect_name=dialect)
    return statement


configure_mappers()  # as the first ORM query would: objects built below need the attributes set up
_EXECUTION_CLASS = sa_inspect(Execution).class_manager


def detached_row(columns: Mapping[Any, Any] | Iterable[tuple[str, Any]], **more: Any) -> Execution:
    """The ORM object (in no session) of a row whose columns are ``columns`` and ``more``,
    built the way the ORM builds the rows it loads: its attributes set in its
    ``__dict__``, no constructor or attribute events. ``Execution(**values)`` costs 25
    times as much, and answers read its attributes 3 times slower, those left unset
    taking the slow path."""
    row: Execution = _EXECUTION_CLASS.new_instance()
    state = row.__dict__
    state.update(columns)
    state.update(more)
    return row


def page(session: Session, query: Any, limit: int) -> tuple[list[Any], str | None]:
    """Run a keyset query that asked for ``limit + 1`` rows: the page and the next cursor."""
    rows = list(session.scalars(query))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None
