"""The threads that run the sync commands of many-execution messages, taking turns
between API keys.

A worker claims a batch's chunk whole, so its sync commands may wait for a thread behind
hundreds of one key's. A free thread takes the next command of the key it served least
recently (round-robin), a key's own in the order they came: another key's run waits
for at most one run of each other waiting key, not for the queue in front of it.
"""

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable

Job = Callable[[], object]
log = logging.getLogger("agentq.runtime")


class Turns:
    """``n`` daemon threads (named ``<name>-<i>``) serving jobs by key, in turn."""

    def __init__(self, n: int, name: str) -> None:
        # Keys with jobs waiting, the next to serve first; a served key goes last.
        self._waiting: OrderedDict[str, deque[Job]] = OrderedDict()
        self._ready = threading.Condition()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(n)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, key: str, job: Job) -> None:
        with self._ready:
            jobs = self._waiting.get(key)
            if jobs is None:
                self._waiting[key] = deque([job])
            else:
                jobs.append(job)
            self._ready.notify()

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._waiting:
                    self._ready.wait()
                key, jobs = self._waiting.popitem(last=False)
                job = jobs.popleft()
                if jobs:
                    self._waiting[key] = jobs  # its next job waits for the other keys' turns
            try:
                job()  # the runtime's jobs record their own outcome
            except BaseException:  # a stray interrupt included: the thread serves on
                log.exception("a sync job raised")
