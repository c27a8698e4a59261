"""Group commit on a thread: calls made while a group is being served go together into the
next group, so a busy worker writes many items per transaction and an idle one writes each
at once."""

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import suppress
from queue import Empty, SimpleQueue
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("agentq.grouping")


class GroupingThread(Generic[T, R]):
    """``submit(item)`` is a future of ``serve([item, ...])[i]``, ``item`` being the i-th.

    ``serve`` runs on this one thread and answers each item of its group in order; if it
    raises, every item of the group gets the exception. A group is at most ``max_group``.
    """

    def __init__(self, name: str, serve: Callable[[list[T]], Sequence[R]], max_group: int) -> None:
        self._serve = serve
        self._max_group = max_group
        self._waiting: SimpleQueue[tuple[T, Future[R]]] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve_waiting, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: T) -> "Future[R]":
        answer: Future[R] = Future()
        self._waiting.put((item, answer))
        return answer

    def _serve_waiting(self) -> None:
        while True:
            group = [self._waiting.get()]
            with suppress(Empty):
                while len(group) < self._max_group:
                    group.append(self._waiting.get_nowait())
            try:
                outcomes = self._serve([item for item, _ in group])
            except Exception as exc:
                log.exception("%s: serving %d items failed", self._thread.name, len(group))
                for _, answer in group:
                    answer.set_exception(exc)
                continue
            for (_, answer), outcome in zip(group, outcomes, strict=True):
                answer.set_result(outcome)
