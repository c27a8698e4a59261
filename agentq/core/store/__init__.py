"""Every SQL statement of agentq, by aggregate. Each function is one transaction.

- ``executions``: submit (what clients do); ``listings``: read, list, count, failures;
  ``cancelling``: cancel;
- ``redrive``: failed, timed-out or cancelled executions run again, through submit's plan;
- ``claiming`` and ``lifecycle``: claim, heartbeat, finish (what workers do);
- ``events``: the event log, its one writer and its readers;
- ``schedules``, ``catalog``, ``keys``: the other tables;
- ``webhooks``, ``deliveries``, ``sending``: subscriptions, the outbox of webhook
  deliveries (written by the lifecycle with the status changes), and the senders' claim
  and record; used as ``store.webhooks.…`` and so on;
- ``admissions``: concurrency limits' decisions (admit, hold, free a slot); ``held``:
  delayed runs and the reaper's sweep; ``limits``: the limits clients set, and the passes
  that admit held executions; ``limited``: whether a limit may apply (from memory);
- ``firing``: firing due schedules a set at a time (``_bulk``: its two statements);
- ``maintenance``: expired leases, lost workers, purging, readiness;
- ``_plans`` and ``_rows``: what those share (statement plans; tables, lock order, rows).

Hot paths stay at a few round trips, for one execution or a chunk of many: submit (one
multi-row INSERT per table, plus one SELECT when idempotency keys are given), claim
(locking SELECT + UPDATE + event INSERT), finish (locking SELECT + one UPDATE, CASE on
the id where rows differ + event INSERT).

Callers use the package: ``from agentq.core import store; store.claim(...)``.
"""

from agentq.core.store import deliveries, sending, webhooks
from agentq.core.store.cancelling import cancel_execution, free_slots
from agentq.core.store.catalog import publish_catalog, read_catalog
from agentq.core.store.claiming import claim
from agentq.core.store.events import NewEvent, read_events, record_events, status_event
from agentq.core.store.executions import (
    NewExecution,
    Submitted,
    create_execution_on_loop,
    create_executions,
    new_id,
)
from agentq.core.store.firing import (
    Fired,
    Firing,
    Prepared,
    due_summary,
    fire,
    fire_planned,
    fire_set,
    prepare,
    upcoming,
)
from agentq.core.store.keys import create_api_key, list_api_keys, owner_of_key, revoke_api_key
from agentq.core.store.lifecycle import Finish, Finished, Starter, finish, heartbeat
from agentq.core.store.limited import forget_limits, may_be_limited
from agentq.core.store.limits import (
    LimitState,
    admit_held,
    delete_limit,
    list_limits,
    put_limit,
    release_due,
    set_key_max_running,
)
from agentq.core.store.listings import (
    Failure,
    count_executions_by_status,
    ended_badly,
    error_types,
    get_execution,
    get_execution_on_loop,
    get_executions,
    get_executions_on_loop,
    list_executions,
)
from agentq.core.store.maintenance import end_lost, expired_leases, lease_unclaimed, ping, purge_finished
from agentq.core.store.redrive import (
    MAX_BULK_KEY,
    MAX_RETRY_BATCH,
    RETRYABLE,
    RetryFilter,
    retry_execution,
    retry_executions,
)
from agentq.core.store.schedules import (
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    update_schedule,
)

__all__ = [
    "MAX_BULK_KEY",
    "MAX_RETRY_BATCH",
    "RETRYABLE",
    "Failure",
    "Finish",
    "Finished",
    "Fired",
    "Firing",
    "LimitState",
    "NewEvent",
    "NewExecution",
    "Prepared",
    "RetryFilter",
    "Starter",
    "Submitted",
    "admit_held",
    "cancel_execution",
    "claim",
    "count_executions_by_status",
    "create_api_key",
    "create_execution_on_loop",
    "create_executions",
    "create_schedule",
    "delete_limit",
    "delete_schedule",
    "deliveries",
    "due_summary",
    "end_lost",
    "ended_badly",
    "error_types",
    "expired_leases",
    "finish",
    "fire",
    "fire_planned",
    "fire_set",
    "forget_limits",
    "free_slots",
    "get_execution",
    "get_execution_on_loop",
    "get_executions",
    "get_executions_on_loop",
    "get_schedule",
    "heartbeat",
    "lease_unclaimed",
    "list_api_keys",
    "list_executions",
    "list_limits",
    "list_schedules",
    "may_be_limited",
    "new_id",
    "owner_of_key",
    "ping",
    "prepare",
    "publish_catalog",
    "purge_finished",
    "put_limit",
    "read_catalog",
    "read_events",
    "record_events",
    "release_due",
    "retry_execution",
    "retry_executions",
    "revoke_api_key",
    "sending",
    "set_key_max_running",
    "status_event",
    "upcoming",
    "update_schedule",
    "webhooks",
]
