"""Group commit for the API's hot paths: calls that arrive while one is being served wait
for it and are then served together, by one call in the thread pool.

Unloaded, a call is served at once, alone; under load, one database transaction serves
every request that came in meanwhile, so the cost per request falls as the load rises
instead of the queue growing.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
R = TypeVar("R")


class Grouped(Generic[T, R]):
    """``await grouped(item)`` is ``serve([item, ...])[i]``, ``item`` being the i-th.

    ``serve`` runs in the thread pool and answers each item of its group in order, with
    its result or the exception that item raises; the group is at most ``max_group``.
    A call is always served by a ``serve`` that starts after the call was made, never by
    one already under way: what it reads is at least as new as the call.

    With ``serve_alone``, a call made while nothing is under way is served by it, in the
    caller's own coroutine: no thread, no task, no future. Calls made meanwhile are grouped.
    With ``serve_on_loop``, groups are served by it on the event loop instead of by
    ``serve`` on a thread.
    """

    def __init__(
        self,
        serve: Callable[[Sequence[T]], Sequence[R | Exception]],
        max_group: int,
        serve_alone: Callable[[T], Awaitable[R]] | None = None,
        serve_on_loop: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]] | None = None,
    ) -> None:
        self._serve = serve
        self._max_group = max_group
        self._serve_alone = serve_alone
        self._serve_on_loop = serve_on_loop
        self._alone = False  # a call is being served by serve_alone
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._server: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        if self._serve_alone is not None and not self._alone and self._server is None:
            self._alone = True
            try:
                return await self._serve_alone(item)
            finally:
                self._alone = False
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._server is None:
            self._server = asyncio.create_task(self._serve_waiting())
        # A disconnecting client cancels only its wait: the group it is in is still served.
        return await asyncio.shield(answer)

    async def _serve_waiting(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[: self._max_group]
                del self._waiting[: self._max_group]
                items = [item for item, _ in group]
                try:
                    if self._serve_on_loop is not None:
                        outcomes = await self._serve_on_loop(items)
                    else:
                        outcomes = await run_in_threadpool(self._serve, items)
                except Exception as exc:  # serve failed as a whole: every item of it did
                    outcomes = [exc] * len(group)
                for (_, answer), outcome in zip(group, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        answer.set_exception(outcome)
                    else:
                        answer.set_result(outcome)
        finally:
            self._server = None
