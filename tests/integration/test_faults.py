"""Nothing is lost: kill and restart workers, Redis and MariaDB, and check every execution."""

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentq.core import queue, store
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.integration.conftest import Stack, launch
from tests.integration.processes import Proc, wait_until
from tests.integration.services import PrivateMariaDB, PrivateRedis

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")


def insert(plugin: str, command: str, params: dict, queue_name: str, max_retries: int = 3) -> str:  # type: ignore[type-arg]
    """An execution on a queue of the test's own, published straight to the broker."""
    (submitted,) = store.create_executions(
        [store.NewExecution(plugin, command, params, queue_name, 5, 60, max_retries)]
    )
    queue.enqueue([submitted.execution])
    return submitted.execution.id


def private_queue(name: str) -> str:
    return f"agentq.{name}.{time.time_ns()}"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path)
    yield server
    server.stop()


@pytest.mark.usefixtures("stack")
def test_live_run_outlasting_visibility_timeout_runs_once(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # Redis redelivers an unacked message after the visibility timeout (swept every second
    # here); a second worker gets the duplicate while the first still runs, and skips it.
    runs = tmp_path / "runs.txt"
    with launch(
        DATABASE_URL,
        private_redis.url,
        tmp_path,
        AGENTQ_BROKER_VISIBILITY_TIMEOUT_S="1",
        AGENTQ_BROKER_RESTORE_SWEEP_S="1",
    ) as private:
        other = private.start_worker("w2")
        created = private.submit("counter", "hit", {"path": str(runs), "sleep_s": 15})

        done = private.wait(created["id"], timeout_s=60)

        assert done["status"] == "succeeded"
        assert done["attempts"] == 1
        assert runs.read_text().splitlines() == [f"{created['id']} 1"]
        assert f"skip {created['id']}" in private.worker.log() + other.log()  # it was redelivered


@pytest.mark.usefixtures("beat")
def test_killed_worker_run_is_reclaimed_within_two_leases(stack: Stack, tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    name = private_queue("reclaim")
    doomed = stack.start_worker(f"doomed-{time.time_ns()}", queues=name, AGENTQ_LEASE_S="2")
    wait_until(lambda: "ready." in doomed.log(), 60, "the worker")
    execution_id = insert("counter", "hit", {"path": str(runs), "sleep_s": 2}, name)
    wait_until(lambda: runs.exists(), 30, "the first run")

    doomed.kill()
    killed_at = time.monotonic()
    stack.start_worker(f"heir-{time.time_ns()}", queues=name, AGENTQ_LEASE_S="2")
    wait_until(lambda: len(runs.read_text().splitlines()) == 2, 60, "the second run")
    restarted_after_s = time.monotonic() - killed_at
    done = stack.wait(execution_id)

    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert restarted_after_s < 20  # lease 2 s + reaper tick 1 s + a new worker's start-up


@pytest.mark.usefixtures("stack")
def test_redis_restart_loses_nothing(private_redis: PrivateRedis, tmp_path: Path) -> None:
    with launch(DATABASE_URL, private_redis.url, tmp_path, AGENTQ_WORKER_CONCURRENCY="2") as private:
        private.start_beat("beat")
        ids = [private.submit("simulate", "run", {"sleep_s": 2, "mode": "async"})["id"] for _ in range(6)]
        wait_until(lambda: any(private.get(i)["status"] == "running" for i in ids), 30, "a running execution")

        private_redis.restart()  # two running, four queued: AOF keeps the queue
        statuses = [private.wait(i, timeout_s=90)["status"] for i in ids]
        after = private.wait(private.submit("echo", "echo", {"after": "restart"})["id"], timeout_s=60)

    assert statuses == ["succeeded"] * 6
    assert after["status"] == "succeeded"  # the worker kept consuming after reconnecting


@pytest.mark.usefixtures("stack")
def test_submit_and_run_now_while_broker_is_down_are_accepted_and_run_once_it_is_back(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    with launch(DATABASE_URL, private_redis.url, tmp_path) as private:
        private.start_beat("beat")
        # The API has published over its broker connection before the broker goes away.
        before = private.wait(private.submit("echo", "echo", {"n": 0})["id"])
        schedule = private.client.post(
            "/v1/schedules",
            json={"name": f"yearly-{time.time_ns()}", "plugin": "echo", "command": "echo",
                  "params": {"n": 2}, "cron": "0 0 1 1 *"},
        ).json()  # fmt: skip
        private_redis.stop()

        response = private.client.post(
            "/v1/executions", json={"plugin": "echo", "command": "echo", "params": {"n": 1}}
        )
        ran_now = private.client.post(f"/v1/schedules/{schedule['id']}/run")
        queued = private.get(response.json()["id"])
        wait_until(lambda: "left 1 executions for the reaper" in private.api.log(), 10, "the deferral")
        private_redis.start()
        restarted = time.monotonic()
        done = private.wait(queued["id"], timeout_s=90)
        fired = private.wait(ran_now.json()["id"], timeout_s=90)
        published_after_s = time.monotonic() - restarted

    assert before["status"] == "succeeded"
    assert response.status_code == 202
    assert queued["status"] == "queued"
    assert done["status"] == "succeeded"
    assert done["result"] == {"n": 1}
    # Accepted like a submission: a client retrying a 503 would have fired it twice.
    assert ran_now.status_code == 202, ran_now.text
    assert fired["status"] == "succeeded"
    assert fired["result"] == {"n": 2}
    assert fired["attempts"] == 1
    # Published at the reaper's next pass, not after the queued lease (300 s).
    assert published_after_s < 60


def test_mysql_restart_loses_no_result(stack: Stack, private_mariadb: PrivateMariaDB, tmp_path: Path) -> None:
    import subprocess

    env = {**stack.env, "AGENTQ_DATABASE_URL": private_mariadb.url}
    subprocess.run([sys.executable, "-m", "agentq.cli", "migrate"], env=env, check=True, timeout=120)
    # A Redis db of its own: the session's worker must not take this stack's messages.
    base, db = REDIS_URL.rsplit("/", 1)
    redis_url = f"{base}/{(int(db or 0) + 1) % 16}"
    with launch(private_mariadb.url, redis_url, tmp_path) as private:
        ids = [private.submit("simulate", "run", {"sleep_s": 4, "mode": "async"})["id"] for _ in range(3)]
        wait_until(lambda: all(private.get(i)["status"] == "running" for i in ids), 30, "running")

        private_mariadb.stop()
        during = private.client.get(f"/v1/executions/{ids[0]}")
        time.sleep(5)  # the runs end while the database is down
        private_mariadb.start()
        done = [private.wait(i, timeout_s=120) for i in ids]

    assert during.status_code == 503
    assert during.headers["content-type"] == "application/problem+json"
    assert [d["status"] for d in done] == ["succeeded"] * 3
    assert [d["attempts"] for d in done] == [1, 1, 1]


@pytest.mark.usefixtures("beat")
def test_warm_shutdown_finishes_short_runs_and_hands_back_long_ones(stack: Stack) -> None:
    name = private_queue("drain")
    worker = stack.start_worker(f"draining-{time.time_ns()}", queues=name, AGENTQ_SHUTDOWN_GRACE_S="2")
    wait_until(lambda: "ready." in worker.log(), 60, "the worker")
    short = insert("simulate", "run", {"sleep_s": 1, "mode": "async"}, name)
    long = insert("simulate", "run", {"sleep_s": 6, "mode": "async"}, name)
    wait_until(lambda: stack.get(long)["status"] == "running", 30, "running")

    worker.signal(signal.SIGTERM)
    worker.popen.wait(30)
    handed_back = stack.get(long)
    stack.start_worker(f"successor-{time.time_ns()}", queues=name)
    done = stack.wait(long, timeout_s=60)

    assert worker.popen.returncode == 0
    assert stack.get(short)["status"] == "succeeded"
    assert handed_back["status"] == "retrying"
    assert handed_back["error"]["type"] == "handed_back"
    assert (done["status"], done["attempts"]) == ("succeeded", 2)


@pytest.mark.usefixtures("beat")
def test_poison_run_fails_after_bounded_worker_losses(stack: Stack) -> None:
    name = private_queue("poison")
    execution_id = insert("simulate", "run", {"crash": True}, name, max_retries=1)
    deaths = 0
    while stack.get(execution_id)["status"] not in TERMINAL and deaths < 5:
        worker = stack.start_worker(f"victim-{time.time_ns()}", queues=name, AGENTQ_LEASE_S="2")

        def crashed_or_ended(w: Proc = worker) -> bool:
            return not w.alive or stack.get(execution_id)["status"] in TERMINAL

        wait_until(crashed_or_ended, 60, "a crash")
        deaths += not worker.alive
        if worker.alive:
            worker.stop()

    done = stack.get(execution_id)
    assert done["status"] == "failed"
    assert done["error"]["type"] == "WorkerLost"
    assert done["attempts"] == 2
    assert deaths == 2
