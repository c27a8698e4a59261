"""What the webhook sender measures: deliveries by outcome and the latency from the status
change to the receiver's 2xx, added to counters in Redis that the API serves on
``/metrics`` (``agentq/core/metrics_layout.py``)."""

import logging

import redis

from agentq.core.metrics_layout import (
    COUNT_FIELD,
    SUM_FIELD,
    WEBHOOK_LATENCY_KEY,
    WEBHOOK_OUTCOMES_KEY,
    bucket_of,
)
from agentq.core.models import utcnow
from agentq.core.store.sending import Recorded
from workers.metrics import client

log = logging.getLogger("agentq.webhooks")


def recorded(outcome: Recorded) -> None:
    """Add a batch's recorded attempts to the counters; never fails the caller."""
    redis_client = client()
    if redis_client is None:
        return
    now = utcnow()
    latencies = [(now - changed).total_seconds() for _, changed in outcome.delivered]
    try:
        pipe = redis_client.pipeline(transaction=True)
        for name, n in (
            ("delivered", len(latencies)),
            ("retrying", outcome.retrying),
            ("failed", outcome.failed),
        ):
            if n:
                pipe.hincrby(WEBHOOK_OUTCOMES_KEY, name, n)
        for latency in latencies:
            pipe.hincrby(WEBHOOK_LATENCY_KEY, bucket_of(latency), 1)
        if latencies:
            pipe.hincrby(WEBHOOK_LATENCY_KEY, COUNT_FIELD, len(latencies))
            pipe.hincrbyfloat(WEBHOOK_LATENCY_KEY, SUM_FIELD, sum(latencies))
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("webhook metrics not recorded: %s", exc)
