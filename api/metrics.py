"""Prometheus metrics served on ``/metrics`` by every API process.

Three sources, each correct however many API and worker processes there are:

- counted here, per API process: submissions by plugin and outcome. Under gunicorn the
  processes share them through ``prometheus_client``'s multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR``, set up by ``gunicorn.conf.py``), so any process
  answers with the sum.
- read at scrape time: executions by status (the database), messages waiting per queue
  (Redis lengths of each queue's priority lists).
- recorded by the workers into Redis (``agentq/core/metrics_layout.py``): finished attempts by plugin and status, their duration histogram, and the
  seconds each plugin held a worker's event loop.
"""

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import cast

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from agentq.core import broker, store
from agentq.core.metrics_layout import (
    BUCKETS_S,
    COUNT_FIELD,
    FINISHED_KEY,
    LOOP_BLOCKED_KEY,
    OVERFLOW_FIELD,
    PLUGINS_KEY,
    SUM_FIELD,
    WEBHOOK_LATENCY_KEY,
    WEBHOOK_OUTCOMES_KEY,
    duration_key,
    plugin_and_status,
)
from agentq.core.models import ExecutionStatus
from agentq.core.queue import PRIORITY_LEVELS
from agentq.core.settings import settings
from api.catalog import catalog

log = logging.getLogger("agentq.api.metrics")

SUBMISSIONS = Counter(
    "agentq_submissions",
    "Executions submitted through the API, by plugin and outcome: accepted (queued), replayed "
    "(an Idempotency-Key seen before), deferred (accepted while the broker was down), rejected.",
    ["plugin", "outcome"],
)
UNKNOWN_PLUGIN = "unknown"  # rejected submissions naming no offered plugin (bounded labels)

submissions_log = logging.getLogger("agentq.api.executions")


def count_submissions(
    submitted: Iterable[store.Submitted], deferred: set[str] | frozenset[str] = frozenset()
) -> None:
    """Count and log accepted submissions; ``deferred`` holds the ids left for the reaper."""
    for item in submitted:
        execution = item.execution
        outcome = "replayed" if not item.created else "deferred" if execution.id in deferred else "accepted"
        SUBMISSIONS.labels(execution.plugin, outcome).inc()
        submissions_log.info(
            "%s %s %s",
            execution.id,
            execution.plugin,
            outcome,
            extra={"execution_id": execution.id, "plugin": execution.plugin, "status": str(execution.status)},
        )


def count_rejected(plugins: Sequence[str]) -> None:
    """Count submissions refused as invalid; a plugin no worker offers is labelled ``unknown``."""
    try:
        offered = {plugin for plugin, _ in catalog.entries()}
    except Exception:  # never hide the rejection behind a metrics failure
        offered = set()
    for plugin in plugins:
        SUBMISSIONS.labels(plugin if plugin in offered else UNKNOWN_PLUGIN, "rejected").inc()


