"""``probe``: runs on a worker's event loop beside the load and measures how late the loop is.

A benchmark puts this folder on the worker's PYTHONPATH (the entry point is in the
dist-info beside it), submits ``probe.lag`` before its load, and creates ``stop_file``
after it. Every ``interval_s`` the probe asks to be woken; how much later than asked it
wakes is the loop's lag: the time other callbacks held the loop.

``burn``: a CPU-bound sync command (a Python loop), for ``bench.cpu_fairness``.
"""

import asyncio
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentq.plugin import Context, Plugin, command


class LagParams(BaseModel):
    stop_file: str = Field(description="Stop measuring once this file exists.")
    interval_s: float = Field(0.005, gt=0, le=1, description="How often to wake.")
    max_s: float = Field(600, gt=0, le=3600, description="Stop after this long at the latest.")


def percentile_ms(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return round(1000 * ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 2)


class ProbePlugin(Plugin):
    name = "probe"
    description = "Measures the worker's event-loop lag until told to stop."
    version = "0.1"

    @command(LagParams)
    async def lag(self, ctx: Context, params: LagParams) -> dict[str, Any]:
        """Sample the loop's lag until ``stop_file`` exists; its percentiles in ms."""
        stop = Path(params.stop_file)
        samples: list[float] = []
        deadline = time.monotonic() + params.max_s
        while not stop.exists() and time.monotonic() < deadline:
            asked = time.monotonic()
            await asyncio.sleep(params.interval_s)
            samples.append(max(0.0, time.monotonic() - asked - params.interval_s))
        samples.sort()
        return {
            "samples": len(samples),
            "p50_ms": percentile_ms(samples, 50),
            "p99_ms": percentile_ms(samples, 99),
            "max_ms": percentile_ms(samples, 100),
        }


class SpinParams(BaseModel):
    cpu_ms: float = Field(10, ge=0, le=60_000, description="CPU time of its own thread to spend.")


class BurnPlugin(Plugin):
    name = "burn"
    description = "Computes in Python: a sync command that spends its thread's CPU time."
    version = "0.1"

    @command(SpinParams)
    def spin(self, ctx: Context, params: SpinParams) -> dict[str, Any]:
        """Spend ``cpu_ms`` of this thread's CPU time in a Python loop."""
        end = time.thread_time() + params.cpu_ms / 1000
        spins = 0
        while time.thread_time() < end:
            spins += 1
        return {"spins": spins}
