"""Liveness and readiness."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core import store
from core.queue import app as celery_app

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive; checks no dependency."""
    return {"status": "ok"}


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@router.get("/readyz", response_model=None)
async def readyz() -> JSONResponse:
    """Ready when the database and the broker answer; 503 names what failed."""
    checks: dict[str, str] = {}
    for name, check in (("database", store.ping), ("broker", _check_broker)):
        try:
            await run_in_threadpool(check)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )
