"""ORM models: the execution row is the single source of truth for status and result."""

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Enum, Index, String, TypeDecorator, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC with microseconds; hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


# Why a queued execution is held back, not published: its ``run_at`` is ahead, or a
# concurrency limit that applies to it is full.
HOLD_RUN_AT = "run_at"
HOLD_LIMIT = "limit"
# The owner of what the bootstrap admin key (AGENTQ_ADMIN_API_KEY) creates.
ADMIN_OWNER = "admin"
# An execution's priority when its request names none: 0..9, 9 runs first.
DEFAULT_PRIORITY = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


class ExecutionStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.CANCELLED}
)


class WebhookEvents(enum.IntFlag):
    """What an execution's own webhook is sent (``Execution.webhook_events``)."""

    STARTED = 1
    COMPLETED = 2  # any terminal status


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at ``next_attempt_at``
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # out of attempts, or its endpoint disabled


class EventKind(enum.StrEnum):
    STATUS = "status"
    PROGRESS = "progress"
    LOG = "log"


ulid = Annotated[str, 26]
str16 = Annotated[str, 16]
str64 = Annotated[str, 64]
str128 = Annotated[str, 128]
str255 = Annotated[str, 255]
str2048 = Annotated[str, 2048]
json_doc = dict[str, Any]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        ulid: String(26),
        str16: String(16),
        str64: String(64),
        str128: String(128),
        str255: String(255),
        str2048: String(2048),
        datetime: UTCDateTime(),
        # MySQL JSON holds up to max_allowed_packet; MariaDB maps it to LONGTEXT (4 GiB).
        dict[str, Any]: JSON(),
        ExecutionStatus: Enum(
            ExecutionStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        EventKind: Enum(
            EventKind, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        DeliveryStatus: Enum(
            DeliveryStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
    }


class Execution(Base):
    __tablename__ = "executions"

    id: Mapped[ulid] = mapped_column(primary_key=True)
    owner: Mapped[str64]  # the API key (tenant) that submitted it
    plugin: Mapped[str64]
    command: Mapped[str64]
    params: Mapped[json_doc]
    queue: Mapped[str64]
    status: Mapped[ExecutionStatus] = mapped_column(default=ExecutionStatus.QUEUED)
    result: Mapped[json_doc | None]
    error: Mapped[json_doc | None]
    progress: Mapped[json_doc | None]
    attempts: Mapped[int] = mapped_column(default=0)
    max_retries: Mapped[int]
    priority: Mapped[int]
    timeout_s: Mapped[float]
    schedule_id: Mapped[ulid | None]
    slot_at: Mapped[datetime | None]  # the schedule slot this execution fires for
    idempotency_key: Mapped[str255 | None]
    retry_of: Mapped[ulid | None]  # the execution this one runs again (re-drive)
    worker: Mapped[str255 | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    # The seq of its newest event. Whoever records events raises it in the same UPDATE
    # that changes the row, so the numbers are gap-free and ordered however many write.
    last_event_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    log_lines: Mapped[int] = mapped_column(default=0, server_default="0")  # recorded so far, for the cap
    # Its own webhook and the events it wants there (``WebhookEvents`` bits; 0: none): the
    # lifecycle's cheap check of whether a status change writes a delivery.
    webhook_url: Mapped[str2048 | None]
    webhook_events: Mapped[int] = mapped_column(default=0, server_default="0")
    # Fair share (``store.admissions``): the client's concurrency key; when it may start
    # (delayed runs); why it is held back, if it is (``HOLD_RUN_AT`` or ``HOLD_LIMIT``), and
    # which full limits it waits on; whether it holds admissions (counted by its limits).
    concurrency_key: Mapped[str128 | None]
    run_at: Mapped[datetime | None]
    held: Mapped[str16 | None]
    waiting_on: Mapped[list[str] | None] = mapped_column(JSON())
    admitted: Mapped[bool] = mapped_column(default=False, server_default="0")

    __table_args__ = (
        Index("ix_executions_owner_id", "owner", "id"),
        Index("ix_executions_owner_status_id", "owner", "status", "id"),
        Index("ix_executions_owner_plugin_id", "owner", "plugin", "id"),
        Index("ix_executions_schedule_id_id", "schedule_id", "id"),
        Index("ix_executions_retry_of", "retry_of"),
        Index("ix_executions_status_lease", "status", "lease_expires_at"),
        # Held rows: the delayed ones by due time, those waiting for a plugin's slot by owner.
        Index("ix_executions_held_run_at", "held", "run_at"),
        Index("ix_executions_held_plugin", "held", "plugin", "owner", "priority", "id"),
        UniqueConstraint("owner", "idempotency_key", name="uq_executions_owner_idempotency_key"),
        # Exactly one execution per schedule slot, however many beats try.
        UniqueConstraint("schedule_id", "slot_at", name="uq_executions_schedule_slot"),
    )


class ExecutionEvent(Base):
    """One entry of an execution's event log: a status change, a progress update or a log line.

    ``seq`` counts from 1 per execution; the terminal status is always the last entry.
    The first, ``queued``, is the execution's row itself: not stored (``store.read_events``).
    """

    __tablename__ = "execution_events"

    execution_id: Mapped[ulid] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    kind: Mapped[EventKind]
    data: Mapped[json_doc]


class Schedule(Base):
    """A periodic agent; beat fires it when ``next_run_at`` is due."""

    __tablename__ = "schedules"

    id: Mapped[ulid] = mapped_column(primary_key=True)
    owner: Mapped[str64]
    name: Mapped[str128]
    plugin: Mapped[str64]
    command: Mapped[str64]
    params: Mapped[json_doc]
    queue: Mapped[str64]
    cron: Mapped[str128 | None]
    interval_s: Mapped[float | None]
    timezone: Mapped[str64] = mapped_column(default="UTC")
    enabled: Mapped[bool] = mapped_column(default=True)
    missed_policy: Mapped[str16] = mapped_column(default="skip")
    overlap_policy: Mapped[str16] = mapped_column(default="allow")
    priority: Mapped[int] = mapped_column(default=DEFAULT_PRIORITY)
    timeout_s: Mapped[float | None]
    max_retries: Mapped[int | None]
    concurrency_key: Mapped[str128 | None]  # its executions' (see ``Execution``)
    # Each fire is spread over [slot, slot + jitter_s], the same for a (schedule, slot).
    jitter_s: Mapped[float | None]
    next_run_at: Mapped[datetime | None]  # the next slot; None while disabled
    next_fire_at: Mapped[datetime | None]  # when that slot fires: next_run_at plus its jitter
    webhook_url: Mapped[str2048 | None]  # every fired execution inherits them
    webhook_events: Mapped[int] = mapped_column(default=0, server_default="0")
    last_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_schedules_enabled_next_fire_at", "enabled", "next_fire_at"),
        UniqueConstraint("owner", "name", name="uq_schedules_owner_name"),
    )


class ApiKey(Base):
    """A client's key; only its SHA-256 is stored. Its id is the owner of what it creates."""

    __tablename__ = "api_keys"

    id: Mapped[ulid] = mapped_column(primary_key=True)
    name: Mapped[str128]
    prefix: Mapped[str16]  # the first characters, to recognise a key in lists
    key_hash: Mapped[str64]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    max_running: Mapped[int | None]  # of its executions at once, across the fleet; None: no limit

    __table_args__ = (UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),)


class PluginCommand(Base):
    """The catalog that workers publish at start-up; the API validates and lists from it."""

    __tablename__ = "plugin_commands"

    plugin: Mapped[str64] = mapped_column(primary_key=True)
    command: Mapped[str64] = mapped_column(primary_key=True)
    description: Mapped[str255] = mapped_column(default="")
    plugin_description: Mapped[str255] = mapped_column(default="")
    params_schema: Mapped[json_doc]
    version: Mapped[str64]
    queue: Mapped[str64]
    result_type: Mapped[str64]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The plugin's executions running at once, across the fleet (the class's
    # ``max_concurrency`` or the worker's ``AGENTQ_PLUGIN_LIMITS``); None: no limit.
    max_concurrency: Mapped[int | None]


class WebhookEndpoint(Base):
    """A subscription: every execution of ``owner`` sends the ``events`` it names here."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[ulid] = mapped_column(primary_key=True)
    owner: Mapped[str64]
    url: Mapped[str2048]
    description: Mapped[str255] = mapped_column(default="")
    events: Mapped[list[str]] = mapped_column(JSON())
    # Signing secrets, encrypted (``agentq.core.webhook_secrets``); the previous one signs
    # too until ``previous_secret_until``, after a rotation.
    secret: Mapped[str255]
    previous_secret: Mapped[str255 | None]
    previous_secret_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str255 | None]
    failing_since: Mapped[datetime | None]  # the first failure since its last success
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_webhook_endpoints_owner_id", "owner", "id"),)


class WebhookKeySecret(Base):
    """The secret that signs an API key's per-execution webhooks, made on first use."""

    __tablename__ = "webhook_key_secrets"

    owner: Mapped[str64] = mapped_column(primary_key=True)
    secret: Mapped[str255]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one target (an endpoint, or the execution's own webhook): the outbox,
    written in the transaction of the status change that causes it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[ulid] = mapped_column(primary_key=True)
    owner: Mapped[str64]
    execution_id: Mapped[ulid]
    endpoint_id: Mapped[ulid | None]  # None: the execution's own webhook
    event: Mapped[str64]  # execution.succeeded, ...
    status: Mapped[DeliveryStatus] = mapped_column(default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Due then while pending (a sender holding it pushes it past its timeout); None after.
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]  # when the status changed
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_webhook_deliveries_next_attempt_at", "next_attempt_at"),
        Index("ix_webhook_deliveries_execution_id", "execution_id"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )


class WebhookAttempt(Base):
    """One HTTP request of a delivery, as the receiver answered it."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[ulid] = mapped_column(primary_key=True)
    attempt: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str255 | None]  # the connection error, when there was no answer
    duration_ms: Mapped[float]
    response: Mapped[str2048 | None]  # the first KiB of the body
    next_attempt_at: Mapped[datetime | None]


class ConcurrencyLimit(Base):
    """How many executions of an owner's concurrency key may run at once."""

    __tablename__ = "concurrency_limits"

    owner: Mapped[str64] = mapped_column(primary_key=True)
    name: Mapped[str128] = mapped_column(primary_key=True)
    max_running: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Admission(Base):
    """One running (admitted, not ended) execution counted by one limit: a limit's load is
    the COUNT of its rows, so it cannot drift. ``scope`` names the limit
    (``agentq.core.limits``)."""

    __tablename__ = "admissions"

    scope: Mapped[str255] = mapped_column(primary_key=True)
    execution_id: Mapped[ulid] = mapped_column(primary_key=True)
    owner: Mapped[str64]  # the execution's: a plugin's slots are shared between owners in turn

    __table_args__ = (Index("ix_admissions_execution_id", "execution_id"),)


class AdmissionGate(Base):
    """One row that every admission decision locks first, so that two never overlap."""

    __tablename__ = "admission_gate"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    turns: Mapped[int] = mapped_column(BigInteger, default=0)
