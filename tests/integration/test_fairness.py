"""Fair share without any limit set: a worker takes the next message of each key in turn
(each key's runs go to its shard of the queue), so one key's backlog in the broker does
not hold back another key's run."""

from pathlib import Path

import httpx

from agentq.core import broker
from tests.integration.conftest import Stack
from tests.integration.fairshare import gauge, key_client, wait_all_ended
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
