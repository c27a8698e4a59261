"""Admission: whether a queued execution may start under the concurrency limits that
apply to it (``agentq.core.scopes``), and which held one starts when a slot frees.

An admitted execution has one ``admissions`` row per limit it counts in, from its
admission until it ends (a retry or a reclaimed run keeps its slot): a limit's load is
the COUNT of its rows, never a counter that could drift. An execution that does not fit
stays ``queued``, ``held`` back and unpublished, ``waiting_on`` the full limits.

Every decision is made holding the one row of ``admission_gate`` (locked first, or
right after the rows of the executions that end), and reads with locking reads, so two
decisions never overlap and each sees what the previous one committed. Executions no
limit may apply to never come here (``limited``: answered from memory).

When a slot frees, in the transaction that ends its execution, the next held one is
admitted (``release``): of a plugin's, the owner with the fewest running in it goes first
(ties: the one waiting longest), then by priority and age within that owner.
"""

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, insert, select, update

from agentq.core.models import (
    HOLD_LIMIT,
    HOLD_RUN_AT,
    Admission,
    AdmissionGate,
    ApiKey,
    ConcurrencyLimit,
    Execution,
    PluginCommand,
    utcnow,
)
from agentq.core.scopes import (
    API_KEY,
    PLUGIN,
    api_key_scope,
    concurrency_key_scope,
    plugin_scope,
    public_name,
)
from agentq.core.settings import settings
from agentq.core.store._rows import EXECUTIONS, S, detached_row

ADMISSIONS = cast(Table, Admission.__table__)
GATE = cast(Table, AdmissionGate.__table__)
# Held rows of one owner looked at per turn, and most admitted in one pass.
CANDIDATES = 10
PASS_MOST = 1000
# What publishing an admitted execution needs of its row, and what admitting it reads.
ROW_COLUMNS = [
    EXECUTIONS.c[name]
    for name in ("id", "owner", "plugin", "command", "queue", "priority", "attempts", "concurrency_key")
]


def lock_gate(connection: Connection) -> None:
    """Take the admission gate for the rest of the transaction."""
    taken = connection.execute(update(GATE).where(GATE.c.id == 1).values(turns=GATE.c.turns + 1))
    if taken.rowcount == 0:  # a schema made without the migration's row
        connection.execute(insert(GATE).values(id=1, turns=1))


# -- limits and loads, as one transaction reads them -------------------------------------


class Limits:
    """Each scope's limit (None: none), read once per transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._read: dict[str, int | None] = {}

    def of(self, scope: str) -> int | None:
        if scope not in self._read:
            self._read[scope] = self._query(scope)
        return self._read[scope]

    def _query(self, scope: str) -> int | None:
        kind, _, name = scope.partition(":")
        if kind == PLUGIN:
            if name in settings.plugin_limits:
                return settings.plugin_limits[name]
            query = select(func.max(PluginCommand.max_concurrency)).where(PluginCommand.plugin == name)
        elif kind == API_KEY:
            query = select(ApiKey.max_running).where(ApiKey.id == name)
        else:
            owner, _, key = name.partition(":")
            query = select(ConcurrencyLimit.max_running).where(
                ConcurrencyLimit.owner == owner, ConcurrencyLimit.name == key
            )
        found = self._connection.execute(query).scalar()
        return None if found is None else int(found)

    def scopes(self, owner: str, plugin: str, concurrency_key: str | None) -> list[str]:
        """The scopes an execution counts in: its key's and its plugin's where they have a
        limit, its concurrency key's always (a limit set on it later counts what runs)."""
        scopes = [s for s in (api_key_scope(owner), plugin_scope(plugin)) if self.of(s) is not None]
        if concurrency_key is not None:
            scopes.append(concurrency_key_scope(owner, concurrency_key))
        return scopes

    def full(self, scopes: Iterable[str], load: "Load") -> list[str]:
        return [s for s in scopes if (limit := self.of(s)) is not None and load.running(s) >= limit]


class Load:
    """How many run in each scope, by owner: read once (locking), then kept up to date."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._by_owner: dict[str, Counter[str]] = {}

    def by_owner(self, scope: str) -> Counter[str]:
        if scope not in self._by_owner:
            rows = self._connection.execute(
                select(ADMISSIONS.c.owner, func.count())
                .where(ADMISSIONS.c.scope == scope)
                .group_by(ADMISSIONS.c.owner)
                .with_for_update(read=True)
            )
            self._by_owner[scope] = Counter({owner: int(n) for owner, n in rows})
        return self._by_owner[scope]

    def running(self, scope: str) -> int:
        return self.by_owner(scope).total()

    def add(self, scope: str, owner: str) -> None:
        self.by_owner(scope)[owner] += 1


@dataclass
class _Decision:
    """Admissions to insert, and what was decided per execution."""

    admissions: list[dict[str, str]] = field(default_factory=list)

    def admit(self, execution_id: str, owner: str, scopes: Iterable[str], load: Load) -> None:
        for scope in scopes:
            load.add(scope, owner)
            self.admissions.append({"scope": scope, "execution_id": execution_id, "owner": owner})


def admit_new(connection: Connection, new: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Decide, holding the gate, for new rows (``new_values``, changed in place): admitted,
    or held ``waiting_on`` their full limits. Returns the admissions to insert along with
    the rows (``insert_admissions``). Rows held for their ``run_at`` are left as they are."""
    limits, load, decision = Limits(connection), Load(connection), _Decision()
    for values in new:
        if values["held"] == HOLD_RUN_AT:
            continue
        scopes = limits.scopes(values["owner"], values["plugin"], values["concurrency_key"])
        if not scopes:
            continue
        full = limits.full(scopes, load)
        if full:
            values.update(held=HOLD_LIMIT, waiting_on=[public_name(s) for s in full], lease_expires_at=None)
        else:
            values["admitted"] = True
            decision.admit(values["id"], values["owner"], scopes, load)
    return decision.admissions


