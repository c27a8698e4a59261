"""How the ``agentq`` client commands show things: Rich tables (plain rows in a pipe), or JSON."""

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentq.client import (
    AgentqConnectionError,
    AgentqHTTPError,
    ApiKey,
    ApiKeyCreated,
    Execution,
    Limit,
    PluginInfo,
    Schedule,
)
from agentq.tables import Column, render

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


def status_text(status: str) -> Text:
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
    grid.add_row("status", status_text(row.status))
    grid.add_row("attempts", f"{row.attempts} of {row.max_retries + 1}")
    if row.retry_of:
        grid.add_row("retry of", row.retry_of)
    if row.progress is not None:
        grid.add_row("progress", _progress(row))
    if row.worker:
        grid.add_row("worker", row.worker)
    grid.add_row("created", f"{_when(row.created_at)} UTC")
    if row.started_at:
        grid.add_row("started", f"{_when(row.started_at)} UTC")
    if row.finished_at:
        grid.add_row("finished", f"{_when(row.finished_at)} UTC ({_duration(row)})")
    if row.error is not None:
        grid.add_row("error", Text(f"{row.error.type}: {row.error.message}", style="red"))
    out.print(grid)
    if row.status == "succeeded":
        out.print_json(data=row.result)


def executions(rows: Sequence[Execution], next_cursor: str | None) -> None:
    columns = (
        Column("ID", keep=True),
        Column("PLUGIN/COMMAND"),
        Column("STATUS", keep=True),
        Column("PROGRESS"),
        Column("CREATED (UTC)"),
        Column("TOOK", keep=True, justify="right"),
    )
    render(
        out,
        columns,
        (
            (
                row.id,
                f"{row.plugin}/{row.command}",
                status_text(row.status),
                _progress(row),
                _when(row.created_at),
                _duration(row),
            )
            for row in rows
        ),
    )
    if next_cursor:
        err.print(f"[dim]more: --cursor {next_cursor}[/dim]")


def retries(rows: Sequence[Execution]) -> None:
    """New executions that run others again, each beside its original."""
    columns = (
        Column("ID", keep=True),
        Column("RETRY OF", keep=True),
        Column("PLUGIN/COMMAND"),
        Column("STATUS", keep=True),
    )
    render(
        out,
        columns,
        (
            (row.id, row.retry_of or "—", f"{row.plugin}/{row.command}", status_text(row.status))
            for row in rows
        ),
    )


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
    columns = (
        Column("PLUGIN", keep=True),
        Column("COMMAND", keep=True),
        Column("DESCRIPTION"),
        Column("PARAMS (* required)"),
    )
    render(
        out,
        columns,
        (
            (plugin.name, cmd.name, cmd.description or plugin.description, _params_summary(cmd.params_schema))
            for plugin in rows
            for cmd in plugin.commands
        ),
    )


def _timing(schedule: Schedule) -> str:
    return schedule.cron if schedule.cron else f"every {schedule.interval_s:g}s"


def _zoned(value: datetime | None, zone: str) -> str:
    """A time in the schedule's zone, with the zone's name (UTC if this machine lacks it)."""
    if value is None:
        return "—"
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz, zone = ZoneInfo("UTC"), "UTC"
    return f"{value.astimezone(tz):%Y-%m-%d %H:%M:%S} {zone}"


def schedules(rows: Sequence[Schedule], next_cursor: str | None) -> None:
    columns = (
        Column("ID", keep=True),
        Column("NAME"),
        Column("PLUGIN/COMMAND"),
        Column("CRON/EVERY", keep=True),
        Column("ON", keep=True),
        Column("NEXT RUN"),
    )
    render(
        out,
        columns,
        (
            (
                row.id,
                row.name,
                f"{row.plugin}/{row.command}",
                _timing(row),
                "yes" if row.enabled else "no",
                _zoned(row.next_run_at, row.timezone),
            )
            for row in rows
        ),
    )
    if next_cursor:
        err.print(f"[dim]more: --cursor {next_cursor}[/dim]")


def schedule(row: Schedule) -> None:
    timing = f"cron {row.cron} ({row.timezone})" if row.cron else _timing(row)
    if row.jitter_s:
        timing += f", each run up to {row.jitter_s:g}s after its slot"
    out.print(f"schedule [bold]{row.id}[/bold] {row.name}: {row.plugin}/{row.command}, {timing}")
    if not row.enabled:
        out.print("disabled: it fires only when run by hand")
    elif row.next_fire_times:
        for label, at in zip(("next:", "", ""), row.next_fire_times, strict=False):
            out.print(f"{label:<6}{_zoned(at, row.timezone)}")


def keys(rows: Sequence[ApiKey]) -> None:
    columns = (
        Column("ID", keep=True),
        Column("NAME"),
        Column("PREFIX", keep=True),
        Column("CREATED (UTC)"),
        Column("REVOKED (UTC)"),
    )
    render(
        out,
        columns,
        ((row.id, row.name, row.prefix, _when(row.created_at), _when(row.revoked_at)) for row in rows),
    )


def limits(rows: Sequence[Limit]) -> None:
    columns = (
        Column("CONCURRENCY KEY", keep=True),
        Column("MAX RUNNING", keep=True),
        Column("RUNNING", keep=True),
        Column("WAITING", keep=True),
    )
    render(
        out, columns, ((r.concurrency_key, str(r.max_running), str(r.running), str(r.waiting)) for r in rows)
    )


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
    if exc.status == 401:
        err.print(Text(f"  {_key_hint()}"))


def _key_hint() -> str:
    if os.environ.get("AGENTQ_API_KEY"):
        return "AGENTQ_API_KEY holds a key this API does not accept (revoked, or another server's?)"
    # `agentq dev` keeps its admin key in its data directory.
    dev_key = Path(os.environ.get("AGENTQ_DATA_DIR") or "var") / "admin-api-key"
    if dev_key.is_file():
        return f"set AGENTQ_API_KEY: export AGENTQ_API_KEY=$(cat {dev_key})"
    return "set AGENTQ_API_KEY to an API key"


def connection_error(exc: AgentqConnectionError) -> None:
    err.print(Text.assemble(("error: ", "bold red"), str(exc)))
    err.print(Text("  Is the API running? Set AGENTQ_URL to where it listens."))
