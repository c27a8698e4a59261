"""``agentq watch``: an execution followed live, as a progress bar or as JSON lines."""

from datetime import UTC

from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from agentq.client import Client, Event, Execution
from agentq.output import STYLE, out, print_json, status_text

LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "red", "critical": "bold red"}


def _event_line(event: Event) -> Text:
    at = Text(event.at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] + " ", style="dim")
    data = event.data
    if event.kind == "log":
        level = str(data.get("level", "info"))
        return Text.assemble(at, (f"{level:<7} ", LEVEL_STYLE.get(level, "")), str(data.get("message", "")))
    if event.kind == "status":
        status = str(data.get("status", ""))
        line = Text.assemble(at, ("● ", STYLE.get(status, "")), status_text(status))
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
