"""Webhook tasks, on their own queue (``AGENTQ_WEBHOOK_QUEUE``): send deliveries, and
publish those that are due (beat's sweeper).

A sending task only claims its deliveries and hands them to the process's webhook loop
(``workers/webhooks.py``): the requests never hold a pool thread.
"""

from agentq.core import queue, store
from agentq.core.models import utcnow
from agentq.core.queue import DELIVER_WEBHOOKS, SWEEP_WEBHOOKS, app
from workers.webhooks import sender


@app.task(name=DELIVER_WEBHOOKS, send_events=False)
def deliver_webhooks(deliveries: list[list[object]]) -> int:
    messages = [(str(i), int(attempts)) for i, attempts in deliveries]  # type: ignore[call-overload]
    claimed = store.deliveries.claim_deliveries(messages, utcnow())
    if claimed:
        sender.submit(claimed)
    return len(claimed)


@app.task(name=SWEEP_WEBHOOKS, send_events=False)
def sweep_webhooks() -> int:
    due = store.deliveries.due_deliveries(utcnow())
    if due:
        queue.publish_deliveries(due)
    return len(due)
