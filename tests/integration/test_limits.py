"""Concurrency limits, with real workers: per concurrency key (through worker kills), per
plugin and per API key; held executions wait visibly, unpublished, and can be cancelled."""

import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentq.client import Client
from agentq.core import broker
from agentq.core.queue import PRIORITY_LEVELS
from tests.conftest import REDIS_URL
from tests.integration.conftest import ADMIN_KEY, Stack
from tests.integration.fairshare import (
    GAUGE_ENV,
    admissions_left,
    gauge,
    gauge_workers,
    key_client,
    most_at_once,
    recorded_intervals,
    row_intervals,
    rows,
    submit_all,
    wait_all_ended,
)
from tests.integration.processes import Proc, wait_until
from tests.integration.test_cli import agentq, json_out

# The guarantee's test runs 2,000 executions; fewer with AGENTQ_TEST_LIMIT_N.
LIMIT_N = int(os.environ.get("AGENTQ_TEST_LIMIT_N", "2000"))


@pytest.fixture(scope="module")
def reaper(stack: Stack) -> Iterator[Proc]:
    """A beat that reaps every second: the runs of a killed worker come back as its leases end."""
    proc = stack.start_beat("beat-limits", AGENTQ_QUEUED_LEASE_S="5")
    yield proc
    stack.stop(proc)


def gauge_queue_length() -> int:
    client = redis.Redis.from_url(REDIS_URL)
    return sum(int(client.llen(key)) for key in broker.queue_keys("agentq.gauge", PRIORITY_LEVELS))


@pytest.mark.usefixtures("reaper")
def test_a_limit_of_7_holds_for_every_execution_through_worker_kills(stack: Stack, tmp_path: Path) -> None:
    record = tmp_path / "gauge.log"
    assert stack.client.put("/v1/limits/kills", json={"max_running": 7}).status_code == 200
    killed_at: list[float] = []
    with gauge_workers(stack, 2, "lim") as workers:
        items = [gauge(record, 0.02, concurrency_key="kills", max_retries=10) for _ in range(LIMIT_N)]
        ids = submit_all(stack.client, items)
        # Held ones are not in the broker: at most the 7 admitted are published at a time.
        assert gauge_queue_length() <= 7
        for round_ in range(2):  # kill a worker mid-run twice; a new one takes its place
            lines = LIMIT_N // 3 * (round_ + 1)

            def progressed(lines: int = lines) -> bool:
                return record.exists() and len(record.read_text().splitlines()) > lines

            wait_until(progressed, 120, "progress")
            victim = workers[round_]
            killed_at.append(time.time())
            victim.signal(signal.SIGKILL)
            stack.stop(victim)
            workers.append(stack.start_worker(f"lim-new{round_}", queues="agentq.gauge", **GAUGE_ENV))
        ended = wait_all_ended(ids, 600)
    assert {r.status.value for r in ended} == {"succeeded"}
    by_rows = most_at_once(row_intervals(ended))
    by_plugin = most_at_once(recorded_intervals(record, killed_at))
    assert by_rows <= 7, by_rows
    assert by_plugin <= 7, by_plugin
    assert by_plugin == 7  # the limit was reached, not merely respected by a slow drain
    assert admissions_left() == 0  # every slot came back: the count did not drift
    (state,) = [s for s in stack.client.get("/v1/limits").json()["limits"] if s["concurrency_key"] == "kills"]
    assert (state["running"], state["waiting"], state["max_running"]) == (0, 0, 7)


@pytest.mark.usefixtures("reaper")
def test_a_plugin_limit_holds_executions_visibly_and_a_held_one_can_be_cancelled(
    stack: Stack, tmp_path: Path
) -> None:
    record = tmp_path / "capped.log"
    item = {"plugin": "gauge_capped", "command": "run", "params": {"path": str(record), "sleep_s": 2.0}}
    with gauge_workers(stack, 1, "cap"):
        ids = submit_all(stack.client, [item] * 6)
        held = stack.client.get("/v1/executions", params={"waiting": "true", "plugin": "gauge_capped"}).json()
        waiting = {e["id"]: e for e in held["executions"]}
        assert len(waiting) == 4  # 2 admitted (the class's max_concurrency), 4 held
        assert {tuple(e["waiting_on"]) for e in waiting.values()} == {("plugin:gauge_capped",)}
        assert {e["status"] for e in waiting.values()} == {"queued"}
        cancelled = ids[-1]
        assert cancelled in waiting
        answer = stack.client.post(f"/v1/executions/{cancelled}/cancel")
        assert answer.status_code == 200
        assert answer.json()["status"] == "cancelled"
        # A running one cancelled keeps its slot until its run has stopped.
        running = next(i for i in ids if i not in waiting)
        wait_until(lambda: record.exists() and running in record.read_text(), 30, "a run to start")
        assert stack.client.post(f"/v1/executions/{running}/cancel").json()["status"] == "cancelled"
        ended = wait_all_ended(ids, 60)
    assert sorted(r.status.value for r in ended) == ["cancelled"] * 2 + ["succeeded"] * 4
    assert cancelled not in record.read_text()  # it never ran
    assert most_at_once(recorded_intervals(record, [])) == 2
    assert admissions_left() == 0


