"""``simulate``: a controllable agent for tests and benchmarks (sleep, fail, burn CPU, crash)."""

import asyncio
import os
import signal
import time
from collections.abc import Coroutine
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentq import Context, Plugin, RetryLater, command

# Sync sleeps run in short slices, like ordinary Python loops, so that the runtime's
# interrupt (delivered between bytecodes) lands promptly without the plugin checking ctx.
_SLICE_S = 0.05


class SimulateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo such as `sleep` is a 422, not a no-op

    sleep_s: float = Field(0, ge=0, le=3600, description="Time to spend waiting.")
    fail_times: int = Field(0, ge=0, le=100, description="Fail the first N attempts with a retryable error.")
    cpu_ms: int = Field(
        0, ge=0, le=3_600_000, description="CPU time to burn, without checking for cancellation."
    )
    result_bytes: int = Field(
        0, ge=0, le=32 * 1024 * 1024, description="Size of a filler string in the result."
    )
    progress_steps: int = Field(0, ge=0, le=1000, description="Progress reports spread over the sleep.")
    mode: Literal["sync", "async"] = Field("sync", description="Wait with time.sleep or asyncio.sleep.")
    crash: bool = Field(False, description="Kill the worker process abruptly (SIGKILL).")


def _burn(cpu_ms: int) -> None:
    end = time.process_time() + cpu_ms / 1000
    while time.process_time() < end:
        pass


class SimulatePlugin(Plugin):
    name = "simulate"
    description = "Sleeps, fails, burns CPU or crashes on request; for tests and benchmarks."

    def _before(self, ctx: Context, params: SimulateParams) -> None:
        if params.crash:
            os.kill(os.getpid(), signal.SIGKILL)
        if ctx.attempt <= params.fail_times:
            raise RetryLater(f"simulated failure on attempt {ctx.attempt} of {params.fail_times}")
        _burn(params.cpu_ms)

    def _result(self, ctx: Context, params: SimulateParams) -> dict[str, Any]:
        return {
            "attempt": ctx.attempt,
            "slept_s": params.sleep_s,
            "cpu_ms": params.cpu_ms,
            "mode": params.mode,
            "progress_steps": params.progress_steps,
            "filler": "x" * params.result_bytes,
        }

    def _chunks(self, params: SimulateParams) -> tuple[int, float]:
        steps = max(1, params.progress_steps)
        return steps, params.sleep_s / steps

    @command(SimulateParams)
    def run(
        self, ctx: Context, params: SimulateParams
    ) -> dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
        """Wait, fail, burn CPU or crash as asked, then report what it did."""
        self._before(ctx, params)
        if params.mode == "async":
            return self._wait_async(ctx, params)
        steps, chunk = self._chunks(params)
        for step in range(1, steps + 1):
            end = time.monotonic() + chunk
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(_SLICE_S, left))
            self._report(ctx, params, step, steps)
        return self._result(ctx, params)

    async def _wait_async(self, ctx: Context, params: SimulateParams) -> dict[str, Any]:
        steps, chunk = self._chunks(params)
        for step in range(1, steps + 1):
            await asyncio.sleep(chunk)
            self._report(ctx, params, step, steps)
        return self._result(ctx, params)

    def _report(self, ctx: Context, params: SimulateParams, step: int, steps: int) -> None:
        if params.progress_steps:
            ctx.progress(100 * step / steps, f"step {step} of {steps}")
            ctx.logger.info("step %d of %d done", step, steps)