@cache
def redis_client(url: str) -> redis.Redis:
    """A client of the API's reads of Redis (metrics, readiness), one per URL."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


class StateCollector(Collector):
    """Reads the database and Redis at scrape time; a source that fails is left out."""

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for source in (self._executions, self._queues, self._workers, self._webhooks):
            try:
                yield from source()
            except Exception as exc:
                reason = (str(exc).splitlines() or [""])[0]
                log.warning(
                    "metrics from %s unavailable: %s: %s",
                    source.__name__.strip("_"),
                    type(exc).__name__,
                    reason,
                )

    def _executions(self) -> Iterator[Metric]:
        counts = store.count_executions_by_status()
        family = GaugeMetricFamily(
            "agentq_executions", "Executions in the database, by status.", labels=["status"]
        )
        for status in ExecutionStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        yield family

    def _queues(self) -> Iterator[Metric]:
        if not settings.broker_url.startswith(("redis://", "rediss://")):
            return
        try:
            offered = {entry.queue for entry in catalog.entries().values()}
        except Exception:  # the database is down: still show the default queue
            offered = set()
        queues = sorted({settings.default_queue} | offered)
        pipe = redis_client(settings.broker_url).pipeline(transaction=False)
        for queue in queues:
            for key in broker.queue_keys(queue, PRIORITY_LEVELS):
                pipe.llen(key)
        lengths = pipe.execute()
        family = GaugeMetricFamily(
            "agentq_queue_depth",
            "Messages waiting in each broker queue, all shards and priorities.",
            labels=["queue"],
        )
        per_queue = len(broker.queue_keys(settings.default_queue, PRIORITY_LEVELS))  # shards × priorities
        for i, queue in enumerate(queues):
            family.add_metric([queue], sum(lengths[i * per_queue : (i + 1) * per_queue]))
        yield family

    def _workers(self) -> Iterator[Metric]:
        if not settings.redis_url:
            return
        client = redis_client(settings.redis_url)
        plugins = sorted(p.decode() for p in cast(set[bytes], client.smembers(PLUGINS_KEY)))
        pipe = client.pipeline(transaction=False)
        for plugin in plugins:
            pipe.hgetall(duration_key(plugin))
        pipe.hgetall(FINISHED_KEY)
        pipe.hgetall(LOOP_BLOCKED_KEY)
        *durations, finished, blocked = pipe.execute()

        histogram = HistogramMetricFamily(
            "agentq_execution_duration_seconds",
            "How long attempts ran on the workers, by plugin.",
            labels=["plugin"],
        )
        for plugin, fields in zip(plugins, durations, strict=True):
            buckets, _count, total = histogram_buckets({k.decode(): v.decode() for k, v in fields.items()})
            histogram.add_metric([plugin], buckets, total)
        yield histogram

        counter = CounterMetricFamily(
            "agentq_executions_finished",
            "Attempts the workers finished, by plugin and status.",
            labels=["plugin", "status"],
        )
        for field, value in sorted(finished.items()):
            plugin, status = plugin_and_status(field.decode())
            counter.add_metric([plugin, status], int(value))
        yield counter

        stalls = CounterMetricFamily(
            "agentq_worker_loop_blocked_seconds",
            "Seconds a plugin held a worker's event loop in one go past AGENTQ_LOOP_BLOCKED_S, "
            "holding up every other run of that worker; (none): no run was on the loop.",
            labels=["plugin"],
        )
        for field, value in sorted(blocked.items()):
            stalls.add_metric([field.decode()], float(value))
        yield stalls

    def _webhooks(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "agentq_webhook_deliveries_pending", "Webhook deliveries waiting to be sent or retried."
        )
        pending.add_metric([], store.deliveries.count_pending())
        yield pending
        if not settings.redis_url:
            return
        pipe = redis_client(settings.redis_url).pipeline(transaction=False)
        pipe.hgetall(WEBHOOK_OUTCOMES_KEY)
        pipe.hgetall(WEBHOOK_LATENCY_KEY)
        outcomes, latency = pipe.execute()
        counter = CounterMetricFamily(
            "agentq_webhook_deliveries",
            "Webhook attempts by outcome: delivered (2xx), retrying, failed (for good).",
            labels=["outcome"],
        )
        for outcome in ("delivered", "retrying", "failed"):
            counter.add_metric([outcome], int(outcomes.get(outcome.encode(), 0)))
        yield counter
        histogram = HistogramMetricFamily(
            "agentq_webhook_latency_seconds", "From an execution's status change to its webhook's 2xx."
        )
        buckets, _count, total = histogram_buckets({k.decode(): v.decode() for k, v in latency.items()})
        histogram.add_metric([], buckets, total)
        yield histogram


def histogram_buckets(fields: dict[str, str]) -> tuple[list[tuple[str, float]], int, float]:
    """Cumulative Prometheus buckets from the per-bucket counts the workers keep."""
    count = int(fields.get(COUNT_FIELD, 0))
    total = float(fields.get(SUM_FIELD, 0))
    per_bucket = dict.fromkeys(map(float, BUCKETS_S), 0)
    for field, n in fields.items():
        if field not in (COUNT_FIELD, SUM_FIELD, OVERFLOW_FIELD):
            per_bucket[float(field)] = per_bucket.get(float(field), 0) + int(n)
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, in_bucket in sorted(per_bucket.items()):
        running += in_bucket
        buckets.append((floatToGoString(bound), float(running)))  # type: ignore[no-untyped-call]
    buckets.append(("+Inf", float(count)))
    return buckets, count, total


_state = StateCollector()


def render() -> tuple[bytes, str]:
    """The exposition text for one scrape, and its content type."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(SUBMISSIONS)
    registry.register(_state)
    return generate_latest(registry), CONTENT_TYPE_LATEST
