"""What beat measures, served by each beat process for Prometheus to scrape.

Beat is one process (two with a standby), so each serves its own metrics over HTTP
(``prometheus_client.start_http_server`` on ``AGENTQ_BEAT_METRICS_PORT``), the process's
CPU and memory included; the API's ``/metrics`` has none of these.
"""

import logging
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("agentq.beat")

# From on time to a beat that was down for an hour.
LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)

FIRE_LAG = Histogram(
    "agentq_beat_fire_lag_seconds",
    "How late each scheduled execution was created: its created_at after its slot's fire time "
    "(the slot plus its jitter).",
    buckets=LAG_BUCKETS_S,
)
FIRES = Counter("agentq_beat_fires", "Scheduled executions this beat created.")
TICK_FIRES = Histogram(
    "agentq_beat_tick_fires",
    "Scheduled executions created per tick of the active beat.",
    buckets=(0, 1, 10, 100, 1000, 10_000, 100_000),
)
SKIPPED = Counter(
    "agentq_beat_skipped_slots",
    "Due slots this beat did not fire: missed-run policy, a live run (overlap skip), fired before.",
)
DUE = Gauge(
    "agentq_beat_due_schedules",
    "Enabled schedules whose fire time has passed and that are not fired yet, as this beat last saw.",
)
LEADER = Gauge(
    "agentq_beat_leader", "1 while this beat holds the beat lock (it is the active one), else 0.", ["beat"]
)


def serve(port: int, host: str) -> bool:
    """Serve the metrics on ``host:port`` from a thread; False (logged) when it cannot."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("cannot serve beat metrics on %s:%d (%s); going on without", host, port, exc)
        return False
    log.info("beat metrics on http://%s:%d/metrics", host, port)
    return True


def record_leader(name: str, held: bool) -> None:
    LEADER.labels(beat=name).set(1 if held else 0)


def record_fires(executions: int, skipped: int, lags_s: Sequence[float]) -> None:
    """One tick of the active beat."""
    FIRES.inc(executions)
    SKIPPED.inc(skipped)
    TICK_FIRES.observe(executions)
    for lag in lags_s:
        FIRE_LAG.observe(max(0.0, lag))


def record_due(count: int) -> None:
    DUE.set(count)
