"""Where the workers' metrics live in Redis: written by ``workers/metrics.py``, read by
``api/metrics.py``, which serves them on ``/metrics``.

Workers are many processes on many hosts, so they do not serve metrics themselves: each
finished attempt adds to counters in Redis, which every API process reads. The layout,
under ``agentq:metrics:``:

``plugins``            set of plugin names seen
``duration:<plugin>``  hash: ``<upper bound in s>`` or ``+Inf`` -> attempts in that bucket
                       (not cumulative), plus ``count`` and ``sum`` (seconds)
``finished``           hash: ``<plugin>/<status>`` -> attempts
``loop_blocked``       hash: ``<plugin>`` -> seconds the plugin held its worker's event
                       loop in stalls past ``AGENTQ_LOOP_BLOCKED_S`` (``(none)``: no run
                       was on the loop)
"""

PREFIX = "agentq:metrics"
PLUGINS_KEY = f"{PREFIX}:plugins"
FINISHED_KEY = f"{PREFIX}:finished"
LOOP_BLOCKED_KEY = f"{PREFIX}:loop_blocked"
NO_PLUGIN = "(none)"
# From a 10 ms echo to an hour-long run (timeout_s is at most 3600). The API shows every
# bucket in every series, counted or not.
BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
COUNT_FIELD = "count"
SUM_FIELD = "sum"
OVERFLOW_FIELD = "+Inf"


def duration_key(plugin: str) -> str:
    return f"{PREFIX}:duration:{plugin}"


def bucket_of(duration_s: float) -> str:
    """The field of the smallest bucket that holds ``duration_s``."""
    for bound in BUCKETS_S:
        if duration_s <= bound:
            return f"{bound:g}"
    return OVERFLOW_FIELD


def finished_field(plugin: str, status: str) -> str:
    return f"{plugin}/{status}"


def plugin_and_status(field: str) -> tuple[str, str]:
    """The plugin and status a ``finished`` field counts."""
    plugin, _, status = field.rpartition("/")
    return plugin, status


# Webhooks (``workers/webhook_metrics.py``):
# ``webhook_deliveries``  hash: ``<outcome>`` (delivered, retrying, failed) -> attempts
# ``webhook_latency``     hash like ``duration:<plugin>``: status change -> 2xx, seconds
WEBHOOK_OUTCOMES_KEY = f"{PREFIX}:webhook_deliveries"
WEBHOOK_LATENCY_KEY = f"{PREFIX}:webhook_latency"
