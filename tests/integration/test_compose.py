"""docker-compose.yaml without Docker: its services' commands, run as local processes.

The compose file promises that each app service's `command:` runs as-is on a host where
agentq is installed, configured by AGENTQ_*/FLOWER_* variables. So this reads the file,
substitutes `${VAR:-default}` from an environment pointing at the test MariaDB and Redis
(a database and Redis db of its own), and runs migrate, api (gunicorn, two workers),
worker, beat and Flower exactly as written.
"""

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.conftest import DATABASE_URL, REDIS_URL
from tests.integration.conftest import bearer, reset_services
from tests.integration.processes import ROOT, Proc, child_env, free_port, wait_until

COMPOSE = ROOT / "docker-compose.yaml"
APP_SERVICES = ("migrate", "api", "worker", "beat", "flower")
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        current = env.get(name)
        if operator == ":-":
            return current or argument
        if operator == "-":
            return argument if current is None else current
        if operator in (":?", "?") and not (current if operator == ":?" else current is not None):
            raise KeyError(f"{name}: {argument}")
        return current or ""

    return _VARIABLE.sub(value, text)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def command(service: str, env: dict[str, str]) -> list[str]:
    """The service's `command:` as the argv a host runs, variables substituted."""
    raw = compose()["services"][service]["command"]
    if isinstance(raw, str):
        return shlex.split(interpolate(raw, env))
    return [interpolate(str(part), env) for part in raw]


# -- the file itself ---------------------------------------------------------------------


