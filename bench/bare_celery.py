"""The bare-Celery baseline: a no-op task, no result backend, prefork.

``celery -A bench.bare_celery worker -c 2 -Q <queue>`` runs it; each task INCRs the Redis
counter named in its argument, so that the benchmark can tell when all are done without a
result backend. Queue and counter are named per run (see bench/throughput.py).
"""

import os

import redis
from celery import Celery

BROKER_URL = os.environ.get("AGENTQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("bench_bare", broker=BROKER_URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    worker_hijack_root_logger=False,
)
_redis: redis.Redis | None = None


@app.task(name="bench.noop", ignore_result=True)  # type: ignore[untyped-decorator]
def noop(counter: str) -> None:
    global _redis
    if _redis is None:  # one connection per prefork child, made after the fork
        _redis = redis.Redis.from_url(BROKER_URL)
    _redis.incr(counter)
