"""What the ``agentq`` commands that talk to a running agentq over HTTP share.

The commands themselves are in ``agentq.commands`` (executions, schedules, keys). They
read AGENTQ_URL (default http://127.0.0.1:8000) and AGENTQ_API_KEY. Exit codes, so that
scripts can tell outcomes apart (``--json`` prints JSON instead of tables):

    0  succeeded, or the command did what it was asked
    1  the execution failed
    2  usage error (a bad option or argument)
    3  the execution timed out
    4  the execution was cancelled
    5  the API answered with an error (problem+json: not found, invalid, unauthorized, ...)
    6  the API could not be reached
"""

import enum
import json
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from agentq.client import Client, Execution


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    TIMED_OUT = 3
    CANCELLED = 4
    API_ERROR = 5
    UNREACHABLE = 6
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


OUTCOME = {"failed": ExitCode.FAILED, "timed_out": ExitCode.TIMED_OUT, "cancelled": ExitCode.CANCELLED}
STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "timed_out", "cancelled")
# The API's bounds (api/schemas.py, api/schedule_schemas.py; agentq.core.settings.MAX_TIMEOUT_S), kept here so that
# `agentq --help` imports no settings; tests/unit/test_cli.py holds them equal.
MAX_TIMEOUT_S = 3600
MAX_INTERVAL_S = 366 * 24 * 3600
MAX_JITTER_S = 24 * 3600
MAX_PAGE = 500


# -- help ---------------------------------------------------------------------------


def _untyped_flags(params: list[Any]) -> None:
    # Typer's rich help gives every option a type column, flags included (`--wait <bool>`);
    # an empty metavar leaves a flag's blank, as click's plain help does.
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


class Command(TyperCommand):
    """A command whose help shows flags as flags."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untyped_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    """A group of commands whose help shows flags as flags."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untyped_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


# -- options shared by several commands ---------------------------------------------


def _timeout(value: float | None) -> float | None:
    if value is not None and not 0 < value <= MAX_TIMEOUT_S:
        raise typer.BadParameter(f"{value:g} is not in 0<x<={MAX_TIMEOUT_S}")
    return value


Json = Annotated[bool, typer.Option("--json", help="Print JSON (one document per line) for scripts.")]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="A param; VALUE is read as JSON when it parses (2, true, [1]), else as a string. Repeatable.",
    ),
]
ParamsJson = Annotated[
    str | None, typer.Option("--params-json", metavar="JSON", help="All params as a JSON object.")
]
Priority = Annotated[int | None, typer.Option(min=0, max=9, help="9 runs first.")]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        callback=_timeout,
        help=f"Seconds before the execution is stopped (timeout_s), 0<x<={MAX_TIMEOUT_S}.",
    ),
]
MaxRetries = Annotated[int | None, typer.Option(min=0, max=100, help="Retries after the first attempt.")]
Limit = Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="At most this many.")]
Cursor = Annotated[str | None, typer.Option(help="Continue after a previous page.")]
Wait = Annotated[bool, typer.Option("--wait", help="Wait until it ends; the exit code tells how.")]
Watch = Annotated[bool, typer.Option("--watch", help="Follow it live until it ends.")]


def outcome(execution: "Execution") -> int:
    """The exit code for an execution: its outcome once terminal, else 0."""
    return int(OUTCOME.get(execution.status, ExitCode.OK))


def parse_params(pairs: list[str] | None, params_json: str | None) -> dict[str, Any]:
    """``--params-json`` first, then each ``--param KEY=VALUE`` over it."""
    params: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params-json") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--params-json")
        params.update(loaded)
    for pair in pairs or []:
        key, eq, raw = pair.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


# -- running a command --------------------------------------------------------------


def run(action: "Callable[[Client], int | None]", as_json: bool = False) -> NoReturn:
    """Run ``action`` with a client; errors become messages and exit codes."""
    from agentq import output
    from agentq.client import AgentqConnectionError, AgentqHTTPError, Client

    try:
        with Client() as client:
            code = action(client) or ExitCode.OK
    except AgentqHTTPError as exc:
        output.http_error(exc, as_json)
        code = ExitCode.API_ERROR
    except AgentqConnectionError as exc:
        output.connection_error(exc)
        code = ExitCode.UNREACHABLE
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    raise typer.Exit(int(code))


def show(execution: "Execution", as_json: bool) -> None:
    from agentq import output

    if as_json:
        output.print_json(execution)
    else:
        output.execution(execution)


def follow(client: "Client", execution: "Execution", as_json: bool, *, wait: bool, watch: bool) -> int:
    """After a submit: show it, or wait for it (quietly or live); the code tells the outcome."""
    from agentq import live, output

    if watch:
        if not as_json:
            output.err.print(f"[dim]submitted {execution.id}[/dim]")
        final = live.watch_json(client, execution.id) if as_json else live.watch(client, execution.id)
        if not as_json:
            output.execution(final)
        return outcome(final)
    if wait:
        with nullcontext() if as_json else output.err.status(f"waiting for {execution.id}"):
            execution = client.wait(execution.id)
        show(execution, as_json)
        return outcome(execution)
    show(execution, as_json)
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``agentq`` app."""
    from agentq.commands import executions, keys, limits, redrive, schedules, webhooks

    for fn in (executions.submit, executions.get, executions.watch, executions.cancel, redrive.retry):
        app.command(cls=Command)(fn)
    app.command(cls=Command)(executions.plugins)
    app.command("list", cls=Command)(executions.list_)
    app.add_typer(schedules.app, name="schedules")
    app.add_typer(keys.app, name="keys")
    app.add_typer(webhooks.app, name="webhooks")
    app.add_typer(limits.app, name="limits")
