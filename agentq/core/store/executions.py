"""Submitting executions (``create_executions``): the rows' defaults and columns.

A submission is one multi-row INSERT, plus one SELECT when idempotency keys are given,
written once as a plan (``_plans``) that a thread or the event loop runs. Reads and lists
are in ``listings``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from ulid import ULID

from agentq.core import db
from agentq.core.db import autocommit_scope, session_scope
from agentq.core.errors import IdempotencyConflict
from agentq.core.models import ADMIN_OWNER, DEFAULT_PRIORITY, HOLD_RUN_AT, Execution, utcnow
from agentq.core.settings import settings
from agentq.core.store import admissions
from agentq.core.store._plans import Plan, run, run_on_loop
from agentq.core.store._rows import EXECUTIONS, S, detached_row
from agentq.core.store.events import QUEUED_SEQ
from agentq.core.store.limited import may_be_limited, may_be_limited_on_loop


def new_id(at: datetime | None = None) -> str:
    """A sortable id (ULID) of now, or of the moment ``at``: keyset pagination orders by it."""
    return str(ULID() if at is None else ULID.from_datetime(at))


@dataclass(frozen=True)
class NewExecution:
    plugin: str
    command: str
    params: dict[str, Any]
    queue: str
    priority: int
    timeout_s: float
    max_retries: int
    idempotency_key: str | None = None
    schedule_id: str | None = None
    slot_at: datetime | None = None
    owner: str = ADMIN_OWNER
    retry_of: str | None = None  # the execution this one runs again
    webhook_url: str | None = None
    webhook_events: int = 0
    concurrency_key: str | None = None
    run_at: datetime | None = None  # held until then

    @property
    def may_be_limited(self) -> bool:
        """Whether its submission goes through admission (``admissions.may_be_limited``)."""
        return may_be_limited(self.owner, self.plugin, self.concurrency_key)

    @classmethod
    def with_defaults(
        cls,
        plugin: str,
        command: str,
        params: dict[str, Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
        schedule_id: str | None = None,
        slot_at: datetime | None = None,
        owner: str = ADMIN_OWNER,
        webhook_url: str | None = None,
        webhook_events: int = 0,
        concurrency_key: str | None = None,
        run_at: datetime | None = None,
    ) -> "NewExecution":
        """A new execution, the server's defaults filling what its request left out (None):
        every creator (the API, schedules, static beat entries) goes through here."""
        return cls(
            plugin,
            command,
            params,
            queue=queue or settings.default_queue,
            priority=DEFAULT_PRIORITY if priority is None else priority,
            timeout_s=timeout_s or settings.default_timeout_s,
            max_retries=settings.default_max_retries if max_retries is None else max_retries,
            idempotency_key=idempotency_key,
            schedule_id=schedule_id,
            slot_at=slot_at,
            owner=owner,
            webhook_url=webhook_url,
            webhook_events=webhook_events if webhook_url else 0,
            concurrency_key=concurrency_key,
            run_at=run_at,
        )


@dataclass
class Submitted:
    execution: Execution
    created: bool = field(default=True)


def _same_request(row: Execution, spec: NewExecution) -> bool:
    # A key that re-drove one execution is not the key of another's re-drive.
    return (row.plugin, row.command, row.params, row.retry_of) == (
        spec.plugin,
        spec.command,
        spec.params,
        spec.retry_of,
    )


def create_executions(specs: Sequence[NewExecution]) -> list[Submitted]:
    """Insert executions in one transaction; a known idempotency key returns its execution.

    A concurrent submit with the same key loses the unique-key race and is answered
    from the winner's row on the second pass.
    """
    try:
        return _create_executions(specs)
    except IntegrityError:
        return _create_executions(specs)


def _create_executions(specs: Sequence[NewExecution]) -> list[Submitted]:
    # One row is one INSERT, atomic by itself: written in autocommit, it saves the COMMIT's
    # round trip (a known key's SELECT before it needs none either: the unique key settles
    # a race). More rows may go as several INSERTs (PyMySQL splits an executemany at
    # 1 MB), which must commit together. Rows a limit may apply to are admitted in their
    # transaction (``admit``: it takes the admission gate before the INSERT).
    limited = any(spec.may_be_limited for spec in specs)
    with autocommit_scope() if len(specs) == 1 and not limited else session_scope() as session:
        connection = session.connection()
        admit = partial(admissions.admit_new_gated, connection) if limited or len(specs) > 1 else None
        return run(_creating(specs, admit), connection)


async def create_execution_on_loop(spec: NewExecution) -> Submitted:
    """``create_executions([spec])[0]``, awaited on the API's event loop; one a limit may
    apply to is admitted in a transaction (through ``db.run``)."""
    if await may_be_limited_on_loop(spec.owner, spec.plugin, spec.concurrency_key):
        (submitted,) = await db.run(create_executions, [spec])
        return submitted
    try:
        (submitted,) = await run_on_loop(_creating([spec]))
    except IntegrityError:
        (submitted,) = await run_on_loop(_creating([spec]))
    return submitted


Admit = Callable[[Sequence[dict[str, Any]]], list[dict[str, str]]]


def _creating(specs: Sequence[NewExecution], admit: Admit | None = None) -> Plan[list[Submitted]]:
    keys = {s.idempotency_key for s in specs if s.idempotency_key}
    now = utcnow()
    # Not claimed by then, the reaper publishes it again: a crash between the commit and
    # the publish loses no execution.
    publish_by = now + timedelta(seconds=settings.queued_lease_s)
    # Keys are per owner: (owner, key) -> its execution.
    known: dict[tuple[str, str], Execution] = {}
    if keys:
        owners = list({s.owner for s in specs if s.idempotency_key})
        rows = yield _ROWS_BY_KEY, {"owners": owners, "keys": list(keys)}
        known = {(row.owner, row.idempotency_key): detached_row(row._mapping) for row in rows}
    out: list[Submitted | dict[str, Any]] = []  # a new row's columns until it is decided
    new: list[dict[str, Any]] = []  # the columns of the rows to insert
    for spec in specs:
        key = spec.idempotency_key
        if key and (spec.owner, key) in known:
            row = known[(spec.owner, key)]
            if not _same_request(row, spec):
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was used for a different request "
                    f"({row.plugin}/{row.command}, execution {row.id}); use a new key."
                )
            out.append(Submitted(row, created=False))
            continue
        values = new_values(spec, now, publish_by)
        new.append(values)
        if key:
            known[(spec.owner, key)] = _inserted_row(values)
        out.append(values)
    limited = admit is not None and any(
        may_be_limited(v["owner"], v["plugin"], v["concurrency_key"]) for v in new
    )
    admitted = admit(new) if admit is not None and limited else []
    if new:
        yield _INSERT_EXECUTIONS, new
    if admitted:
        yield insert(admissions.ADMISSIONS), admitted
    # Built once admission has decided (held rows have no lease, admitted ones are marked).
    return [s if isinstance(s, Submitted) else Submitted(_inserted_row(s)) for s in out]


_ROWS_BY_KEY = select(EXECUTIONS).where(
    EXECUTIONS.c.owner.in_(bindparam("owners", expanding=True)),
    EXECUTIONS.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)


def new_values(
    spec: NewExecution, now: datetime, publish_by: datetime, *, id_at: datetime | None = None
) -> dict[str, Any]:
    """The columns of a new execution: inserted as they are, and the ORM row built from them.
    Its id is of ``id_at`` when given (a fire planned ahead: the time it fires), else of now.
    A delayed one is held, without a lease: ``release_due`` publishes it at its time."""
    delayed = spec.run_at is not None and spec.run_at > now
    return {
        "id": new_id(id_at),
        "owner": spec.owner,
        "plugin": spec.plugin,
        "command": spec.command,
        "params": spec.params,
        "queue": spec.queue,
        "status": S.QUEUED,
        "attempts": 0,
        "max_retries": spec.max_retries,
        "priority": spec.priority,
        "timeout_s": spec.timeout_s,
        "schedule_id": spec.schedule_id,
        "slot_at": spec.slot_at,
        "idempotency_key": spec.idempotency_key,
        "retry_of": spec.retry_of,
        "created_at": now,
        "lease_expires_at": None if delayed else publish_by,
        "last_event_seq": QUEUED_SEQ,
        "log_lines": 0,
        "webhook_url": spec.webhook_url,
        "webhook_events": spec.webhook_events,
        "concurrency_key": spec.concurrency_key,
        "run_at": spec.run_at,
        "held": HOLD_RUN_AT if delayed else None,
        "waiting_on": [HOLD_RUN_AT] if delayed else None,
        "admitted": False,
    }


# The columns a new row leaves NULL.
_NULL_WHEN_NEW = dict.fromkeys(("result", "error", "progress", "worker", "started_at", "finished_at"))


def _inserted_row(values: dict[str, Any]) -> Execution:
    """The ORM object of a row inserted from ``values``."""
    return detached_row(values, **_NULL_WHEN_NEW)


# New executions (their columns) in one multi-row INSERT: Core executemany of plain dicts,
# no unit of work, no attribute reads. Their first event is the row itself (see
# ``events.read_events``): nothing else to write.
_INSERT_EXECUTIONS = insert(EXECUTIONS)


def insert_new(session: Session, new: Sequence[dict[str, Any]]) -> None:
    """Insert rows of ``new_values`` in the session's transaction."""
    if new:
        session.connection().execute(_INSERT_EXECUTIONS, new)
