"""Routes served on the event loop: a sync endpoint runs there, its store calls on the
asyncio engines through SQLAlchemy's greenlet bridge (``db.run``), instead of in
FastAPI's thread pool."""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute

from agentq.core import db


def on_loop(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` as a coroutine function (the same signature, for FastAPI) that runs it
    through ``db.run``; a coroutine function as it is."""
    if inspect.iscoroutinefunction(endpoint) or inspect.isasyncgenfunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    async def served(*args: Any, **kwargs: Any) -> Any:
        return await db.run(endpoint, *args, **kwargs)

    return served


class LoopRoute(APIRoute):
    """A route whose endpoint, sync or not, is served on the event loop (``on_loop``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, on_loop(endpoint), **kwargs)
