"""Fair share without any limit set: a worker takes the next message of each key in turn
(each key's runs go to its shard of the queue), so one key's backlog in the broker does
not hold back another key's run."""

from pathlib import Path
from typing import Any

import httpx

from agentq.core import broker
from tests.integration.conftest import Stack
from tests.integration.fairshare import gauge, key_client, submit_all, wait_all_ended
from tests.integration.processes import child_env, start_worker, wait_until


def keys_on_two_shards(stack: Stack) -> tuple[httpx.Client, httpx.Client]:
    """Two keys whose executions go to different shards (1 pair in 16 shares one)."""
    first_id, first = key_client(stack, "pool-a")
    for n in range(50):
        other_id, other = key_client(stack, f"pool-b{n}")
        if broker.shard("agentq.gauge", other_id) != broker.shard("agentq.gauge", first_id):
            return first, other
        other.close()
    raise AssertionError("no two keys on different shards among 50")


def test_one_keys_backlog_in_the_broker_does_not_delay_anothers_run(stack: Stack, tmp_path: Path) -> None:
    a, b = keys_on_two_shards(stack)
    record = tmp_path / "pool.log"
    # One busy worker: a single slot, so everything else waits in the broker.
    worker = start_worker(child_env(stack.env), stack.log_dir, "pool", queues="agentq.gauge", concurrency=1)
    stack.extra.append(worker)
    try:
        with a, b:
            backlog = []
            for _ in range(20):  # one message each, in the broker behind the one running
                response = a.post("/v1/executions", json=gauge(record, 0.2))
                assert response.status_code == 202, response.text
                backlog.append(response.json()["id"])
            wait_until(record.exists, 30, "the backlog to start")
            response = b.post("/v1/executions", json=gauge(record, 0.2))
            assert response.status_code == 202, response.text
            newcomer = response.json()["id"]
            ended = {r.id: r for r in wait_all_ended([*backlog, newcomer], 120)}
    finally:
        stack.stop(worker)
    assert {r.status.value for r in ended.values()} == {"succeeded"}
    started = ended[newcomer].started_at
    assert started is not None
    after = [i for i in backlog if (s := ended[i].started_at) is not None and s > started]
    # First in, first out would start it after all 20; in turn, it takes the next slot.
    assert len(after) >= 17, len(after)


def spin(path: Path, cpu_ms: float) -> dict[str, Any]:
    return {"plugin": "spin", "command": "run", "params": {"path": str(path), "cpu_ms": cpu_ms}}


def started(record: Path) -> list[str]:
    """The executions whose runs started, in the order they did."""
    return [line.split()[1] for line in record.read_text().splitlines()]


def test_one_keys_cpu_bound_backlog_does_not_hold_back_anothers_run(stack: Stack, tmp_path: Path) -> None:
    _, a = key_client(stack, "spin-a")
    _, b = key_client(stack, "spin-b")
    record = tmp_path / "spin.log"
    # One worker of the default size: 64 sync threads for a batch of CPU-bound runs.
    worker = start_worker(child_env(stack.env), stack.log_dir, "spin", queues="agentq.spin", concurrency=64)
    stack.extra.append(worker)
    try:
        with a, b:
            backlog = submit_all(a, [spin(record, 10)] * 1000)  # some 10 s of CPU in all
            wait_until(lambda: record.exists() and len(started(record)) >= 10, 60, "the backlog to start")
            response = b.post("/v1/executions", json=spin(record, 0))
            assert response.status_code == 202, response.text
            newcomer = response.json()["id"]
            ended = wait_all_ended([*backlog, newcomer], 300)
    finally:
        stack.stop(worker)
    assert {r.status.value for r in ended} == {"succeeded"}
    order = started(record)
    before = order.index(newcomer)
    # Computing on all 64 threads at once, A's runs kept the worker from even claiming
    # B's run while hundreds of them started (100 to 250 with no lane); on one thread,
    # B's run is claimed at once and goes next, before A's runs had a turn on every thread.
    assert before < 64, before


def test_a_run_waiting_for_the_cpu_lane_is_not_timed_out_for_it(stack: Stack, tmp_path: Path) -> None:
    _, a = key_client(stack, "spin-timeout")
    record = tmp_path / "spin.log"
    worker = start_worker(child_env(stack.env), stack.log_dir, "spin-t", queues="agentq.spin", concurrency=64)
    stack.extra.append(worker)
    try:
        with a:
            # 3 s of CPU in all, one run at a time: the last waits twice its timeout.
            ids = submit_all(a, [{**spin(record, 50), "timeout_s": 1.5}] * 60)
            ended = wait_all_ended(ids, 120)
    finally:
        stack.stop(worker)
    # Counted from the claim, the runs at the back would time out before they began.
    assert [r.status.value for r in ended] == ["succeeded"] * 60
