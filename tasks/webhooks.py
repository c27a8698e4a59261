"""Webhook tasks, on their own queue (``AGENTQ_WEBHOOK_QUEUE``): send deliveries, and
publish those that are due (beat's sweeper).

A sending task only claims its deliveries and hands them to the process's webhook loop
(``workers/webhooks.py``): the requests never hold a pool thread.
"""

from agentq.core import queue, store
from agentq.core.db import deadlocked
from agentq.core.models import utcnow
from agentq.core.queue import DELIVER_WEBHOOKS, SWEEP_WEBHOOKS, app
from workers.webhooks import sender

CLAIM_TRIES = 3


@app.task(name=DELIVER_WEBHOOKS, send_events=False)
def deliver_webhooks(deliveries: list[list[object]]) -> int:
    messages = [(str(i), int(attempts)) for i, attempts in deliveries]  # type: ignore[call-overload]
    for tries in range(CLAIM_TRIES):
        try:
            claimed = store.sending.claim_deliveries(messages, utcnow())
            break
        except Exception as exc:
            # Claims, records and new deliveries share the table's indexes: a deadlock
            # victim reads again (the sweeper would send them, but only a lease later).
            if not deadlocked(exc) or tries + 1 == CLAIM_TRIES:
                raise

    if claimed:
        sender.submit(claimed)
    return len(claimed)


@app.task(name=SWEEP_WEBHOOKS, send_events=False)
def sweep_webhooks() -> int:
    due = store.deliveries.due_deliveries(utcnow())
    if due:
        queue.publish_deliveries(due)
    return len(due)