def admit_new_gated(connection: Connection, new: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """``admit_new``, the gate taken first (by a submission, before its INSERT)."""
    lock_gate(connection)
    return admit_new(connection, new)


def insert_admissions(connection: Connection, admissions: Sequence[dict[str, str]]) -> None:
    if admissions:
        connection.execute(insert(ADMISSIONS), list(admissions))


def release(connection: Connection, ended: Collection[str]) -> list[Execution]:
    """Free the slots of executions that ended (admitted ones), in their transaction, and
    admit held executions into them; returns those to publish once it commits."""
    lock_gate(connection)
    freed = set(
        connection.execute(
            select(ADMISSIONS.c.scope).where(ADMISSIONS.c.execution_id.in_(list(ended))).distinct()
        ).scalars()
    )
    if not freed:
        return []
    connection.execute(delete(ADMISSIONS).where(ADMISSIONS.c.execution_id.in_(list(ended))))
    return admit_waiting(connection, freed)


def admit_waiting(connection: Connection, scopes: Iterable[str]) -> list[Execution]:
    """Holding the gate: admit held executions into the free slots of ``scopes``, fairly
    (see the module); returns those admitted, to publish once it commits."""
    limits, load = Limits(connection), Load(connection)
    admitted: list[Execution] = []
    for scope in sorted(scopes):
        limit = limits.of(scope)
        free = PASS_MOST if limit is None else limit - load.running(scope)
        owners = _waiting_owners(connection, scope) if free > 0 else []
        while free > 0 and owners and len(admitted) < PASS_MOST:
            # The owner with the fewest running here goes next; then the one waiting longest.
            owners.sort(key=lambda o: (load.by_owner(scope)[o[0]], o[1]))
            owner = owners[0][0]
            row = _admit_one(connection, scope, owner, limits, load)
            if row is None:
                owners.pop(0)  # none of its held rows fits now
                continue
            admitted.append(row)
            free -= 1
    return admitted


def _held_in(scope: str) -> list[Any]:
    """The WHERE of the held executions that count in ``scope``."""
    kind, _, name = scope.partition(":")
    where = [EXECUTIONS.c.held == HOLD_LIMIT, EXECUTIONS.c.status == S.QUEUED]
    if kind == PLUGIN:
        return [*where, EXECUTIONS.c.plugin == name]
    if kind == API_KEY:
        return [*where, EXECUTIONS.c.owner == name]
    owner, _, key = name.partition(":")
    return [*where, EXECUTIONS.c.owner == owner, EXECUTIONS.c.concurrency_key == key]


def _waiting_owners(connection: Connection, scope: str) -> list[tuple[str, str]]:
    """The owners with executions held in ``scope``, each with its oldest one's id.

    Read without locks (a locking read would lock every held row it scans): what it
    misses or sees stale only orders the turns; ``_admit_one`` re-checks each row."""
    rows = connection.execute(
        select(EXECUTIONS.c.owner, func.min(EXECUTIONS.c.id))
        .where(*_held_in(scope))
        .group_by(EXECUTIONS.c.owner)
    )
    return [(owner, oldest) for owner, oldest in rows]


def _admit_one(
    connection: Connection, scope: str, owner: str, limits: Limits, load: Load
) -> Execution | None:
    """Admit ``owner``'s first held execution in ``scope`` (by priority, then age) whose
    other limits have room too; None if none has. Candidates are read without locks; the
    UPDATE that admits one takes it only if it is still held (not cancelled meanwhile)."""
    rows = connection.execute(
        select(*ROW_COLUMNS, EXECUTIONS.c.waiting_on)
        .where(*_held_in(scope), EXECUTIONS.c.owner == owner)
        .order_by(EXECUTIONS.c.priority.desc(), EXECUTIONS.c.id)
        .limit(CANDIDATES)
    ).all()
    still_full: dict[tuple[str, ...], list[str]] = defaultdict(list)
    admitted = None
    lease = utcnow() + timedelta(seconds=settings.queued_lease_s)
    for row in rows:
        scopes = limits.scopes(row.owner, row.plugin, row.concurrency_key)
        full = limits.full(scopes, load)
        if full:
            names = [public_name(s) for s in full]
            if row.waiting_on != names:
                still_full[tuple(names)].append(row.id)
            continue
        values = {"held": None, "waiting_on": None, "admitted": bool(scopes), "lease_expires_at": lease}
        taken = connection.execute(
            update(EXECUTIONS)
            .where(
                EXECUTIONS.c.id == row.id, EXECUTIONS.c.held == HOLD_LIMIT, EXECUTIONS.c.status == S.QUEUED
            )
            .values(values)
        )
        if taken.rowcount != 1:
            continue  # cancelled (or admitted) since it was read
        _Decision().admit(row.id, row.owner, scopes, load)
        insert_admissions(
            connection, [{"scope": s, "execution_id": row.id, "owner": row.owner} for s in scopes]
        )
        admitted = detached_row({k: v for k, v in row._mapping.items() if k != "waiting_on"}, **values)
        break
    for names_key, ids in still_full.items():
        connection.execute(
            update(EXECUTIONS).where(EXECUTIONS.c.id.in_(ids)).values(waiting_on=list(names_key))
        )
    return admitted
