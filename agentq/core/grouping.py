"""Group commit: calls made while a group is being served go together into the next group,
so a busy process writes many items per transaction (or message) and an idle one writes
each at once.

One primitive, ``Grouping``, served two ways: on a thread of its own (``GroupingThread``:
the worker's claims and outcomes, the API's publishes) or on the event loop
(``GroupingLoop``: the API's POSTs and GETs).
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from contextlib import suppress
from queue import Empty, SimpleQueue
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
log = logging.getLogger("agentq.grouping")


class Answer(Protocol[R_contra]):
    """Where an item's outcome goes: a thread's ``Future`` or the loop's."""

    def set_result(self, result: R_contra, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


class Grouping(Generic[T, R]):
    """Items wait in order; ``_group`` takes the next group of them, ``_answer`` answers it.

    ``serve([item, ...])`` answers each item of its group in order, with its result or an
    exception that item alone meets; if ``serve`` raises, every item of the group gets the
    exception. A group weighs at most ``max_weight`` (each item ``weight(item)``), unless
    its first item alone weighs more: an item that does not fit opens the next group. A
    call is always served by a ``serve`` that starts after the call was made, never by one
    already under way: what it reads is at least as new as the call.
    """

    def __init__(self, name: str, max_weight: int, weight: Callable[[T], int] = lambda _: 1) -> None:
        self.name = name
        self._max_weight = max_weight
        self._weight = weight
        self._waiting: SimpleQueue[tuple[T, Answer[R]]] = SimpleQueue()
        self._carried: tuple[T, Answer[R]] | None = None  # the item that did not fit the last group

    def _next(self, block: bool) -> tuple[T, Answer[R]] | None:
        """The first item of the next group: the one carried over, else the oldest waiting
        (with ``block``, once one comes); None if none is waiting."""
        carried, self._carried = self._carried, None
        if carried is not None:
            return carried
        try:
            return self._waiting.get(block)
        except Empty:
            return None

    def _group(self, first: tuple[T, Answer[R]]) -> list[tuple[T, Answer[R]]]:
        group = [first]
        weight = self._weight(first[0])
        with suppress(Empty):
            while weight < self._max_weight:
                waiting = self._waiting.get_nowait()
                weight += self._weight(waiting[0])
                if weight > self._max_weight:
                    self._carried = waiting
                    break
                group.append(waiting)
        return group

    def _answer(
        self, group: list[tuple[T, Answer[R]]], outcomes: Sequence[R | Exception] | Exception
    ) -> None:
        if isinstance(outcomes, Exception):
            log.warning("%s: serving %d items failed", self.name, len(group), exc_info=outcomes)
            outcomes = [outcomes] * len(group)
        for (_, answer), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)


class GroupingThread(Grouping[T, R]):
    """``submit(item)`` is a future of ``serve([item, ...])[i]``, ``item`` being the i-th;
    ``serve`` runs on this one thread, which starts on first use in each process (so after
    a fork, too)."""

    def __init__(
        self,
        name: str,
        serve: Callable[[list[T]], Sequence[R | Exception]],
        max_weight: int,
        weight: Callable[[T], int] = lambda _: 1,
    ) -> None:
        super().__init__(name, max_weight, weight)
        self._serve = serve
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def submit(self, item: T, answer: "Future[R] | None" = None) -> "Future[R]":
        """Queue ``item``; its outcome goes to ``answer`` (a new future if none is given)."""
        if self._thread is None or not self._thread.is_alive():
            with self._starting:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._serve_waiting, name=self.name, daemon=True)
                    self._thread.start()
        answer = Future() if answer is None else answer
        self._waiting.put((item, answer))
        return answer

    def _serve_waiting(self) -> None:
        while True:
            first = self._next(block=True)
            assert first is not None  # a blocking take waits for one
            group = self._group(first)
            try:
                outcomes: Sequence[R | Exception] | Exception = self._serve([item for item, _ in group])
            except Exception as exc:
                outcomes = exc
            self._answer(group, outcomes)


class GroupingLoop(Grouping[T, R]):
    """``await grouping(item)`` is ``serve([item, ...])[i]``, ``item`` being the i-th;
    ``serve`` is awaited on the event loop.

    A call made while nothing is under way is served at once in the caller's own
    coroutine, alone: no task, no future. Calls made meanwhile wait, and are served
    together by one task, a group after another, until none is left.
    """

    def __init__(
        self,
        name: str,
        serve: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        max_weight: int,
        weight: Callable[[T], int] = lambda _: 1,
    ) -> None:
        super().__init__(name, max_weight, weight)
        self._serve = serve
        self._alone = False  # a call is being served in its own coroutine
        self._server: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        if not self._alone and self._server is None:
            self._alone = True
            try:
                (outcome,) = await self._serve([item])
            finally:
                self._alone = False
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.put((item, answer))
        if self._server is None:
            self._server = asyncio.create_task(self._serve_waiting())
        # A disconnecting client cancels only its wait: the group it is in is still served.
        return await asyncio.shield(answer)

    async def _serve_waiting(self) -> None:
        try:
            while (first := self._next(block=False)) is not None:
                group = self._group(first)
                try:
                    outcomes: Sequence[R | Exception] | Exception = await self._serve(
                        [item for item, _ in group]
                    )
                except Exception as exc:
                    outcomes = exc
                self._answer(group, outcomes)
        finally:
            self._server = None
