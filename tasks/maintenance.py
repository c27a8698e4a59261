"""Periodic housekeeping tasks, fired by beat (see ``beat_schedule.py``)."""

from core import maintenance
from core.models import utcnow
from core.queue import PURGE_EXECUTIONS, REAP_EXECUTIONS, app


@app.task(name=REAP_EXECUTIONS)
def reap_executions() -> dict[str, int]:
    return maintenance.reap(utcnow())


@app.task(name=PURGE_EXECUTIONS)
def purge_executions() -> int:
    return maintenance.purge(utcnow())