@pytest.mark.usefixtures("reaper")
def test_a_keys_max_running_limits_it_alone(stack: Stack, tmp_path: Path) -> None:
    key_id, client = key_client(stack, "limited")
    other_id, other = key_client(stack, "unlimited")
    patched = stack.client.patch(f"/v1/keys/{key_id}", json={"max_running": 1})
    assert patched.status_code == 200
    assert patched.json()["max_running"] == 1
    time.sleep(1.5)  # the API's view of limited keys refreshes within AGENTQ_CATALOG_TTL_S
    mine, theirs = tmp_path / "mine.log", tmp_path / "theirs.log"
    with gauge_workers(stack, 1, "key"), client, other:
        limited = submit_all(client, [gauge(mine, 0.5)] * 3)
        free = submit_all(other, [gauge(theirs, 0.5)] * 3)
        first = client.get(f"/v1/executions/{limited[-1]}").json()
        assert first["waiting_on"] == ["api_key"]
        wait_all_ended(limited + free, 60)
    assert most_at_once(recorded_intervals(mine, [])) == 1
    assert most_at_once(recorded_intervals(theirs, [])) == 3  # another key is not held by it
    cleared = stack.client.patch(f"/v1/keys/{key_id}", json={"max_running": None})
    assert cleared.json()["max_running"] is None
    assert other_id != key_id


@pytest.mark.usefixtures("reaper")
def test_one_keys_backlog_does_not_hold_back_anothers_run(stack: Stack, tmp_path: Path) -> None:
    _, a = key_client(stack, "backlog")
    _, b = key_client(stack, "newcomer")
    item = {
        "plugin": "gauge_capped",
        "command": "run",
        "params": {"path": str(tmp_path / "rr.log"), "sleep_s": 0.3},
    }
    with gauge_workers(stack, 1, "rr"), a, b:
        backlog = submit_all(a, [item] * 30)
        wait_until(lambda: (tmp_path / "rr.log").exists(), 30, "the backlog to start")
        (newcomer,) = submit_all(b, [item])
        ended = {r.id: r for r in wait_all_ended([*backlog, newcomer], 120)}
    started = ended[newcomer].started_at
    assert started is not None
    after = [i for i in backlog if (s := ended[i].started_at) is not None and s > started]
    # First in, first out would start it last; served in turn, it takes one of the next slots.
    assert len(after) >= 20, len(after)


@pytest.mark.usefixtures("reaper")
def test_the_worker_that_frees_a_slot_starts_the_next_run_in_the_same_transaction(
    stack: Stack, tmp_path: Path
) -> None:
    assert stack.client.put("/v1/limits/refill", json={"max_running": 1}).status_code == 200
    record = tmp_path / "refill.log"
    with gauge_workers(stack, 2, "refill"):
        ids = submit_all(stack.client, [gauge(record, 0.1, concurrency_key="refill")] * 6)
        ended = sorted(wait_all_ended(ids, 60), key=lambda r: (r.started_at, r.id))
    assert {r.status.value for r in ended} == {"succeeded"}
    for before, after in itertools.pairwise(ended):
        # Claimed by the finish that freed the slot: started when that one finished, on
        # the same worker, with no message between them.
        assert after.started_at == before.finished_at, (before.id, after.id)
        assert after.worker == before.worker
    assert most_at_once(recorded_intervals(record, [])) == 1
    assert admissions_left() == 0


