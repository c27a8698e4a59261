"""Operations pieces that need no services: gunicorn settings, log lines, metrics, readiness."""

import io
import json
import logging
import os
import re
import runpy
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from agentq.core import broker, logs, metrics_layout
from agentq.core.settings import Settings
from api import metrics as api_metrics
from api.routes.health import Readiness
from workers import metrics as worker_metrics

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


# -- gunicorn.conf.py ----------------------------------------------------------------


def _gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in [n for n in os.environ if n.startswith("AGENTQ_API_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_conf_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = _gunicorn_conf(
        monkeypatch,
        AGENTQ_API_PORT="9123",
        AGENTQ_API_WORKERS="5",
        AGENTQ_API_MAX_REQUESTS="100",
        AGENTQ_API_MAX_REQUESTS_JITTER="10",
        AGENTQ_API_GRACEFUL_TIMEOUT_S="12",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    assert conf["bind"] == "0.0.0.0:9123"
    assert conf["workers"] == 5
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (100, 10)
    assert conf["graceful_timeout"] == 12
    assert conf["metrics_dir"] == tmp_path


def test_gunicorn_conf_defaults_and_worker_class(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = _gunicorn_conf(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["workers"] == 2
    assert conf["max_requests"] > conf["max_requests_jitter"] > 0
    # Longer than the longest long-poll, so a recycled process lets them finish.
    assert conf["graceful_timeout"] > Settings().max_wait_s
    module, _, name = conf["worker_class"].rpartition(".")
    assert getattr(__import__(module), name).__name__ == "UvicornWorker"
    assert conf["logconfig_dict"]["formatters"]["agentq"]["()"] is logs.formatter


def test_gunicorn_conf_manages_the_prometheus_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a directory with files of an earlier run
    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"x")
    conf = _gunicorn_conf(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    # When gunicorn starts, they are gone
    conf["on_starting"](None)
    assert not stale.exists()
    # And without a directory given, one is made for the run and removed at exit
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    conf = _gunicorn_conf(monkeypatch)
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.is_dir()
    conf["on_exit"](None)
    assert not made.exists()


# -- log lines -----------------------------------------------------------------------


def _log_line(fmt: str, secrets: list[str], message: str, **extra: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter(fmt, secrets))
    logger = logging.getLogger(f"agentq.test.{fmt}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.info(message, extra=extra)
    return stream.getvalue()


def test_json_lines_carry_the_execution_fields() -> None:
    line = _log_line(
        "json", [], "done", execution_id="01J0", plugin="echo", status="succeeded", duration_ms=12
    )
    record = json.loads(line)
    assert record["message"] == "done"
    assert record["level"] == "INFO"
    assert record["logger"] == "agentq.test.json"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", record["time"])
    assert {k: record[k] for k in logs.FIELDS} == {
        "execution_id": "01J0",
        "plugin": "echo",
        "status": "succeeded",
        "duration_ms": 12,
    }
    assert line.count("\n") == 1


def test_text_lines_end_with_the_execution_fields() -> None:
    line = _log_line("text", [], "done", execution_id="01J0", plugin="echo", status="failed", duration_ms=3)
    assert line.rstrip().endswith(
        "agentq.test.text: done [execution_id=01J0 plugin=echo status=failed duration_ms=3]"
    )


def test_log_lines_mask_secrets() -> None:
    for fmt in ("json", "text"):
        line = _log_line(fmt, ["hunter2-secret"], "connecting with %s", url="x")
        assert "hunter2" not in line
        line = _log_line(fmt, ["hunter2-secret"], "key hunter2-secret in a message")
        assert "hunter2-secret" not in line
        assert logs.MASK in line


def test_secrets_come_from_settings_and_flower_auth() -> None:
    config = Settings(
        admin_api_key="admin-key-123",
        database_url="mysql+pymysql://agentq:db-pass-123@mysql/agentq",
        broker_url="redis://:redis-pass-123@redis:6379/0",
    )
    found = logs.secrets_of(config, {"FLOWER_BASIC_AUTH": "ops:flower-pass-1,ro:flower-pass-2"})
    assert {"admin-key-123", "db-pass-123", "redis-pass-123", "flower-pass-1", "flower-pass-2"} <= set(found)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_format_is_json_unless_a_terminal() -> None:
    assert logs.log_format("", io.StringIO()) == "json"
    assert logs.log_format("", _Tty()) == "text"
    assert logs.log_format("json", _Tty()) == "json"
    assert logs.log_format("TEXT", io.StringIO()) == "text"


def test_dict_config_applies() -> None:
    config = logs.dict_config("json", logging.DEBUG)
    assert config["root"]["level"] == "DEBUG"
    formatter = logs.formatter(**{k: v for k, v in config["formatters"]["agentq"].items() if k != "()"})
    assert isinstance(formatter, logs.JsonFormatter)


# -- metrics: workers write Redis, the API reads it ------------------------------------


class FakeRedis:
    """The few Redis commands the metrics use, in memory."""

    def __init__(self) -> None:
        self.sets: dict[str, set[bytes]] = defaultdict(set)
        self.hashes: dict[str, dict[bytes, bytes]] = defaultdict(dict)
        self.lists: dict[str, int] = defaultdict(int)
        self._queued: list[Any] = []

    def pipeline(self, transaction: bool = True) -> "FakeRedis":  # noqa: ARG002 (redis-py's signature)
        return self

    def execute(self) -> list[Any]:
        done, self._queued = self._queued, []
        return done

    def sadd(self, key: str, *members: str) -> None:
        self.sets[key].update(m.encode() for m in members)
        self._queued.append(1)

    def smembers(self, key: str) -> set[bytes]:
        return set(self.sets[key])

    def hincrby(self, key: str, field: str, n: int) -> None:
        h = self.hashes[key]
        h[field.encode()] = str(int(h.get(field.encode(), b"0")) + n).encode()
        self._queued.append(1)

    def hincrbyfloat(self, key: str, field: str, n: float) -> None:
        h = self.hashes[key]
        h[field.encode()] = repr(float(h.get(field.encode(), b"0")) + n).encode()
        self._queued.append(1)

    def hgetall(self, key: str) -> None:
        self._queued.append(dict(self.hashes[key]))

    def llen(self, key: str) -> None:
        self._queued.append(self.lists[key])


def test_worker_counters_reach_the_api_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given three attempts recorded by workers
    fake = FakeRedis()
    worker_metrics.record(
        [
            worker_metrics.Finished(f"E{i}", "echo", status, duration_s)
            for i, (duration_s, status) in enumerate(
                ((0.003, "succeeded"), (0.2, "succeeded"), (7200, "timed_out"))
            )
        ],
        client=fake,  # type: ignore[arg-type]
    )
    monkeypatch.setattr(api_metrics, "redis_client", lambda _url: fake)

    # When the API collects
    families = {m.name: m for m in api_metrics.StateCollector()._workers()}

    # Then the histogram is cumulative, ends with +Inf = count, and sums the durations
    histogram = families["agentq_execution_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert buckets["0.01"] == 1
    assert buckets["0.25"] == 2
    assert buckets["3600.0"] == 2
    assert buckets["+Inf"] == 3
    total = next(s.value for s in histogram.samples if s.name.endswith("_sum"))
    assert total == pytest.approx(7200.203)
    finished = {
        (s.labels["plugin"], s.labels["status"]): s.value
        for s in families["agentq_executions_finished"].samples
    }
    assert finished == {("echo", "succeeded"): 2, ("echo", "timed_out"): 1}


def test_bucket_of_picks_the_smallest_bucket() -> None:
    assert metrics_layout.bucket_of(0) == "0.01"
    assert metrics_layout.bucket_of(0.01) == "0.01"
    assert metrics_layout.bucket_of(0.011) == "0.05"
    assert metrics_layout.bucket_of(3601) == "+Inf"


def test_a_finished_field_names_its_plugin_and_status() -> None:
    field = metrics_layout.finished_field("team/echo", "timed_out")
    assert metrics_layout.plugin_and_status(field) == ("team/echo", "timed_out")


def test_queue_keys_follow_kombu_priority_lists_of_every_shard() -> None:
    keys = broker.queue_keys("agentq", 10)
    assert keys[:10] == ["agentq"] + [f"agentq:{p}" for p in range(1, 10)]
    assert keys[10:20] == ["agentq.s1"] + [f"agentq.s1:{p}" for p in range(1, 10)]
    assert len(keys) == 10 * broker.SHARDS


def test_a_keys_executions_go_to_one_shard_of_their_queue() -> None:
    assert broker.shard("agentq", "key-a") == broker.shard("agentq", "key-a")
    assert broker.shard("agentq", "key-a") in broker.shards("agentq")
    assert {broker.shard("agentq", f"key-{i}") for i in range(200)} == set(broker.shards("agentq"))


def test_memory_limit() -> None:
    assert worker_metrics.over_memory_limit(0) is None
    assert worker_metrics.over_memory_limit(1_000_000) is None
    rss = worker_metrics.over_memory_limit(1)
    assert rss is not None
    assert rss > 1024 * 1024


# -- readiness -------------------------------------------------------------------------


def test_readiness_caches_and_names_what_failed() -> None:
    calls: list[str] = []

    def ok(name: str) -> Any:
        return lambda: calls.append(name)

    def broken() -> None:
        calls.append("broker")
        raise ConnectionError("redis://:secret@host is down")

    def beat() -> dict[str, Any]:
        calls.append("beat")
        return {"status": "ok", "holder": "host:7"}

    ready = Readiness(
        {"database": ok("database"), "broker": broken, "workers": ok("workers")}, ttl_s=60, beat=beat
    )
    answer, beat_report = ready.get()
    assert answer == {
        "database": "ok",
        "broker": "unavailable: ConnectionError",
        "workers": "unknown: the broker is unavailable",
    }
    assert beat_report == {"status": "ok", "holder": "host:7"}
    assert ready.get()[0] is answer
    assert calls == ["database", "broker", "beat"]


def test_readiness_reports_missing_workers() -> None:
    def no_worker() -> None:
        raise LookupError("no worker answered a ping within 1 s")

    ready = Readiness({"database": lambda: None, "workers": no_worker}, ttl_s=0, beat=dict)
    assert ready.get()[0]["workers"] == "unavailable: no worker answered a ping within 1 s"


# -- .env.example ------------------------------------------------------------------------


def _documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_documents_every_setting() -> None:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= (
            {str(a) for a in alias.choices} if isinstance(alias, AliasChoices) else {f"AGENTQ_{name.upper()}"}
        )
    documented = _documented()
    assert not names - documented, f"missing from .env.example: {sorted(names - documented)}"
    stale = {n for n in documented if n.startswith("AGENTQ_")} - names
    assert not stale, f".env.example documents unknown settings: {sorted(stale)}"


def test_env_example_documents_every_compose_variable() -> None:
    lines = (ROOT / "docker-compose.yaml").read_text().splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", code))
    missing = used - _documented()
    assert not missing, f"missing from .env.example: {sorted(missing)}"
