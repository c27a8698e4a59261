"""The ``agentq`` commands that talk to a running agentq over HTTP (``agentq.client``).

They read AGENTQ_URL (default http://127.0.0.1:8000) and AGENTQ_API_KEY. Exit codes, so
that scripts can tell outcomes apart (``--json`` prints JSON instead of tables):

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
Priority = Annotated[int | None, typer.Option(min=0, max=9, help="0–9, 9 runs first.")]
Timeout = Annotated[
    float | None,
    typer.Option("--timeout", min=0, help="Seconds before the execution is stopped (timeout_s)."),
]
MaxRetries = Annotated[int | None, typer.Option(min=0, max=100, help="Retries after the first attempt.")]
ExecutionId = Annotated[str, typer.Argument(metavar="ID", help="The execution's id.")]


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


def _run(action: "Callable[[Client], int | None]", as_json: bool = False) -> NoReturn:
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


def _show(execution: "Execution", as_json: bool) -> None:
    from agentq import output

    if as_json:
        output.print_json(execution)
    else:
        output.execution(execution)


def _follow(client: "Client", execution: "Execution", as_json: bool, *, wait: bool, watch: bool) -> int:
    """After a submit: show it, or wait for it (quietly or live); the code tells the outcome."""
    from agentq import output

    if watch:
        if not as_json:
            output.err.print(f"[dim]submitted {execution.id}[/dim]")
        final = output.watch_json(client, execution.id) if as_json else output.watch(client, execution.id)
        if not as_json:
            output.execution(final)
        return outcome(final)
    if wait:
        with nullcontext() if as_json else output.err.status(f"waiting for {execution.id}"):
            execution = client.wait(execution.id)
        _show(execution, as_json)
        return outcome(execution)
    _show(execution, as_json)
    return ExitCode.OK


# -- executions --------------------------------------------------------------------


def submit(
    plugin: Annotated[str, typer.Argument(help="The plugin, e.g. echo or simulate.")],
    command: Annotated[str, typer.Argument(help="One of its commands, e.g. run.")],
    param: Params = None,
    params_json: ParamsJson = None,
    priority: Priority = None,
    timeout: Timeout = None,
    max_retries: MaxRetries = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting the same key again returns the first execution.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it ends; the exit code tells how.")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow it live until it ends.")] = False,
    as_json: Json = False,
) -> None:
    """Submit an execution."""
    params = parse_params(param, params_json)

    def action(client: "Client") -> int:
        execution = client.submit(
            plugin,
            command,
            params,
            priority=priority,
            timeout_s=timeout,
            max_retries=max_retries,
            idempotency_key=idempotency_key,
        )
        return _follow(client, execution, as_json, wait=wait, watch=watch)

    _run(action, as_json)


def get(
    execution_id: ExecutionId,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it ends.")] = False,
    as_json: Json = False,
) -> None:
    """Show an execution; once it has ended, the exit code tells how."""

    def action(client: "Client") -> int:
        execution = client.wait(execution_id) if wait else client.get(execution_id)
        _show(execution, as_json)
        return outcome(execution)

    _run(action, as_json)


def watch(execution_id: ExecutionId, as_json: Json = False) -> None:
    """Follow an execution live: progress bar, status changes, log lines; the exit code tells how it ended."""

    def action(client: "Client") -> int:
        from agentq import output

        if as_json:
            return outcome(output.watch_json(client, execution_id))
        final = output.watch(client, execution_id)
        output.execution(final)
        return outcome(final)

    _run(action, as_json)


def list_(
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(STATUSES)}.", metavar="STATUS")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin.")] = None,
    schedule: Annotated[str | None, typer.Option(help="Only what this schedule id fired.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue after a previous page.")] = None,
    as_json: Json = False,
) -> None:
    """List executions, newest first."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status")

    def action(client: "Client") -> None:
        from agentq import output

        page = client.list_executions(
            status=status, plugin=plugin, schedule_id=schedule, limit=limit, cursor=cursor
        )
        if as_json:
            output.print_json(page)
        else:
            output.executions(page.executions, page.next_cursor)

    _run(action, as_json)


def cancel(execution_id: ExecutionId, as_json: Json = False) -> None:
    """Cancel a queued or running execution."""
    _run(lambda client: _show(client.cancel(execution_id), as_json), as_json)


def plugins(as_json: Json = False) -> None:
    """What the workers offer: plugins, their commands and params."""

    def action(client: "Client") -> None:
        from agentq import output

        found = client.plugins()
        if as_json:
            output.print_json(found)
        else:
            output.plugins(found)

    _run(action, as_json)