def test_compose_file_has_the_services_healthchecks_and_healthy_dependencies() -> None:
    services = compose()["services"]
    assert {"mysql", "redis", *APP_SERVICES} <= set(services)
    for name in ("mysql", "redis", "api", "worker", "flower"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services.items():
        assert service.get("command"), f"{name} has no explicit command"
        assert service.get("restart") == ("no" if name == "migrate" else "unless-stopped"), name
        if name != "migrate":
            assert service.get("deploy", {}).get("resources", {}).get("limits"), f"{name} has no limits"
    assert services["migrate"]["depends_on"]["mysql"]["condition"] == "service_healthy"
    for name in ("api", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["mysql"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["flower"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # Scalable: nothing pins a worker to one container.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    assert services["worker"]["stop_grace_period"]
    assert services["api"]["build"]["dockerfile"] == "Dockerfile.api"
    assert services["worker"]["build"]["dockerfile"] == "Dockerfile.worker"
    assert "--max-allowed-packet=64M" in services["mysql"]["command"]
    assert "--appendonly yes" in services["redis"]["command"]
    assert "--persistent=True" in services["flower"]["command"]
    for volume in ("mysql-data", "redis-data", "flower-data"):
        assert volume in compose()["volumes"]


def test_interpolate_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert (
        interpolate("${SET:-d} ${EMPTY:-d} ${MISSING:-d} ${EMPTY-d} $$HOME ${SET}", env) == "x d d  $HOME x"
    )
    with pytest.raises(KeyError):
        interpolate("${MISSING:?set it}", env)


# -- the commands, running ---------------------------------------------------------------


@dataclass
class Deployment:
    api_url: str
    flower_url: str
    flower_auth: tuple[str, str]
    admin_key: str
    env: dict[str, str]
    procs: dict[str, Proc]
    metrics_dir: Path
    work: Path

    def client(self) -> httpx.Client:
        # A new connection per client: successive requests may reach different gunicorn workers.
        return httpx.Client(
            base_url=self.api_url, headers=bearer(self.admin_key), timeout=30, trust_env=False
        )

    def submit(self, body: dict[str, Any]) -> httpx.Response:
        with self.client() as client:
            return client.post("/v1/executions", json=body)

    def wait_terminal(self, execution_id: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while True:
                row: dict[str, Any] = client.get(f"/v1/executions/{execution_id}", params={"wait": 5}).json()
                if row["status"] in TERMINAL or time.monotonic() > deadline:
                    return row

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = httpx.get(f"{self.api_url}/metrics", timeout=10, trust_env=False)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def flower(self, path: str, auth: bool = True) -> httpx.Response:
        return httpx.get(
            self.flower_url + path, auth=self.flower_auth if auth else None, timeout=10, trust_env=False
        )


def _compose_services() -> tuple[str, str]:
    """A database and a Redis db of this module's own, next to the other tests' ones."""
    url = make_url(DATABASE_URL)
    database_url = url.set(database=f"{url.database}_compose").render_as_string(hide_password=False)
    base, _, db = REDIS_URL.rpartition("/")
    compose_db = int(db) + 2 if int(db) + 2 < 16 else int(db) - 2
    return database_url, f"{base}/{compose_db}"


def _reset(database_url: str, redis_url: str) -> None:
    reset_services(database_url, redis_url)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    database_url, redis_url = _compose_services()
    _reset(database_url, redis_url)
    work = tmp_path_factory.mktemp("compose")
    metrics_dir = work / "prometheus"
    metrics_dir.mkdir()
    flower_auth = ("ops", secrets.token_urlsafe(12))
    admin_key = f"aq_{secrets.token_urlsafe(16)}"
    api_port, flower_port = free_port(), free_port()
    env = child_env(
        {
            # What docker-compose.yaml's `environment:` and .env give the containers.
            "AGENTQ_DATABASE_URL": database_url,
            "AGENTQ_BROKER_URL": redis_url,
            "AGENTQ_REDIS_URL": redis_url,
            "AGENTQ_ADMIN_API_KEY": admin_key,
            "AGENTQ_API_PORT": str(api_port),
            "AGENTQ_API_WORKERS": "2",
            "AGENTQ_LOG_FORMAT": "json",
            "FLOWER_PORT": str(flower_port),
            "FLOWER_BASIC_AUTH": ":".join(flower_auth),
            "FLOWER_DB": str(work / "flower.db"),
            # Quicker than production, for the test's sake.
            "AGENTQ_WORKER_CONCURRENCY": "8",
            "AGENTQ_SHUTDOWN_GRACE_S": "2",
            "AGENTQ_READY_CACHE_S": "0.5",
            "AGENTQ_CATALOG_TTL_S": "0.5",
            "AGENTQ_OUTBOUND_ALLOW_PRIVATE": "1",
            # The commands name `celery`, `gunicorn`, `agentq`: this interpreter's scripts.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    env.pop("AGENTQ_FLOWER_PORT", None)

    migrate = subprocess.run(
        command("migrate", env), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    procs: dict[str, Proc] = {}
    built = Deployment(
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{flower_port}",
        flower_auth,
        admin_key,
        env,
        procs,
        metrics_dir,
        work,
    )
    try:
        for name in ("worker", "api", "beat", "flower"):
            # As in the compose file, only the API shares counters through a directory.
            service_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)} if name == "api" else env
            procs[name] = Proc(f"compose-{name}", command(name, service_env), service_env, work)

        for url in (f"{built.api_url}/healthz", f"{built.flower_url}/healthcheck", f"{built.api_url}/readyz"):
            _wait_answering(url, procs, 60)
        yield built
    finally:
        for proc in procs.values():
            proc.stop(timeout_s=20)
        for proc in procs.values():
            if proc.popen.returncode not in (0, -15, None):
                print(f"--- {proc.name} exited {proc.popen.returncode}:\n{proc.log()[-3000:]}")


def _wait_answering(url: str, procs: dict[str, Proc], timeout_s: float) -> None:
    """Until ``url`` answers 200; fails at once, with its log, when a process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        for proc in procs.values():
            assert proc.alive, f"{proc.name} exited {proc.popen.returncode}:\n{proc.log()[-3000:]}"
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200 within {timeout_s:g} s"
        time.sleep(0.2)


def _json_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for line in proc.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_an_execution_runs_and_flower_shows_worker_and_task(deployment: Deployment) -> None:
    # Given the deployment is ready: database, broker and a worker
    ready = httpx.get(f"{deployment.api_url}/readyz", trust_env=False).json()
    assert (ready["status"], ready["checks"]) == (
        "ready",
        {"database": "ok", "broker": "ok", "workers": "ok"},
    )
    assert "holder" in ready["beat"], ready  # reported; beat's own healthcheck is beat-health

    # When an execution is submitted through the API
    response = deployment.submit({"plugin": "echo", "command": "echo", "params": {"hello": "compose"}})
    assert response.status_code == 202, response.text
    execution_id = response.json()["id"]

    # Then a worker runs it
    row = deployment.wait_terminal(execution_id)
    assert row["status"] == "succeeded", row
    assert row["result"] == {"hello": "compose"}, row

    # And Flower, with its login, lists the worker and the task under the execution id
    def worker_listed() -> bool:
        # Flower fills in what the inspection found just after answering: ask again.
        workers = deployment.flower("/api/workers?refresh=1")
        assert workers.status_code == 200, workers.text
        return any(name.startswith("worker@") for name in workers.json())

    wait_until(worker_listed, 15, "Flower to list the worker")

    def task_succeeded() -> bool:
        info = deployment.flower(f"/api/task/info/{execution_id}")
        return info.status_code == 200 and info.json()["state"] == "SUCCESS"

    wait_until(task_succeeded, 20, "Flower to show the task")
    task = deployment.flower(f"/api/task/info/{execution_id}").json()
    assert task["uuid"] == execution_id
    assert task["name"] == "agentq.run_execution"
    assert task["worker"].startswith("worker@")
    assert execution_id in deployment.flower("/api/tasks?limit=100").json()

    # And without the login Flower answers 401, while its metrics stay open to scrapers
    for path in ("/api/workers", "/api/tasks", f"/api/task/info/{execution_id}", "/"):
        assert deployment.flower(path, auth=False).status_code == 401, path
    flower_metrics = deployment.flower("/metrics", auth=False)
    assert flower_metrics.status_code == 200
    assert "flower_events_total" in flower_metrics.text

    # And both sides logged JSON lines naming the execution
    def logged(proc: str, **fields: Any) -> bool:
        return any(
            line.get("execution_id") == execution_id and all(line.get(k) == v for k, v in fields.items())
            for line in _json_lines(deployment.procs[proc])
        )

    wait_until(lambda: logged("worker", plugin="echo", status="succeeded"), 10, "the worker's log line")
    line = next(
        x
        for x in _json_lines(deployment.procs["worker"])
        if x.get("execution_id") == execution_id and "status" in x
    )
    assert isinstance(line["duration_ms"], int)
    assert line["level"] == "INFO"
    assert line["time"]
    assert logged("api", plugin="echo", status="queued")
    for proc in deployment.procs.values():
        assert deployment.admin_key not in proc.log()
        assert deployment.flower_auth[1] not in proc.log()


def test_the_api_processes_serve_on_uvloop(deployment: Deployment) -> None:
    # Each gunicorn worker process names its event loop once it is up: uvloop's, not asyncio's.
    loops = {
        line["message"].split()[2]: line["message"].rsplit(" ", 1)[1]
        for line in _json_lines(deployment.procs["api"])
        if " serving on " in line.get("message", "")
    }
    assert len(loops) == 2, loops
    assert set(loops.values()) == {"uvloop.Loop"}, loops


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_move_with_submissions_across_gunicorn_workers(deployment: Deployment) -> None:
    # Given the counters before
    before = deployment.scrape()

    # When executions are submitted over separate connections, until both gunicorn workers
    # have counted some, and one submission is rejected
    def counting_processes() -> int:
        return len(list(deployment.metrics_dir.glob("counter_*.db")))

    ids: list[str] = []
    while len(ids) < 8 or (counting_processes() < 2 and len(ids) < 60):
        response = deployment.submit({"plugin": "echo", "command": "echo", "params": {"i": len(ids)}})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    assert counting_processes() == 2, "every submission reached the same gunicorn worker"
    n = len(ids)
    assert deployment.submit({"plugin": "nope", "command": "x"}).status_code == 422
    for execution_id in ids:
        assert deployment.wait_terminal(execution_id)["status"] == "succeeded"

    # Then whichever gunicorn worker answers the scrape counts every submission
    def accepted(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return _value(samples, "agentq_submissions_total", plugin="echo", outcome="accepted") - _value(
            before, "agentq_submissions_total", plugin="echo", outcome="accepted"
        )

    for _ in range(4):
        assert accepted(deployment.scrape()) == n
    after = deployment.scrape()
    rejected = ("agentq_submissions_total", {"plugin": "unknown", "outcome": "rejected"})
    assert _value(after, rejected[0], **rejected[1]) - _value(before, rejected[0], **rejected[1]) == 1

    # And the workers' durations and outcomes reach the API, with the database and queues
    def finished() -> bool:
        now = deployment.scrape()
        delta = _value(now, "agentq_execution_duration_seconds_count", plugin="echo") - _value(
            before, "agentq_execution_duration_seconds_count", plugin="echo"
        )
        return delta == n

    wait_until(finished, 10, "the workers' duration histogram")
    after = deployment.scrape()
    assert (
        _value(after, "agentq_executions_finished_total", plugin="echo", status="succeeded")
        - _value(before, "agentq_executions_finished_total", plugin="echo", status="succeeded")
        == n
    )
    assert _value(after, "agentq_execution_duration_seconds_bucket", plugin="echo", le="+Inf") >= n
    assert _value(after, "agentq_executions", status="succeeded") >= n
    assert ("agentq_queue_depth", frozenset({("queue", "agentq")})) in after


def test_readyz_names_the_workers_once_the_worker_stops(deployment: Deployment) -> None:
    # Given a ready deployment
    assert httpx.get(f"{deployment.api_url}/readyz", trust_env=False).status_code == 200

    # When its only worker stops
    deployment.procs["worker"].stop(timeout_s=20)

    # Then /readyz answers 503 and names the workers, not the database or the broker
    def unready() -> bool:
        return httpx.get(f"{deployment.api_url}/readyz", trust_env=False).status_code == 503

    wait_until(unready, 15, "/readyz to answer 503")
    body = httpx.get(f"{deployment.api_url}/readyz", trust_env=False).json()
    assert body["failed"] == ["workers"], body
    assert body["checks"]["database"] == body["checks"]["broker"] == "ok"
    assert body["checks"]["workers"].startswith("unavailable: no worker answered")


def test_a_worker_past_its_memory_limit_stops_warmly_after_a_task(deployment: Deployment) -> None:
    # Given the compose worker command, with a memory limit any process exceeds
    env = {**deployment.env, "AGENTQ_WORKER_MAX_MEMORY_MB": "1"}
    worker = deployment.procs["worker-small"] = Proc(
        "compose-worker-small", command("worker", env), env, deployment.work
    )
    _wait_answering(f"{deployment.api_url}/readyz", {"worker": worker}, 60)

    # When it runs an execution
    response = deployment.submit({"plugin": "echo", "command": "echo", "params": {"n": 1}})
    assert response.status_code == 202, response.text

    # Then the execution succeeds, and the worker shuts down cleanly for its supervisor to restart
    assert deployment.wait_terminal(response.json()["id"])["status"] == "succeeded"
    assert worker.popen.wait(timeout=30) == 0, worker.log()[-3000:]
    assert "exceeds AGENTQ_WORKER_MAX_MEMORY_MB=1" in worker.log()
