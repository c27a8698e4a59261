"""Group commit on a thread: calls made while a group is being served go together into the
next group, so a busy process writes many items per transaction (or message) and an idle
one writes each at once."""

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
    raises, every item of the group gets the exception. A group weighs at most
    ``max_weight`` (each item ``weight(item)``), unless its first item alone weighs more.
    The thread starts on first use in each process (so after a fork, too).
    """

    def __init__(
        self,
        name: str,
        serve: Callable[[list[T]], Sequence[R]],
        max_weight: int,
        weight: Callable[[T], int] = lambda _: 1,
    ) -> None:
        self._name = name
        self._serve = serve
        self._max_weight = max_weight
        self._weight = weight
        self._waiting: SimpleQueue[tuple[T, Future[R]]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def submit(self, item: T, answer: "Future[R] | None" = None) -> "Future[R]":
        """Queue ``item``; its outcome goes to ``answer`` (a new future if none is given)."""
        if self._thread is None or not self._thread.is_alive():
            with self._starting:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._serve_waiting, name=self._name, daemon=True)
                    self._thread.start()
        answer = Future() if answer is None else answer
        self._waiting.put((item, answer))
        return answer

    def _serve_waiting(self) -> None:
        carried: tuple[T, Future[R]] | None = None  # the item that did not fit the last group
        while True:
            group = [carried or self._waiting.get()]
            carried = None
            weight = self._weight(group[0][0])
            with suppress(Empty):
                while weight < self._max_weight:
                    waiting = self._waiting.get_nowait()
                    weight += self._weight(waiting[0])
                    if weight > self._max_weight:
                        carried = waiting
                        break
                    group.append(waiting)
            try:
                outcomes = self._serve([item for item, _ in group])
            except Exception as exc:
                log.exception("%s: serving %d items failed", self._name, len(group))
                for _, answer in group:
                    answer.set_exception(exc)
                continue
            for (_, answer), outcome in zip(group, outcomes, strict=True):
                answer.set_result(outcome)
