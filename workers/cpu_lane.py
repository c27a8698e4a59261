"""Which sync commands are CPU-bound, learned from their runs, and how many of those run
at once: the sync threads' CPU lane (``workers/turns.py``).

Python threads share one GIL: a second thread running Python code adds no throughput,
and dozens of them starve the worker's own threads (claimer, consumer, event loop),
each of which waits behind all of them whenever it comes back from I/O. So commands
that are CPU-bound take at most ``AGENTQ_WORKER_CPU_THREADS`` threads at once, and the
other threads serve I/O-bound commands.

A command is CPU-bound if declared so (``@command(..., cpu_bound=True)``), or if its
recent runs spent most of their wall time on their thread's CPU (an average of
cpu/wall over its runs, the newest weighing most). One never measured is taken for
CPU-bound: measured among many CPU-bound threads, a run waits for the GIL most of its
time and would look I/O-bound; in the lane it runs nearly alone, so its runs tell. In
the lane it still shares the GIL with the worker's own threads (a claim of a thousand
rows computes too), so it leaves only once its average falls well below the mark
(``LEAVE``), as a command that waits does at its first run. A run that holds a lane
slot with little CPU for ``PROBE_S`` gives the slot back while it still runs (a
blocking call of a command never measured holds up the others no longer).
"""

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass

# A command enters the lane once its runs' cpu/wall average is at least this, and
# leaves it once the average is below LEAVE.
CPU_BOUND = 0.5
LEAVE = 0.2
# Weight of the newest run in the average.
ALPHA = 0.25
# A run in the lane this long (wall) is looked at while it runs.
PROBE_S = 0.1
log = logging.getLogger("agentq.runtime")


def _clock_of(thread_id: int) -> int | None:
    """The CPU-time clock of another thread, where the platform has one (Linux does)."""
    try:
        return time.pthread_getcpuclockid(thread_id)
    except (AttributeError, OSError):
        return None


@dataclass
class Held:
    """A lane slot held by a run: its kind, and its thread's clocks at the start."""

    kind: Hashable
    wall: float
    cpu: float
    clock: int | None
    released: bool = False


class CpuLane:
    """The learned cpu/wall of each kind of command (plugin, command), and the lane's
    slots. Not thread-safe: ``Turns`` calls it under its lock."""

    def __init__(self, threads: int) -> None:
        self.threads = threads  # 0: no lane
        self._ratio: dict[Hashable, float] = {}
        self._outside: set[Hashable] = set()  # kinds measured not CPU-bound
        self._declared: dict[Hashable, bool] = {}
        self._held: dict[int, Held] = {}  # by thread id

    def declare(self, kind: Hashable, cpu_bound: bool | None) -> None:
        if cpu_bound is not None:
            self._declared[kind] = cpu_bound

    def is_cpu(self, kind: Hashable) -> bool:
        declared = self._declared.get(kind)
        if declared is not None:
            return declared
        return kind not in self._outside

    def learn(self, kind: Hashable, cpu_s: float, wall_s: float) -> None:
        if wall_s <= 0:
            return
        sample = min(1.0, max(0.0, cpu_s / wall_s))
        old = self._ratio.get(kind)
        ratio = self._ratio[kind] = sample if old is None else old + ALPHA * (sample - old)
        if kind in self._outside and ratio >= CPU_BOUND:
            self._outside.discard(kind)
            log.info("%s computes (cpu/wall %.2f): at most %d at once", kind, ratio, self.threads)
        elif kind not in self._outside and ratio < LEAVE:
            self._outside.add(kind)
            log.info("%s waits (cpu/wall %.2f): runs beside the others", kind, ratio)

    def free(self) -> bool:
        """Whether a CPU-bound run may start now."""
        return self.threads <= 0 or sum(not h.released for h in self._held.values()) < self.threads

    def hold(self, thread_id: int, kind: Hashable) -> None:
        """The run on ``thread_id`` takes a slot (called on that thread)."""
        self._held[thread_id] = Held(kind, time.monotonic(), time.thread_time(), _clock_of(thread_id))

    def leave(self, thread_id: int) -> bool:
        """The run on ``thread_id`` ended: its slot is free again. Whether it still held it."""
        held = self._held.pop(thread_id, None)
        return held is not None and not held.released

    def release_waiting(self) -> bool:
        """Give back the slots of runs that turned out to wait rather than compute (their
        kind learns it); whether any was given back."""
        now = time.monotonic()
        released = False
        for held in self._held.values():
            if held.released or held.clock is None or now - held.wall < PROBE_S:
                continue
            cpu = time.clock_gettime(held.clock) - held.cpu
            if cpu < LEAVE * (now - held.wall):
                held.released = released = True
                self.learn(held.kind, cpu, now - held.wall)
        return released

    def probing(self) -> bool:
        """Whether some slot is held by a run that ``release_waiting`` may give back."""
        return any(not h.released and h.clock is not None for h in self._held.values())