@pytest.mark.usefixtures("reaper")
def test_a_warm_shutdown_waits_for_a_run_it_started_without_a_message(stack: Stack, tmp_path: Path) -> None:
    assert stack.client.put("/v1/limits/drain", json={"max_running": 1}).status_code == 200
    record = tmp_path / "drain.log"
    env = {**GAUGE_ENV, "AGENTQ_SHUTDOWN_GRACE_S": "5"}
    stopping = stack.start_worker("drain-a", queues="agentq.gauge", **env)
    first, second, third = submit_all(stack.client, [gauge(record, 1.5, concurrency_key="drain")] * 3)
    # The second starts in the slot the first frees, claimed by the first's finish.
    wait_until(lambda: rows([second])[0].status.value == "running", 30, "the second run")
    stopping.signal(signal.SIGTERM)
    stopping.popen.wait(30)
    after_stop = {r.id: r for r in rows([first, second, third])}
    stack.extra.remove(stopping)
    successor = stack.start_worker("drain-b", queues="agentq.gauge", **GAUGE_ENV)
    try:
        ended = {r.id: r for r in wait_all_ended([first, second, third], 60)}
    finally:
        stack.stop(successor)
    assert stopping.popen.returncode == 0
    # It ran to its end before the process exited, once, on the worker that started it...
    assert (after_stop[second].status.value, after_stop[second].attempts) == ("succeeded", 1)
    assert after_stop[second].worker == after_stop[first].worker
    # ...and what its finish admitted meanwhile was published, not started by a worker
    # on its way out: the next worker ran it.
    assert after_stop[third].status.value == "queued"
    assert ended[third].status.value == "succeeded"
    assert ended[third].worker != ended[second].worker
    assert admissions_left() == 0


def test_limits_and_start_times_refuse_bad_input(stack: Stack) -> None:
    client = stack.client
    assert client.put("/v1/limits/k", json={"max_running": 0}).status_code == 422
    assert client.put("/v1/limits/k", json={"max_running": "many"}).status_code == 422
    assert client.put(f"/v1/limits/{'k' * 129}", json={"max_running": 1}).status_code == 422
    assert client.delete("/v1/limits/never-set").status_code == 404
    assert client.patch("/v1/keys/01ARZ3NDEKTSV4RRFFQ69G5FAV", json={"max_running": 2}).status_code == 404
    assert client.patch("/v1/keys/01ARZ3NDEKTSV4RRFFQ69G5FAV", json={"max_running": 0}).status_code == 422
    _, tenant = key_client(stack, "not-admin")
    with tenant:
        assert tenant.patch("/v1/keys/whatever", json={"max_running": 2}).status_code == 403
    echo = {"plugin": "echo", "command": "echo", "params": {}}
    both = client.post("/v1/executions", json={**echo, "run_at": "2030-01-01T00:00:00Z", "delay_s": 5})
    assert both.status_code == 422
    assert "not both" in both.text
    far = client.post("/v1/executions", json={**echo, "delay_s": 31 * 24 * 3600})
    assert far.status_code == 422
    assert "AGENTQ_RUN_AT_HORIZON_S" in far.text
    naive = client.post("/v1/executions", json={**echo, "run_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 422
    long_key = client.post("/v1/executions", json={**echo, "concurrency_key": "k" * 129})
    assert long_key.status_code == 422
    batch = client.post("/v1/executions/batch", json={"executions": [echo, {**echo, "delay_s": -1}]})
    assert batch.status_code == 422


def test_limits_belong_to_the_key_that_set_them(stack: Stack) -> None:
    _, mine = key_client(stack, "owner-a")
    _, theirs = key_client(stack, "owner-b")
    with mine, theirs:
        assert mine.put("/v1/limits/shared-name", json={"max_running": 3}).status_code == 200
        assert [s["concurrency_key"] for s in mine.get("/v1/limits").json()["limits"]] == ["shared-name"]
        assert theirs.get("/v1/limits").json()["limits"] == []
        assert theirs.delete("/v1/limits/shared-name").status_code == 404
        assert mine.delete("/v1/limits/shared-name").status_code == 204
        assert mine.get("/v1/limits").json()["limits"] == []


def test_the_cli_and_client_set_list_and_remove_limits(stack: Stack) -> None:
    set_ = agentq(stack, "limits", "set", "cli-key", "3", "--json")
    assert set_.returncode == 0, set_.stderr
    assert json_out(set_)["max_running"] == 3
    listed = agentq(stack, "limits", "list")
    assert "cli-key" in listed.stdout
    delayed = agentq(
        stack,
        "submit",
        "gauge",
        "run",
        "-p",
        "path=/dev/null",
        "--concurrency-key",
        "cli-key",
        "--delay",
        "3600",
        "--json",
    )
    assert json_out(delayed)["waiting_on"] == ["run_at"]
    waiting = agentq(stack, "list", "--waiting", "--json")
    assert json_out(delayed)["id"] in {e["id"] for e in json_out(waiting)["executions"]}
    with Client(stack.url, api_key=ADMIN_KEY) as client:
        (state,) = [s for s in client.list_limits() if s.concurrency_key == "cli-key"]
        assert (state.max_running, state.waiting) == (3, 1)
        client.cancel(json_out(delayed)["id"])
        assert client.set_limit("cli-key", 4).max_running == 4
        client.delete_limit("cli-key")
    assert agentq(stack, "limits", "rm", "cli-key").returncode == 5  # gone already: a 404
