"""What the fair-share tests share: workers of the ``gauge`` queue, keys, and counting how
many ran at once from the rows and from the plugin's own record."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from agentq.core.db import session_scope
from agentq.core.models import Admission, Execution
from tests.integration.conftest import Stack, bearer
from tests.integration.processes import Proc, wait_until

# Workers of the gauge plugins: short leases, so a killed one's runs come back in seconds.
GAUGE_ENV = {"AGENTQ_LEASE_S": "2", "AGENTQ_HEARTBEAT_S": "0.3", "AGENTQ_QUEUED_LEASE_S": "5"}
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")


@contextmanager
def gauge_workers(stack: Stack, n: int, prefix: str) -> Iterator[list[Proc]]:
    procs = [stack.start_worker(f"{prefix}{i}", queues="agentq.gauge", **GAUGE_ENV) for i in range(n)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc in stack.extra:
                stack.stop(proc)


def key_client(stack: Stack, name: str) -> tuple[str, httpx.Client]:
    """A new API key's id and a client that sends it."""
    made = stack.client.post("/v1/keys", json={"name": name})
    assert made.status_code == 201, made.text
    client = httpx.Client(base_url=stack.url, timeout=60, headers=bearer(made.json()["key"]))
    return made.json()["id"], client


def gauge(path: Path, sleep_s: float, **fields: Any) -> dict[str, Any]:
    return {"plugin": "gauge", "command": "run", "params": {"path": str(path), "sleep_s": sleep_s}, **fields}


def submit_all(client: httpx.Client, items: list[dict[str, Any]]) -> list[str]:
    ids = []
    for at in range(0, len(items), 500):
        response = client.post("/v1/executions/batch", json={"executions": items[at : at + 500]})
        assert response.status_code == 202, response.text
        ids += [e["id"] for e in response.json()["executions"]]
    return ids


def rows(ids: Iterable[str]) -> list[Execution]:
    with session_scope() as session:
        return list(session.scalars(select(Execution).where(Execution.id.in_(list(ids)))))


def wait_all_ended(ids: list[str], timeout_s: float) -> list[Execution]:
    wait_until(
        lambda: all(r.status.value in TERMINAL for r in rows(ids)), timeout_s, "every execution to end", 0.5
    )
    return rows(ids)


def admissions_left() -> int:
    with session_scope() as session:
        return len(session.scalars(select(Admission.execution_id)).all())


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals that overlap at any moment (one ending as another starts does not)."""
    events = sorted((t, step) for start, end in intervals for t, step in ((start, 1), (end, -1)))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def row_intervals(found: Iterable[Execution]) -> list[tuple[float, float]]:
    def ts(at: datetime | None) -> float:
        assert at is not None
        return at.timestamp()

    return [(ts(r.started_at), ts(r.finished_at)) for r in found if r.started_at is not None]


def recorded_intervals(path: Path, killed_at: list[float]) -> list[tuple[float, float]]:
    """The plugin's own record: each run from its start to its end; a run with no end was
    on a killed worker, and ended no later than the first kill after its start."""
    starts: dict[tuple[str, str], float] = {}
    ends: dict[tuple[str, str], float] = {}
    for line in path.read_text().splitlines():
        kind, execution_id, attempt, at = line.split()
        (starts if kind == "start" else ends)[(execution_id, attempt)] = float(at)
    out = []
    for run, start in starts.items():
        end = ends.get(run)
        if end is None:
            end = min((k for k in killed_at if k >= start), default=float("inf"))
        out.append((start, end))
    return out
