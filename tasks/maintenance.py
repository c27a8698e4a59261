"""Periodic housekeeping tasks, fired by beat (see ``beat_schedule.py``).

They send no task events (``send_events=False`` here, no task-sent event in
``agentq.core.queue.AMQP``): beat fires the reaper every few seconds, and Flower's task list is
for executions. Their work shows in the logs (``agentq.maintenance``).
"""

from agentq.core import maintenance
from agentq.core.models import utcnow
from agentq.core.queue import PURGE_EXECUTIONS, REAP_EXECUTIONS, app


@app.task(name=REAP_EXECUTIONS, send_events=False)
def reap_executions() -> dict[str, int]:
    return maintenance.reap(utcnow())


@app.task(name=PURGE_EXECUTIONS, send_events=False)
def purge_executions() -> int:
    return maintenance.purge(utcnow())
