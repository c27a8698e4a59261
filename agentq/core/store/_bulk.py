"""The two statements that write a fired set of schedules, written as SQL for the driver.

SQLAlchemy spends 40 µs compiling each ``WHEN`` of a ``case()`` (80 ms for a set of 500,
longer than the database takes to run the UPDATE), and an INSERT of 500 executions from
parameters spends more in PyMySQL escaping 18 values a row than in the database. Both are
built here as SQL with the driver's placeholders; each value is bound as SQLAlchemy binds
it for its column (``bind_processor``: SQLite stores datetimes as strings).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Dialect, Table

from agentq.core.models import Schedule
from agentq.core.store._rows import EXECUTIONS

SCHEDULES = cast(Table, Schedule.__table__)

# A new execution's columns (``executions.new_values``) that the INSERT takes from its
# schedule's row, and those that differ from one execution to the next; the others are
# the same for the whole set (its status, when it was created, ...).
FROM_SCHEDULE = (
    "owner",
    "plugin",
    "command",
    "params",
    "queue",
    "priority",
    "webhook_url",
    "webhook_events",
    "concurrency_key",
)
PER_EXECUTION = ("id", "schedule_id", "slot_at", "timeout_s", "max_retries")


class Advance(Protocol):
    """A schedule advanced: what it was due for when read, and when it is due next."""

    @property
    def schedule_id(self) -> str: ...
    @property
    def read_next_run_at(self) -> datetime: ...
    @property
    def read_updated_at(self) -> datetime: ...
    @property
    def next_run_at(self) -> datetime: ...
    @property
    def next_fire_at(self) -> datetime: ...
    @property
    def last_run_at(self) -> datetime: ...


def _binder(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any]:
    # The dialect's own type: SQLite's DATETIME writes the string that its reads compare.
    processor = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else (lambda value: value)


def _mark(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def advance(
    dialect: Dialect, schedules: Sequence[Advance], *, unedited: bool = False
) -> tuple[str, list[Any]]:
    """One UPDATE advancing every schedule given, each if its ``next_run_at`` is still the
    one read (a compare-and-set), and with ``unedited`` its ``updated_at`` too: a column is
    set to one value when the set shares it (schedules due in the same minute do), else to
    a ``CASE`` on the id."""
    mark = _mark(dialect)
    bind = _binder(SCHEDULES, "next_run_at", dialect)
    params: list[Any] = []

    def value(attribute: str) -> str:
        values = [bind(getattr(s, attribute)) for s in schedules]
        if all(v == values[0] for v in values):
            params.append(values[0])
            return mark
        for schedule, bound in zip(schedules, values, strict=True):
            params.extend((schedule.schedule_id, bound))
        return f"CASE id {' '.join([f'WHEN {mark} THEN {mark}'] * len(schedules))} END"

    sets = ", ".join(
        f"{column} = {value(column)}" for column in ("next_run_at", "next_fire_at", "last_run_at")
    )
    params.extend(s.schedule_id for s in schedules)
    ids = ", ".join([mark] * len(schedules))
    expected = value("read_next_run_at")
    sql = f"UPDATE schedules SET {sets} WHERE id IN ({ids}) AND enabled = 1 AND next_run_at = {expected}"
    if unedited:
        sql += f" AND (id, updated_at) IN ({', '.join([f'({mark}, {mark})'] * len(schedules))})"
        for schedule in schedules:
            params.extend((schedule.schedule_id, bind(schedule.read_updated_at)))
    return sql, params


@dataclass(frozen=True)
class FiredInsert:
    """An INSERT … SELECT of new executions, built once (``build_insert``); ``params`` binds
    the values that the whole set shares (its status, when it was created, ...) as it runs."""

    sql: str
    shared: tuple[str, ...]  # the columns bound once for the set, in the statement's order
    binders: Mapping[str, Callable[[Any], Any]]
    rows: list[Any]  # the ``PER_EXECUTION`` values of every row, bound

    def params(self, values: Mapping[str, Any]) -> list[Any]:
        """The statement's parameters, the shared ones from ``values``."""
        return [self.binders[c](values[c]) for c in self.shared] + self.rows


def build_insert(dialect: Dialect, new: Sequence[Mapping[str, Any]]) -> FiredInsert:
    """One INSERT … SELECT of new executions (``new_values`` of one moment) that takes most
    of their columns from their schedules' rows, and ignores a (schedule, slot) fired before.

    Each row sends only its ``PER_EXECUTION`` values: a derived table of them is joined to
    ``schedules``.
    """
    mark = _mark(dialect)
    columns = list(new[0])
    binders = {c: _binder(EXECUTIONS, c, dialect) for c in columns}
    # Admission may hold some rows of a set back and not others: those columns differ too.
    per_execution = PER_EXECUTION + tuple(
        c
        for c in columns
        if c not in FROM_SCHEDULE and c not in PER_EXECUTION and any(v[c] != new[0][c] for v in new)
    )
    shared = []
    select = []
    for column in columns:
        if column in FROM_SCHEDULE:
            select.append(f"s.{column}")
        elif column in per_execution:
            select.append(f"v.{column}")
        else:
            select.append(mark)
            shared.append(column)
    first = "SELECT " + ", ".join(f"{mark} AS {c}" for c in per_execution)
    rest = " UNION ALL SELECT " + ", ".join([mark] * len(per_execution))
    per_row = [binders[c] for c in per_execution]
    rows = [bind(values[c]) for values in new for c, bind in zip(per_execution, per_row, strict=True)]
    ignore = "OR IGNORE" if dialect.name == "sqlite" else "IGNORE"
    sql = (
        f"INSERT {ignore} INTO executions ({', '.join(columns)}) SELECT {', '.join(select)}"
        f" FROM ({first}{rest * (len(new) - 1)}) AS v JOIN schedules AS s ON s.id = v.schedule_id"
    )
    return FiredInsert(sql, tuple(shared), binders, rows)


def insert_fired(dialect: Dialect, new: Sequence[Mapping[str, Any]]) -> tuple[str, list[Any]]:
    """``build_insert``'s statement and its parameters, at once."""
    built = build_insert(dialect, new)
    return built.sql, built.params(new[0])
