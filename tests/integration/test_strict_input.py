"""Rows that MariaDB refuses, among good ones sent at once to the real API: each fails only
its own request, though the API writes the submissions that arrive together in one
transaction (group commit). Input the API itself refuses is tested in process, in
``tests/unit/api/test_input.py``."""

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pymysql
from sqlalchemy.engine import make_url

from tests.conftest import DATABASE_URL
from tests.integration.conftest import ADMIN_KEY, Stack, bearer

GOOD = 40
ROUNDS = 3


def _post_at_once(stack: Stack, bodies: list[str]) -> list[httpx.Response]:
    """POST every body at the same moment, each on a connection of its own."""
    start = threading.Barrier(len(bodies))
    headers = {**bearer(ADMIN_KEY), "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=len(bodies))
    with httpx.Client(base_url=stack.url, headers=headers, timeout=60, limits=limits) as client:

        def post(body: str) -> httpx.Response:
            start.wait(30)
            return client.post("/v1/executions", content=body)

        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(post, bodies))


def _written(stack: Stack, run: str) -> list[dict[str, Any]]:
    page = stack.client.get("/v1/executions", params={"limit": 500}).json()["executions"]
    return [e for e in page if e["params"].get("run") == run]


def _interleaved(good: list[str], bad: list[str]) -> list[str]:
    bodies = list(good)
    step = len(good) // len(bad)
    for i, body in enumerate(bad):
        bodies.insert(i * (step + 1) + step // 2, body)
    return bodies


@contextmanager
def _refused_by_the_database(marker: str) -> Iterator[None]:
    """A trigger makes MariaDB refuse to insert any execution whose params hold ``marker``:
    a request that passes the API's checks, and whose row the database will not take."""
    url = make_url(DATABASE_URL)
    conn = pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=url.database,
    )
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON executions FOR EACH ROW "
            f"IF NEW.params LIKE '%{marker}%' THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused for the test'; END IF"
        )
        try:
            yield
        finally:
            cur.execute("DROP TRIGGER refuse_marked")


def test_a_row_the_database_refuses_fails_only_its_own_request(stack: Stack) -> None:
    marker = uuid.uuid4().hex
    with _refused_by_the_database(marker):
        for _ in range(ROUNDS):
            run = uuid.uuid4().hex
            good = [
                json.dumps({"plugin": "echo", "command": "echo", "params": {"run": run, "i": i}})
                for i in range(GOOD)
            ]
            refused = [
                json.dumps({"plugin": "echo", "command": "echo", "params": {"run": run, "m": marker, "j": j}})
                for j in range(5)
            ]
            bodies = _interleaved(good, refused)

            answers = dict(zip(bodies, _post_at_once(stack, bodies), strict=True))

            assert [answers[b].status_code for b in good] == [202] * GOOD, [answers[b].text for b in good]
            assert all(answers[b].status_code >= 500 for b in refused)
            assert sorted(e["params"]["i"] for e in _written(stack, run)) == list(range(GOOD))
    # Written together with the good ones at least once, the refused ones were then alone.
    assert "writing" in stack.api.log()
    assert "so each alone" in stack.api.log()
