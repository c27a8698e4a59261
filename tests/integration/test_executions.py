"""Submit over HTTP, run on a real Celery worker, poll the result from MySQL."""

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from agentq.core import broker, queue, store
from agentq.core.queue import PRIORITY_LEVELS
from tests.conftest import REDIS_URL
from tests.integration.conftest import Stack
from tests.integration.processes import wait_until


def queue_depth(name: str) -> int:
    """Messages waiting in a Redis queue, over all its shards' priority lists."""
    client = redis.Redis.from_url(REDIS_URL)
    return sum(int(client.llen(key)) for key in broker.queue_keys(name, PRIORITY_LEVELS))


def test_submit_echo_then_poll_returns_result(stack: Stack) -> None:
    response = stack.client.post(
        "/v1/executions",
        json={"plugin": "echo", "command": "echo", "params": {"hello": "world", "n": [1, 2]}},
    )
    assert response.status_code == 202
    created = response.json()
    assert response.headers["Location"] == f"/v1/executions/{created['id']}"
    assert created["status"] == "queued"
    assert len(created["id"]) == 26

    done = stack.wait(created["id"])

    assert done["status"] == "succeeded"
    assert done["result"] == {"hello": "world", "n": [1, 2]}
    assert done["attempts"] == 1
    assert done["worker"]
    assert done["started_at"] >= done["created_at"]
    assert done["finished_at"] >= done["started_at"]


def test_same_message_published_twice_runs_plugin_once(stack: Stack, tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    created = stack.submit("counter", "hit", {"path": str(runs), "sleep_s": 1})
    row = store.get_execution(created["id"], "admin")
    # A duplicate publish while the first delivery runs, and another after it finished.
    queue.enqueue([row])
    done = stack.wait(created["id"])
    queue.enqueue([row])
    queue.enqueue([row])
    marker = stack.wait(stack.submit("echo", "echo", {"after": "duplicates"})["id"])
    wait_until(lambda: queue_depth("agentq") == 0, 10, "the queue to drain")
    time.sleep(1)

    assert done["status"] == "succeeded"
    assert marker["status"] == "succeeded"
    assert runs.read_text().splitlines() == [f"{created['id']} 1"]
    assert stack.get(created["id"])["attempts"] == 1


def test_retryable_failure_succeeds_on_attempt_2(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"fail_times": 1}, max_retries=3)

    done = stack.wait(created["id"])

    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
    assert done["result"]["attempt"] == 2


def test_retries_exhausted_fails_with_last_error(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"fail_times": 5}, max_retries=1)

    done = stack.wait(created["id"])

    assert done["status"] == "failed"
    assert done["attempts"] == 2
    assert done["error"]["type"] == "RetryLater"
    assert "attempt 2" in done["error"]["message"]


def test_timeout_sync_and_async_end_timed_out(stack: Stack) -> None:
    sync = stack.submit("simulate", "run", {"sleep_s": 30, "mode": "sync"}, timeout_s=1)
    async_ = stack.submit("simulate", "run", {"sleep_s": 30, "mode": "async"}, timeout_s=1)
    cpu = stack.submit("simulate", "run", {"cpu_ms": 60_000}, timeout_s=1)

    for created in (sync, async_, cpu):
        done = stack.wait(created["id"], timeout_s=20)
        assert done["status"] == "timed_out", done
        assert done["error"]["type"] == "timed_out"
        assert done["attempts"] == 1


def test_progress_is_visible_while_running(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 3, "progress_steps": 6, "mode": "async"})

    wait_until(lambda: (stack.get(created["id"])["progress"] or {}).get("percent", 0) > 0, 10, "progress")
    midway = stack.get(created["id"])
    done = stack.wait(created["id"])

    assert midway["status"] == "running"
    assert 0 < midway["progress"]["percent"] < 100
    assert midway["progress"]["message"].startswith("step ")
    assert done["progress"] == {"percent": 100.0, "message": "step 6 of 6"}


