"""Naming what held a worker's event loop in a stall (``workers/watchdog.py`` notices it):
one warning per stall naming the commands that held it, and each plugin's share added to
its count on ``/metrics``."""

import logging
from collections import defaultdict

from agentq.core.metrics_layout import NO_PLUGIN
from workers import metrics
from workers.attempt import Attempt

log = logging.getLogger("agentq.runtime")


def report_blocked(blocked_s: float, by_run: dict[Attempt | None, float]) -> None:
    """A stall of the event loop is over: warn once, naming the commands that held the loop
    (a run of ``None``: none was on it), and add each plugin's share to its count."""
    runs: dict[tuple[str, str], list[Attempt | None]] = defaultdict(list)
    shares: dict[tuple[str, str], float] = defaultdict(float)
    for run, share_s in by_run.items():
        key = (NO_PLUGIN, "") if run is None else (run.row.plugin, run.row.command)
        runs[key].append(run)
        shares[key] += share_s
    ranked = sorted(shares, key=shares.__getitem__, reverse=True)
    named = [_holders(key, runs[key], shares[key] if len(ranked) > 1 else None) for key in ranked[:3]]
    if len(ranked) > 3:
        named.append(f"{len(ranked) - 3} more")
    plugin, command = ranked[0]
    log.warning(
        "event loop held for %.2fs by %s",
        blocked_s,
        ", ".join(named),
        extra={"blocked_ms": round(blocked_s * 1000)}
        | ({"plugin": plugin, "command": command} if command else {}),
    )
    by_plugin: dict[str, float] = defaultdict(float)
    for (plugin, _), share_s in shares.items():
        by_plugin[plugin] += share_s
    metrics.loop_blocked(by_plugin)


def _holders(key: tuple[str, str], runs: list[Attempt | None], share_s: float | None) -> str:
    plugin, command = key
    if not command:
        named = "no run"
    elif len(runs) > 1:
        named = f"plugin {plugin} command {command} ({len(runs)} runs)"
    else:
        run = runs[0]
        assert run is not None
        named = f"plugin {plugin} command {command} (execution {run.id}, attempt {run.number})"
    return named if share_s is None else f"{named} {share_s:.2f}s"
