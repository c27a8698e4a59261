"""The threads that run the sync commands of many-execution messages, taking turns
between API keys, CPU-bound commands on few of them.

A worker claims a batch's chunk whole, so its sync commands may wait for a thread behind
hundreds of one key's. A free thread takes the next command of the key it served least
recently (round-robin), a key's own in the order they came: another key's run waits
for at most one run of each other waiting key, not for the queue in front of it.

CPU-bound commands (``workers/cpu_lane.py``) run on at most ``cpu_threads`` threads at
once. While that lane is full a free thread skips them and serves the next other job
(another key's, an I/O-bound command's), so nothing waits behind the lane needlessly.
"""

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from workers.cpu_lane import PROBE_S, CpuLane

Job = Callable[[], object]
log = logging.getLogger("agentq.runtime")


class Turns:
    """``n`` daemon threads (named ``<name>-<i>``) serving jobs by key, in turn; at most
    ``cpu_threads`` of them on CPU-bound commands (0: no such limit)."""

    def __init__(self, n: int, name: str, cpu_threads: int = 0) -> None:
        # Keys with jobs waiting, the next to serve first; a served key goes last. A key's
        # jobs by kind of command, each (arrival number, job).
        self._waiting: OrderedDict[str, dict[Hashable, deque[tuple[int, Job]]]] = OrderedDict()
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self.lane = CpuLane(cpu_threads if cpu_threads < n else 0)
        self._prober: int | None = None  # the thread that watches the lane's runs
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(n)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, key: str, job: Job, kind: Hashable = None, cpu_bound: bool | None = None) -> None:
        """Queue ``job`` for ``key``; ``kind`` names its command (plugin, command), whose
        runs are measured, and ``cpu_bound`` is what its plugin declared, if anything."""
        with self._ready:
            self.lane.declare(kind, cpu_bound)
            kinds = self._waiting.get(key)
            if kinds is None:
                kinds = self._waiting[key] = {}
            kinds.setdefault(kind, deque()).append((next(self._seq), job))
            # A job for the full lane wakes no thread: the lane's own, once free, takes it.
            if not self._computes(kind) or self.lane.free():
                self._ready.notify()

    def computes(self, kind: Hashable, cpu_bound: bool | None) -> bool:
        """Whether a job of ``kind`` would run in the lane."""
        with self._ready:
            self.lane.declare(kind, cpu_bound)
            return self._computes(kind)

    def _computes(self, kind: Hashable) -> bool:
        return self.lane.threads > 0 and self.lane.is_cpu(kind)

    def _take(self) -> tuple[Hashable, Job, bool] | None:
        """The next job a free thread may run: (its kind, the job, whether it goes in the
        lane); None if every waiting job waits for the lane."""
        lane_free = self.lane.free()
        for key, kinds in self._waiting.items():
            best: tuple[int, Hashable, bool] | None = None
            for kind, jobs in kinds.items():
                cpu = self._computes(kind)
                if (lane_free or not cpu) and (best is None or jobs[0][0] < best[0]):
                    best = jobs[0][0], kind, cpu
            if best is None:
                continue
            _, kind, cpu = best
            jobs = kinds[kind]
            _, job = jobs.popleft()
            if not jobs:
                del kinds[kind]
            del self._waiting[key]
            if kinds:
                self._waiting[key] = kinds  # its next job waits for the other keys' turns
            return kind, job, cpu
        return None

    def _more(self) -> bool:
        """Whether a waiting job could start now."""
        lane_free = self.lane.free()
        return any(lane_free or not self._computes(k) for kinds in self._waiting.values() for k in kinds)

    def _next(self, me: int) -> tuple[Hashable, Job, bool]:
        with self._ready:
            while True:
                taken = self._take() if self._waiting else None
                if taken is not None:
                    if taken[2]:
                        self.lane.hold(me, taken[0])
                    if self._prober == me:
                        self._prober = None
                        self._ready.notify()  # another thread watches the lane
                    elif self._more():
                        self._ready.notify()  # a thread each, not one handed off per job
                    return taken
                if self._waiting and self.lane.probing() and self._prober in (None, me):
                    # Jobs wait for the lane: one thread looks again soon whether its runs
                    # compute (the others sleep until woken).
                    self._prober = me
                    if not self._ready.wait(PROBE_S) and self.lane.release_waiting():
                        self._ready.notify_all()
                else:
                    if self._prober == me:
                        self._prober = None
                    self._ready.wait()

    def _serve(self) -> None:
        me = threading.get_ident()
        while True:
            kind, job, in_lane = self._next(me)
            wall, cpu = time.monotonic(), time.thread_time()
            try:
                job()  # the runtime's jobs record their own outcome
            except BaseException:  # a stray interrupt included: the thread serves on
                log.exception("a sync job raised")
            cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
            with self._ready:
                self.lane.learn(kind, cpu, wall)
                if in_lane:
                    self.lane.leave(me)  # this thread takes the next job itself
