"""The ``agentq`` command: its help and options, its tables and messages, as the docs spell it."""

import io
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_type_hints

import annotated_types
import pytest
import typer
from pydantic import BaseModel
from rich.console import Console
from typer.testing import CliRunner

from agentq import output
from agentq.cli import app
from agentq.client import ApiKey, AuthError, Execution, PluginInfo, Progress, Schedule
from agentq.commands import executions, schedules
from api.routes import executions as execution_routes
from api.routes import schedules as schedule_routes
from api.schedule_schemas import ScheduleCreate
from api.schemas import ExecutionCreate

ROOT = Path(__file__).resolve().parents[2]
ULID = "01KAV8W3Q5M2X9R7T4B6N8P0CD"
NOW = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "100", "AGENTQ_API_KEY": "k"})


# -- version and help ----------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    result = invoke("--version")

    assert result.exit_code == 0
    assert result.output.strip() == f"agentq {version('agentq')}"


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_shows_flags_as_flags() -> None:
    paths = list(_commands(typer.main.get_command(app)))
    assert ("schedules", "run") in paths
    assert ("keys", "list") in paths

    for path in paths:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
        assert "--help" in result.output


# -- options accept what the API accepts -------------------------------------------


def _accepts(metadata: list[Any], value: float) -> bool:
    checks: dict[type, Callable[[Any], bool]] = {
        annotated_types.Gt: lambda m: value > m.gt,
        annotated_types.Ge: lambda m: value >= m.ge,
        annotated_types.Lt: lambda m: value < m.lt,
        annotated_types.Le: lambda m: value <= m.le,
    }
    return all(checks[type(m)](m) for m in metadata if type(m) in checks)


def _field(model: type[BaseModel], name: str) -> list[Any]:
    return list(model.model_fields[name].metadata)


def _query(route: Callable[..., Any], name: str) -> list[Any]:
    return list(get_type_hints(route, include_extras=True)[name].__metadata__[0].metadata)


SUBMIT = ("submit", "echo", "echo")
ADD = ("schedules", "add", "nightly", "echo", "echo")
RANGES = [
    (SUBMIT, "--timeout", _field(ExecutionCreate, "timeout_s"), 0.5),
    (SUBMIT, "--priority", _field(ExecutionCreate, "priority"), 1),
    (SUBMIT, "--max-retries", _field(ExecutionCreate, "max_retries"), 1),
    ((*ADD, "--every", "60"), "--timeout", _field(ScheduleCreate, "timeout_s"), 0.5),
    ((*ADD, "--cron", "* * * * *"), "--priority", _field(ScheduleCreate, "priority"), 1),
    (ADD, "--every", _field(ScheduleCreate, "interval_s"), 0.5),
    ((*ADD, "--every", "60"), "--jitter", _field(ScheduleCreate, "jitter_s"), 0.5),
    (("list",), "--limit", _query(execution_routes.read_executions, "limit"), 1),
    (("schedules", "list"), "--limit", _query(schedule_routes.read_schedules, "limit"), 1),
]


@pytest.mark.parametrize(("argv", "option", "metadata", "step"), RANGES, ids=lambda v: str(v))
def test_options_take_exactly_the_values_the_api_accepts(
    monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], option: str, metadata: list[Any], step: float
) -> None:
    # The request itself is not the point: a command that passes its checks stops there.
    for module in (executions, schedules):
        monkeypatch.setattr(module, "run", lambda _action, _as_json=False: None)
    bounds = [getattr(m, a) for m in metadata for a in ("gt", "ge", "lt", "le") if hasattr(m, a)]
    assert bounds, metadata

    for bound in bounds:
        for value in (bound - step, bound, bound + step):
            shown = str(value) if step < 1 else str(int(value))
            result = invoke(*argv, option, shown)
            expected = 0 if _accepts(metadata, value) else 2
            assert result.exit_code == expected, (option, shown, result.output)


# -- tables ----------------------------------------------------------------------------


def _execution(status: str) -> Execution:
    return Execution(
        id=ULID,
        plugin="simulate",
        command="run",
        status=status,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        progress=Progress(percent=66.7, message="step 2 of 3 done"),
    )


def _schedule(name: str = "nightly-news-digest", cron: str = "*/15 * * * *") -> Schedule:
    return Schedule(
        id=ULID,
        name=name,
        plugin="news",
        command="latest",
        cron=cron,
        timezone="Europe/Berlin",
        created_at=NOW,
        updated_at=NOW,
        next_run_at=NOW,
        next_fire_times=[NOW, NOW.replace(hour=2)],
    )


KEY = ApiKey(
    id=ULID, name="ci-robot-for-the-nightly-build", prefix="aq_Xb3k9Qz", created_at=NOW, revoked_at=NOW
)
STATUSES = ["succeeded", "timed_out", "cancelled", "running", "succeeded"]


