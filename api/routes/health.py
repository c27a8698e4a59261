"""What operators probe and scrape: liveness, readiness, Prometheus metrics."""

import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agentq.core import db, store
from agentq.core.leadership import holder
from agentq.core.queue import app as celery_app
from agentq.core.settings import settings
from api import metrics as api_metrics
from api.onloop import LoopRoute

router = APIRouter(tags=["health"], route_class=LoopRoute)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive; checks no dependency."""
    return {"status": "ok"}


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_workers() -> None:
    # Returns at the first answer; waits the whole timeout only when no worker is there.
    timeout_s = settings.ready_ping_timeout_s
    if not celery_app.control.ping(timeout=timeout_s, limit=1):
        raise LookupError(f"no worker answered a ping within {timeout_s:g} s")


CHECKS: dict[str, Callable[[], None]] = {
    "database": lambda: db.call(store.ping),  # on the event loop, from the check's thread
    "broker": _check_broker,
    "workers": _check_workers,
}


def _beat() -> dict[str, Any]:
    """Which beat holds the beat lock. Reported, not required: the API serves without a beat,
    and a readiness that followed beat would take every API out of its load balancer
    while beats hand over."""
    if not settings.redis_url:
        return {"status": "unknown: no AGENTQ_REDIS_URL to read the beat lock in", "holder": None}
    try:
        found = holder(api_metrics.redis_client(settings.redis_url))
    except Exception as exc:  # only the kind: messages may carry URLs with passwords
        return {"status": f"unknown: cannot read the beat lock ({type(exc).__name__})", "holder": None}
    if found is None:
        return {"status": "unavailable: no beat holds the beat lock; schedules do not fire", "holder": None}
    return {"status": "ok", "holder": found.name, "expires_in_s": round(found.expires_in_s, 1)}


class Readiness:
    """The checks' last answer, refreshed when older than ``ttl_s`` by one caller at a time.

    Probes from many clients then cost one database query, one broker connection, one
    worker ping and one read of the beat lock per ``ttl_s`` and process; concurrent callers
    wait for the refresh.
    """

    def __init__(
        self,
        checks: dict[str, Callable[[], None]],
        ttl_s: float,
        beat: Callable[[], dict[str, Any]] = _beat,
    ) -> None:
        self._checks = checks
        self._ttl_s = ttl_s
        self._beat = beat
        self._lock = threading.Lock()
        self._answer: tuple[dict[str, str], dict[str, Any]] = ({}, {})
        self._at = float("-inf")

    def get(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The checks that readiness requires, and the beat's report."""
        with self._lock:
            if time.monotonic() - self._at >= self._ttl_s:
                self._answer = self._run(), self._beat()
                self._at = time.monotonic()
            return self._answer

    def _run(self) -> dict[str, str]:
        answer: dict[str, str] = {}
        for name, check in self._checks.items():
            if name == "workers" and answer.get("broker", "ok") != "ok":
                answer[name] = "unknown: the broker is unavailable"
                continue
            try:
                check()
                answer[name] = "ok"
            except LookupError as exc:
                answer[name] = f"unavailable: {exc}"
            except Exception as exc:  # only the kind: messages may carry URLs with passwords
                answer[name] = f"unavailable: {type(exc).__name__}"
        return answer


readiness = Readiness(CHECKS, settings.ready_cache_s)


@router.get("/readyz", response_model=None)
async def readyz() -> JSONResponse:
    """Ready when the database, the broker and at least one worker answer; 503 names what failed.

    ``beat`` reports whether a beat holds the beat lock (schedules fire) without changing
    the answer's status."""
    # The broker's and the workers' checks block (up to their timeouts): on a thread.
    checks, beat = await run_in_threadpool(readiness.get)
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        body = {"status": "unavailable", "checks": checks, "failed": failed, "beat": beat}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks, "beat": beat})


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics: submissions, executions by status, queue depths, durations."""
    body, content_type = api_metrics.render()
    return Response(body, media_type=content_type)
