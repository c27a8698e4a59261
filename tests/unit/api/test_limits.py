"""Concurrency limits in process: a cancelled run's slot, with no worker to stop it."""

from sqlalchemy import update

from agentq.core import db, store
from agentq.core.db import session_scope
from agentq.core.models import Execution, ExecutionStatus
from tests.unit.api.conftest import LocalAPI


def test_a_run_cancelled_while_running_keeps_its_slot_from_the_reaper(local: LocalAPI) -> None:
    assert local.client.put("/v1/limits/one-at-a-time", json={"max_running": 1}).status_code == 200
    first = local.submit("echo", "echo", {"n": 1}, concurrency_key="one-at-a-time")
    second = local.submit("echo", "echo", {"n": 2}, concurrency_key="one-at-a-time")
    assert (first["waiting_on"], second["waiting_on"]) == (None, ["concurrency_key:one-at-a-time"])

    def claimed() -> None:  # as a worker's claim leaves it
        with session_scope() as session:
            session.execute(
                update(Execution).where(Execution.id == first["id"]).values(status=ExecutionStatus.RUNNING)
            )

    db.call(claimed)  # on the API's event loop, whose engines these are

    assert local.client.post(f"/v1/executions/{first['id']}/cancel").json()["status"] == "cancelled"

    # Its worker has not stopped it yet: the reaper's pass leaves its slot taken
    assert db.call(store.admit_held) == []
    assert local.get(second["id"])["waiting_on"] == ["concurrency_key:one-at-a-time"]
    # Once the worker has stopped it, the slot goes to the next
    assert [e.id for e in db.call(store.free_slots, [first["id"]])] == [second["id"]]
    assert local.get(second["id"])["waiting_on"] is None