@pytest.fixture
def piped(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stdout is a pipe, 80 columns wide as Rich assumes then."""
    file = io.StringIO()
    monkeypatch.setattr(output, "out", Console(file=file, width=80, highlight=False))
    return file


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], io.StringIO]:
    def at(width: int) -> io.StringIO:
        file = io.StringIO()
        console = Console(file=file, width=width, force_terminal=True, color_system=None, highlight=False)
        monkeypatch.setattr(output, "out", console)
        return file

    return at


def test_piped_tables_are_whole_tab_separated_rows(piped: io.StringIO) -> None:
    output.executions([_execution(status) for status in STATUSES], None)
    output.keys([KEY])
    output.schedules([_schedule()], None)

    lines = piped.getvalue().splitlines()
    assert lines[0].split("\t") == ["ID", "PLUGIN/COMMAND", "STATUS", "PROGRESS", "CREATED (UTC)", "TOOK"]
    assert [line.split("\t")[2] for line in lines[1:6]] == STATUSES
    assert sum("succeeded" in line for line in lines) == 2  # what `| grep -c succeeded` counts
    assert lines[1].split("\t")[3] == "67% step 2 of 3 done"
    assert lines[7].split("\t")[1] == KEY.name
    assert lines[9].split("\t")[3] == "*/15 * * * *"
    assert "…" not in piped.getvalue()


def _rows_with(text: str, lines: list[str]) -> list[str]:
    return [line for line in lines if text in line]


@pytest.mark.parametrize("width", [80, 60])
def test_terminal_tables_never_cut_ids_statuses_or_crons(
    terminal: Callable[[int], io.StringIO], width: int
) -> None:
    shown = terminal(width)
    output.executions([_execution(status) for status in STATUSES], None)
    output.schedules([_schedule(cron="0 2 * * 1-5")], None)
    output.plugins([PluginInfo(name="simulate", commands=[{"name": "run", "description": "Wait. " * 30}])])

    lines = shown.getvalue().splitlines()
    assert "…" not in shown.getvalue()
    rows = _rows_with(ULID, lines)
    assert len(rows) == len(STATUSES) + 1
    for row, status in zip(rows, STATUSES, strict=False):
        assert re.search(rf"{ULID}\s.*\b{status}\b", row), row
    assert len(_rows_with("0 2 * * 1-5", lines)) == 1  # the cron on one line
    if width == 80:
        assert max(map(len, lines)) <= 80
        assert _rows_with("TOOK", lines)
        assert _rows_with(" ON ", lines)


@pytest.mark.parametrize("width", [80, 60])
def test_terminal_keys_table_keeps_the_name(terminal: Callable[[int], io.StringIO], width: int) -> None:
    shown = terminal(width)

    output.keys([KEY])

    lines = shown.getvalue().splitlines()
    (header,) = _rows_with("NAME", lines)
    start, end = header.index("NAME"), header.index("PREFIX")
    below = lines[lines.index(header) + 1 :]
    assert "".join(line[start:end].strip() for line in below) == KEY.name
    assert ULID in below[0]
    assert KEY.prefix in below[0]


# -- messages --------------------------------------------------------------------------


def test_schedule_add_prints_the_next_runs_in_its_zone(terminal: Callable[[int], io.StringIO]) -> None:
    shown = terminal(120)

    output.schedule(_schedule(cron="30 2 * * *"))

    lines = shown.getvalue().splitlines()
    assert "cron 30 2 * * * (Europe/Berlin)" in lines[0]
    # 01:30 UTC is 02:30 in Berlin in November (CET, UTC+1)
    assert lines[1:] == ["next: 2026-11-22 02:30:00 Europe/Berlin", "      2026-11-22 03:30:00 Europe/Berlin"]


def test_a_missing_key_says_to_set_agentq_api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTQ_API_KEY", raising=False)
    monkeypatch.delenv("AGENTQ_DATA_DIR", raising=False)
    shown = io.StringIO()
    monkeypatch.setattr(output, "err", Console(file=shown, width=200))
    refused = AuthError(401, "Unauthorized", "Missing bearer token.")

    output.http_error(refused, as_json=False)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin-api-key").write_text("aq_dev\n")
    output.http_error(refused, as_json=False)
    monkeypatch.setenv("AGENTQ_API_KEY", "aq_wrong")
    output.http_error(refused, as_json=False)

    lines = shown.getvalue().splitlines()
    assert "set AGENTQ_API_KEY to an API key" in lines[1]
    assert "set AGENTQ_API_KEY: export AGENTQ_API_KEY=$(cat var/admin-api-key)" in lines[3]
    assert "AGENTQ_API_KEY holds a key this API does not accept" in lines[5]


# -- the command as the docs spell it -------------------------------------------------


def _shell_commands(markdown: str) -> Iterator[list[str]]:
    """The commands of each ```sh block, one list per block: the words that start them."""
    for block in re.findall(r"^```(?:sh|bash|shell|console)\n(.*?)^```", markdown, re.M | re.S):
        starts = []
        for line in block.splitlines():
            for part in re.split(r"&&|\|\||[;|]|\$\(", line.split(" #")[0]):
                try:
                    words = shlex.split(part)
                except ValueError:  # a quote opened in another part
                    words = part.split()
                while words and re.match(r"^[A-Za-z_]+=", words[0]):
                    words.pop(0)  # VAR=value command
                if words:
                    starts.append(words[0])
        yield starts


def test_the_docs_spell_agentq_as_make_installs_it() -> None:
    # `make` installs the command into .venv/bin; a fresh clone has nothing else on the PATH.
    assert re.search(r"^VENV := \.venv$", (ROOT / "Makefile").read_text(), re.M)
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    spelled = []
    for doc in docs:
        for words in _shell_commands(doc.read_text()):
            # A block of production commands (celery, gunicorn) runs where agentq is installed.
            if {"celery", "gunicorn"} & set(words):
                continue
            spelled += [(doc.name, word) for word in words if Path(word).name == "agentq"]

    assert spelled, "no agentq command in the docs"
    assert [(doc, word) for doc, word in spelled if word != ".venv/bin/agentq"] == []


def test_the_command_as_spelled_runs_without_activating_the_venv() -> None:
    script = ROOT / ".venv" / "bin" / "agentq"
    if not script.is_file():
        pytest.skip("no .venv here: `make` makes it")
    env = {"PATH": os.defpath, "HOME": os.environ.get("HOME", "/tmp")}

    result = subprocess.run(
        [".venv/bin/agentq", "--version"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("agentq ")
