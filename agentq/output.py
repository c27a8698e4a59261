"""How the ``agentq`` client commands show things: Rich tables and a live view, or JSON."""

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from agentq.client import (
    AgentqConnectionError,
    AgentqHTTPError,
    ApiKey,
    ApiKeyCreated,
    Client,
    Event,
    Execution,
    PluginInfo,
    Schedule,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

STYLE = {
    "queued": "cyan",
    "running": "blue",
    "retrying": "yellow",
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "magenta",
}
LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "red", "critical": "bold red"}


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """One JSON document on a line of stdout, for scripts."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [item.model_dump(mode="json") for item in value]
    sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _status(status: str) -> Text:
    return Text(status, style=STYLE.get(status, ""))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _duration(execution: Execution) -> str:
    if execution.started_at is None:
        return "—"
    end = execution.finished_at or datetime.now(UTC)
    return f"{(end - execution.started_at).total_seconds():.1f}s"


def _progress(execution: Execution) -> str:
    if execution.progress is None:
        return ""
    text = f"{execution.progress.percent:.0f}%"
    return f"{text} {execution.progress.message}".rstrip()


# -- executions --------------------------------------------------------------------


def execution(row: Execution) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("id", row.id)
    grid.add_row("plugin", f"{row.plugin} / {row.command}")
    grid.add_row("status", _status(row.status))
    grid.add_row("attempts", f"{row.attempts} of {row.max_retries + 1}")
    if row.progress is not None:
        grid.add_row("progress", _progress(row))
    if row.worker:
        grid.add_row("worker", row.worker)
    grid.add_row("created", _when(row.created_at))
    if row.started_at:
        grid.add_row("started", _when(row.started_at))
    if row.finished_at:
        grid.add_row("finished", f"{_when(row.finished_at)} ({_duration(row)})")
    if row.error is not None:
        grid.add_row("error", Text(f"{row.error.type}: {row.error.message}", style="red"))
    out.print(grid)
    if row.status == "succeeded":
        out.print_json(data=row.result)


def executions(rows: Sequence[Execution], next_cursor: str | None) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("PLUGIN / COMMAND", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("PROGRESS")
    table.add_column("CREATED", no_wrap=True)
    table.add_column("TOOK", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            row.id,
            f"{row.plugin}/{row.command}",
            _status(row.status),
            _progress(row),
            _when(row.created_at),
            _duration(row),
        )
    out.print(table)
    if next_cursor:
        err.print(f"[dim]more: --cursor {next_cursor}[/dim]")


def _event_line(event: Event) -> Text:
    at = Text(event.at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + " ", style="dim")
    data = event.data
    if event.kind == "log":
        level = str(data.get("level", "info"))
        return Text.assemble(at, (f"{level:<7} ", LEVEL_STYLE.get(level, "")), str(data.get("message", "")))
    if event.kind == "status":
        status = str(data.get("status", ""))
        line = Text.assemble(at, ("● ", STYLE.get(status, "")), _status(status))
        if data.get("attempt"):
            line.append(f"  attempt {data['attempt']}")
        if data.get("worker"):
            line.append(f" on {data['worker']}")
        error = data.get("error")
        if isinstance(error, dict):
            line.append(f"  {error.get('type')}: {error.get('message')}", style=STYLE.get(status, ""))
        return line
    return Text.assemble(at, f"progress {data.get('percent', 0):.0f}% {data.get('message', '')}")


def watch(client: Client, execution_id: str) -> Execution:
    """Follow an execution: a progress bar, with status changes and log lines above it."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[message]}"),
        TimeElapsedColumn(),
        console=out,
    )
    with progress:
        task = progress.add_task(execution_id, total=100, message="")
        for event in client.events(execution_id):
            if event.kind == "progress":
                percent = float(event.data.get("percent", 0))
                progress.update(task, completed=percent, message=str(event.data.get("message", "")))
            else:
                progress.console.print(_event_line(event))
            if event.status:
                progress.update(task, description=f"{execution_id} {event.status}")
            if event.terminal:
                if event.status == "succeeded":
                    progress.update(task, completed=100)
                progress.stop_task(task)
    return client.get(execution_id)


def watch_json(client: Client, execution_id: str) -> Execution:
    """Follow an execution as JSON lines, one event each."""
    for event in client.events(execution_id):
        print_json(event)
    return client.get(execution_id)


# -- plugins, schedules, keys ------------------------------------------------------


def _params_summary(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    names = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type") or "/".join(
            str(s.get("type")) for s in spec.get("anyOf", []) if isinstance(s, dict) and s.get("type")
        )
        names.append(f"{name}{'*' if name in required else ''}" + (f": {kind}" if kind else ""))
    if schema.get("additionalProperties", True) is not False and not names:
        return "any object"
    return ", ".join(names)


def plugins(rows: Sequence[PluginInfo]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("PLUGIN", no_wrap=True)
    table.add_column("COMMAND", no_wrap=True)
    table.add_column("DESCRIPTION")
    table.add_column("PARAMS (* required)")
    for plugin in rows:
        for cmd in plugin.commands:
            table.add_row(
                plugin.name,
                cmd.name,
                cmd.description or plugin.description,
                _params_summary(cmd.params_schema),
            )
    out.print(table)


def _timing(schedule: Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron} ({schedule.timezone})"
    return f"every {schedule.interval_s:g}s"


def schedules(rows: Sequence[Schedule], next_cursor: str | None) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME")
    table.add_column("PLUGIN / COMMAND", no_wrap=True)
    table.add_column("TIMING")
    table.add_column("ENABLED")
    table.add_column("NEXT RUN", no_wrap=True)
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            f"{row.plugin}/{row.command}",
            _timing(row),
            "yes" if row.enabled else "no",
            _when(row.next_run_at),
        )
    out.print(table)
    if next_cursor:
        err.print(f"[dim]more: --cursor {next_cursor}[/dim]")


def schedule(row: Schedule) -> None:
    out.print(f"schedule [bold]{row.id}[/bold] {row.name}: {row.plugin}/{row.command}, {_timing(row)}")
    if row.next_fire_times:
        out.print("next: " + ", ".join(_when(t) for t in row.next_fire_times[:3]))


def keys(rows: Sequence[ApiKey]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ID", "NAME", "PREFIX", "CREATED", "REVOKED"):
        table.add_column(name, no_wrap=name != "NAME")
    for row in rows:
        table.add_row(row.id, row.name, row.prefix, _when(row.created_at), _when(row.revoked_at))
    out.print(table)


def key_created(row: ApiKeyCreated) -> None:
    out.print(f"key [bold]{row.id}[/bold] ({row.name}); its secret, shown this once:")
    # Plain print: the secret on a line of its own, never wrapped, for copy and paste.
    print(row.key)


# -- errors ------------------------------------------------------------------------


def http_error(exc: AgentqHTTPError, as_json: bool) -> None:
    if as_json:
        print_json(exc.body or {"status": exc.status, "title": exc.title, "detail": exc.detail})
    message = Text.assemble(("error: ", "bold red"), f"{exc.status} {exc.title}: {exc.detail}")
    err.print(message)
    for problem in exc.errors:
        loc = ".".join(str(part) for part in problem.get("loc", []))
        err.print(Text(f"  {loc}: {problem.get('msg', '')}"))
    if exc.retry_after is not None:
        err.print(Text(f"  try again in {exc.retry_after:g}s"))


def connection_error(exc: AgentqConnectionError) -> None:
    err.print(Text.assemble(("error: ", "bold red"), str(exc)))
    err.print(Text("  Is the API running? Set AGENTQ_URL to where it listens."))