def test_cancel_running_stops_cooperative_and_forced(stack: Stack) -> None:
    runs = [
        stack.submit("simulate", "run", {"sleep_s": 60, "mode": "async"}),
        stack.submit("simulate", "run", {"sleep_s": 60, "mode": "sync"}),
        stack.submit("simulate", "run", {"cpu_ms": 120_000}),  # never checks ctx
    ]
    for created in runs:

        def running(c: dict[str, Any] = created) -> bool:
            return bool(stack.get(c["id"])["status"] == "running")

        wait_until(running, 15, "running")

    for created in runs:
        response = stack.client.post(f"/v1/executions/{created['id']}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"

    # The worker lets go of each within a few seconds: Flower-free check via its log, where
    # the message's task result gives each execution's recorded status.
    for created in runs:

        def let_go(c: dict[str, Any] = created) -> bool:
            return f"'{c['id']}': 'cancelled'" in stack.worker.log()

        wait_until(let_go, 10, "the worker to stop it")
        assert stack.get(created["id"])["status"] == "cancelled"
    again = stack.client.post(f"/v1/executions/{runs[0]['id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


def test_cancel_queued_never_starts(stack: Stack, tmp_path: Path) -> None:
    runs = tmp_path / "parked.txt"
    created = stack.submit("parked", "hit", {"path": str(runs)})
    assert stack.get(created["id"])["status"] == "queued"

    cancelled = stack.client.post(f"/v1/executions/{created['id']}/cancel").json()
    worker = stack.start_worker("parked-worker", queues="agentq.parked")
    try:
        wait_until(
            lambda: f"{created['id']}] succeeded" in worker.log(), 60, "the parked worker to take the message"
        )
    finally:
        stack.stop(worker)  # other tests rely on the parked queue having no worker

    assert cancelled["status"] == "cancelled"
    assert not runs.exists()
    assert stack.get(created["id"])["status"] == "cancelled"
    assert stack.get(created["id"])["attempts"] == 0


def test_cancel_finished_is_conflict(stack: Stack) -> None:
    done = stack.wait(stack.submit("echo", "echo", {})["id"])

    response = stack.client.post(f"/v1/executions/{done['id']}/cancel")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "succeeded" in response.json()["detail"]


def test_batch_submits_in_order_in_one_call(stack: Stack) -> None:
    items: list[dict[str, Any]] = [
        {"plugin": "echo", "command": "echo", "params": {"i": i}} for i in range(5)
    ]
    items.append({"plugin": "simulate", "command": "run", "params": {"sleep_s": 0.1}, "priority": 9})

    response = stack.client.post("/v1/executions/batch", json={"executions": items})

    assert response.status_code == 202
    created = response.json()["executions"]
    assert [e["params"] for e in created] == [i["params"] for i in items]
    assert len({e["id"] for e in created}) == 6
    assert [stack.wait(e["id"])["status"] for e in created] == ["succeeded"] * 6


def test_long_poll_returns_when_terminal(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 1, "mode": "async"})

    started = time.monotonic()
    polled = stack.get(created["id"], wait_s=30)
    elapsed = time.monotonic() - started

    assert polled["status"] == "succeeded"
    assert elapsed < 15  # well before the 30 s the poll allowed


def test_large_result_round_trips_through_mysql(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"result_bytes": 2_000_000})

    done = stack.wait(created["id"])

    assert done["status"] == "succeeded"
    assert len(done["result"]["filler"]) == 2_000_000