# -- schedules ---------------------------------------------------------------------

schedules_app = typer.Typer(help="Periodic agents: add, list, rm, run.", no_args_is_help=True)


@schedules_app.command("add")
def add_schedule(
    name: Annotated[str, typer.Argument(help="A name unique among your schedules.")],
    plugin: Annotated[str, typer.Argument()],
    command: Annotated[str, typer.Argument()],
    cron: Annotated[str | None, typer.Option(help="5-field cron, e.g. '*/15 * * * *'.")] = None,
    every: Annotated[float | None, typer.Option(min=1, help="Seconds between runs (interval_s).")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone of the cron, e.g. Europe/Berlin.")] = None,
    param: Params = None,
    params_json: ParamsJson = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    missed_policy: Annotated[
        str | None, typer.Option(help="skip (default) or catch_up after downtime.")
    ] = None,
    overlap_policy: Annotated[
        str | None, typer.Option(help="allow (default), or skip a slot while a run is live.")
    ] = None,
    priority: Priority = None,
    timeout: Timeout = None,
    max_retries: MaxRetries = None,
    as_json: Json = False,
) -> None:
    """Add a schedule: give --cron or --every."""
    if (cron is None) == (every is None):
        raise typer.BadParameter("give exactly one of --cron or --every", param_hint="--cron/--every")
    params = parse_params(param, params_json)

    def action(client: "Client") -> None:
        from agentq import output

        created = client.create_schedule(
            name,
            plugin,
            command,
            params,
            cron=cron,
            interval_s=every,
            timezone=timezone,
            enabled=False if disabled else None,
            missed_policy=missed_policy,
            overlap_policy=overlap_policy,
            priority=priority,
            timeout_s=timeout,
            max_retries=max_retries,
        )
        if as_json:
            output.print_json(created)
        else:
            output.schedule(created)

    _run(action, as_json)


@schedules_app.command("list")
def list_schedules(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: Json = False,
) -> None:
    """List schedules, newest first."""

    def action(client: "Client") -> None:
        from agentq import output

        page = client.list_schedules(limit=limit, cursor=cursor)
        if as_json:
            output.print_json(page)
        else:
            output.schedules(page.schedules, page.next_cursor)

    _run(action, as_json)


@schedules_app.command("rm")
def remove_schedule(schedule_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Delete a schedule; the executions it created stay."""

    def action(client: "Client") -> None:
        from agentq import output

        client.delete_schedule(schedule_id)
        if as_json:
            output.print_json({"id": schedule_id, "deleted": True})
        else:
            output.out.print(f"deleted schedule {schedule_id}")

    _run(action, as_json)


@schedules_app.command("run")
def run_schedule(
    schedule_id: Annotated[str, typer.Argument(metavar="ID")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the run ends.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run live.")] = False,
    as_json: Json = False,
) -> None:
    """Fire a schedule now."""

    def action(client: "Client") -> int:
        return _follow(client, client.run_schedule(schedule_id), as_json, wait=wait, watch=watch)

    _run(action, as_json)


# -- keys --------------------------------------------------------------------------

keys_app = typer.Typer(help="API keys (with the admin key): create, list, revoke.", no_args_is_help=True)


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="What the key is for.")], as_json: Json = False
) -> None:
    """Create an API key; its secret is shown this once."""

    def action(client: "Client") -> None:
        from agentq import output

        created = client.create_key(name)
        if as_json:
            output.print_json(created)
        else:
            output.key_created(created)

    _run(action, as_json)


@keys_app.command("list")
def list_keys(as_json: Json = False) -> None:
    """Every key, revoked ones included; never their secrets."""

    def action(client: "Client") -> None:
        from agentq import output

        found = client.list_keys()
        if as_json:
            output.print_json(found)
        else:
            output.keys(found)

    _run(action, as_json)


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Revoke a key; it stops working within AGENTQ_KEY_CACHE_S."""

    def action(client: "Client") -> None:
        from agentq import output

        client.revoke_key(key_id)
        if as_json:
            output.print_json({"id": key_id, "revoked": True})
        else:
            output.out.print(f"revoked key {key_id}")

    _run(action, as_json)


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``agentq`` app."""
    for fn in (submit, get, watch, cancel, plugins):
        app.command()(fn)
    app.command("list")(list_)
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(keys_app, name="keys")
