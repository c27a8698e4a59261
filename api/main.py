"""The FastAPI application: ``uvicorn api.main:app`` (gunicorn with Uvicorn workers in production)."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from agentq.core import db, heap, logs
from agentq.core.settings import settings
from api import console, docs, problems
from api.limits import BodyLimit
from api.routes import compat, events, executions, health, keys, limits, plugins, redrive, schedules, webhooks
from api.submit import flush_publishes
from api.waiters import waiters

log = logging.getLogger("agentq.api")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # gunicorn already set this up in its master (gunicorn.conf.py); plain uvicorn has not.
    logs.configure()
    db.serve_on_loop()
    waiters.start(settings.redis_url)
    heap.freeze_startup()
    heap.collect_less_often()
    loop = type(asyncio.get_running_loop())
    log.info("API process %d serving on %s.%s", os.getpid(), loop.__module__, loop.__qualname__)
    yield
    await waiters.stop()
    await run_in_threadpool(flush_publishes)  # the publisher's thread; it may need the loop
    await db.stop_serving_on_loop()


def create_app() -> FastAPI:
    app = FastAPI(
        title="agentq",
        version="1",
        summary="Submit agent executions, poll their results.",
        lifespan=lifespan,
        docs_url=None,  # served by api.docs, without a CDN
        redoc_url=None,
    )
    docs.install(app)
    problems.install(app)
    app.add_middleware(BodyLimit)
    for module in (executions, redrive, events, schedules, webhooks, limits, plugins, keys, compat, health):
        app.include_router(module.router)
    if settings.ui:
        console.install(app)
    return app


app = create_app()