def test_list_filters_and_cursor_pagination(stack: Stack) -> None:
    tag = time.time_ns()
    ids = [stack.submit("echo", "echo", {"tag": tag})["id"] for _ in range(5)]
    for i in ids:
        stack.wait(i)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"plugin": "echo", "status": "succeeded", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = stack.client.get("/v1/executions", params=params).json()
        assert all(e["plugin"] == "echo" and e["status"] == "succeeded" for e in page["executions"])
        seen += [e["id"] for e in page["executions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)
    assert (
        stack.client.get("/v1/executions", params={"status": "cancelled", "plugin": "echo"}).json()[
            "executions"
        ]
        == []
    )


def test_one_claim_of_many_messages_gives_each_execution_to_one_of_them(stack: Stack) -> None:
    # On a queue no worker reads: only these claims touch the rows.
    spec = store.NewExecution("echo", "echo", {}, "agentq.unread", 5, 30, 0)
    a, b, c = (s.execution.id for s in store.create_executions([spec] * 3))

    def claim(messages: list[tuple[list[str], int]], worker: str, lease_s: float) -> list[list[str]]:
        return [[row.id for row in rows] for rows in store.claim(messages, worker, lease_s)]

    # A duplicate delivery in the same group takes nothing; nor does a stale attempt.
    assert claim([([a, b], 0), ([b, c], 0), ([c], 1), ([a], 0)], "w1", -1) == [[a, b], [c], [], []]
    # Leases already expired: still no message takes a running row (the reaper decides).
    assert claim([([a], 0), ([a, b], 1), ([c], 7)], "w2", 30) == [[], [], []]

    rows = {i: stack.get(i) for i in (a, b, c)}
    assert {i: (r["status"], r["attempts"], r["worker"]) for i, r in rows.items()} == {
        a: ("running", 1, "w1"),
        b: ("running", 1, "w1"),
        c: ("running", 1, "w1"),
    }


def test_simulate_crash_kills_the_worker_process(stack: Stack) -> None:
    # A worker of its own, on a queue of its own, so the shared worker lives on.
    worker = stack.start_worker("crasher", queues="agentq.crash")
    wait_until(lambda: "ready." in worker.log(), 60, "the crash worker")
    (submitted,) = store.create_executions(
        [store.NewExecution("simulate", "run", {"crash": True}, "agentq.crash", 5, 30, 0)]
    )

    queue.enqueue([submitted.execution])
    wait_until(lambda: not worker.alive, 30, "the worker to die")

    assert worker.popen.returncode == -9  # SIGKILL: no warm shutdown, no ack
    row = stack.get(submitted.execution.id)
    assert (row["status"], row["attempts"]) == ("running", 1)


def test_concurrent_single_posts_are_answered_each_on_its_own(stack: Stack) -> None:
    """Singles that arrive together are written together: each still gets its own answer,
    an error of one fails none of the others, and every accepted one runs."""
    key = f"together-{time.time_ns()}"
    stack.submit("echo", "echo", {"n": -1}, idempotency_key=key)
    bodies: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"plugin": "echo", "command": "echo", "params": {"n": i}}, {}) for i in range(40)
    ]
    bodies[7] = ({"plugin": "echo", "command": "echo", "params": {"n": "other"}}, {"Idempotency-Key": key})
    bodies[13] = ({"plugin": "simulate", "command": "run", "params": {"sleep_s": "soon"}}, {})

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url, headers=stack.client.headers) as client:
            return await asyncio.gather(
                *(client.post("/v1/executions", json=body, headers=headers) for body, headers in bodies)
            )

    answers = asyncio.run(post_all())

    assert answers[7].status_code == 409
    assert key in answers[7].json()["detail"]
    assert answers[13].status_code == 422
    assert answers[13].json()["errors"][0]["loc"][-1] == "sleep_s"
    accepted = [a.json() for i, a in enumerate(answers) if i not in (7, 13)]
    assert [a.status_code for i, a in enumerate(answers) if i not in (7, 13)] == [202] * 38
    assert [e["params"]["n"] for e in accepted] == [i for i in range(40) if i not in (7, 13)]
    assert len({e["id"] for e in accepted}) == 38
    assert {stack.wait(e["id"])["status"] for e in accepted} == {"succeeded"}
