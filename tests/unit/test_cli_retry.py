"""``agentq retry``: what it asks of the API, and what it refuses before asking anything."""

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from agentq import output
from agentq.cli import app
from agentq.client import Execution
from agentq.commands import redrive
from api.schemas import ExecutionRetryFilter

NOW = datetime(2026, 12, 7, 19, 30, tzinfo=UTC)
ORIGINAL = "01KAV8W3Q5M2X9R7T4B6N8P0CD"
RETRY = "01KBV8W3Q5M2X9R7T4B6N8P0CE"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["retry", *args], env={"COLUMNS": "100", "AGENTQ_API_KEY": "k"})


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The client calls the command makes, answered with one retry each."""
    calls: list[tuple[str, Any]] = []
    retried = Execution(
        id=RETRY, plugin="news", command="latest", status="queued", created_at=NOW, retry_of=ORIGINAL
    )

    class FakeClient:
        def retry(self, execution_id: str, **kwargs: Any) -> Execution:
            calls.append(("retry", (execution_id, kwargs)))
            return retried

        def retry_many(self, **kwargs: Any) -> list[Execution]:
            calls.append(("retry_many", kwargs))
            return [retried]

    def run(action: Any, _as_json: bool = False) -> None:
        raise typer.Exit(int(action(FakeClient()) or 0))

    monkeypatch.setattr(redrive, "run", run)
    return calls


def test_retry_by_ids_retries_each(asked: list[tuple[str, Any]]) -> None:
    result = invoke(ORIGINAL, "01KAV8W3Q5M2X9R7T4B6N8P0CF", "--json")

    assert result.exit_code == 0, result.output
    assert [name for name, _ in asked] == ["retry", "retry"]
    assert asked[0][1] == (ORIGINAL, {"idempotency_key": None})
    assert result.output.count(f'"retry_of":"{ORIGINAL}"') == 2


def test_retry_by_filter_sends_the_filter(asked: list[tuple[str, Any]]) -> None:
    before = datetime.now(UTC)
    result = invoke(
        "--status", "failed", "--status", "timed_out", "--plugin", "news", "--since", "1h",
        "--until", "2026-12-07T19:00", "--limit", "7", "--idempotency-key", "k1",
    )  # fmt: skip
    after = datetime.now(UTC)

    assert result.exit_code == 0, result.output
    ((name, sent),) = asked
    assert name == "retry_many"
    assert sent["status"] == ["failed", "timed_out"]
    assert sent["plugin"] == "news"
    assert before - timedelta(hours=1) <= sent["created_after"] <= after - timedelta(hours=1)
    assert sent["created_before"] == datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
    assert (sent["limit"], sent["idempotency_key"]) == (7, "k1")
    assert RETRY in result.output
    assert ORIGINAL in result.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give execution ids, or a filter"),
        ((ORIGINAL, "--status", "failed"), "not both"),
        (("--status", "running"), "'running' is not one of failed, timed_out, cancelled"),
        (("--since", "yesterday"), "neither a duration"),
        (("--until", "5 parsecs"), "neither a duration"),
        ((ORIGINAL, ORIGINAL, "--idempotency-key", "k"), "takes one execution id"),
    ],
)
def test_retry_refuses_what_the_api_would(
    asked: list[tuple[str, Any]], argv: tuple[str, ...], message: str
) -> None:
    result = invoke(*argv)

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert asked == []


def test_retry_limit_takes_exactly_what_the_api_accepts(asked: list[tuple[str, Any]]) -> None:
    field = ExecutionRetryFilter.model_fields["limit"]
    low, high = (next(getattr(m, a) for m in field.metadata if hasattr(m, a)) for a in ("ge", "le"))

    codes = {n: invoke("--limit", str(n)).exit_code for n in (low - 1, low, high, high + 1)}

    assert codes == {low - 1: 2, low: 0, high: 0, high + 1: 2}
    assert len(asked) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-12-07T09:00:00Z", datetime(2026, 12, 7, 9, tzinfo=UTC)),
        ("2026-12-07T10:00:00+01:00", datetime(2026, 12, 7, 9, tzinfo=UTC)),
        ("2026-12-07 09:00", datetime(2026, 12, 7, 9, tzinfo=UTC)),
    ],
)
def test_when_is_a_duration_ago_or_a_time(text: str, expected: datetime) -> None:
    assert redrive.parse_when(text, "--since", now=NOW) == expected


def test_the_retries_table_shows_each_retry_beside_its_original(monkeypatch: pytest.MonkeyPatch) -> None:
    file = io.StringIO()
    monkeypatch.setattr(output, "out", Console(file=file, width=40, force_terminal=True, color_system=None))
    row = Execution(
        id=RETRY, plugin="news", command="latest", status="queued", created_at=NOW, retry_of=ORIGINAL
    )

    output.retries([row])

    assert RETRY in file.getvalue()
    assert ORIGINAL in file.getvalue()
