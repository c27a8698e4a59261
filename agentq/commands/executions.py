"""``agentq submit``, ``get``, ``watch``, ``list``, ``cancel`` and ``plugins``."""

from typing import TYPE_CHECKING, Annotated

import typer

from agentq.remote import (
    STATUSES,
    Cursor,
    Json,
    Limit,
    MaxRetries,
    Params,
    ParamsJson,
    Priority,
    Timeout,
    Wait,
    Watch,
    follow,
    outcome,
    parse_params,
    run,
    show,
)

if TYPE_CHECKING:
    from agentq.client import Client

ExecutionId = Annotated[str, typer.Argument(metavar="ID", help="The execution's id.")]


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
    concurrency_key: Annotated[
        str | None, typer.Option(help="Count it against this key's limit (`agentq limits set`).")
    ] = None,
    delay: Annotated[
        float | None, typer.Option(min=0, help="Start it no sooner than this many seconds from now.")
    ] = None,
    wait: Wait = False,
    watch: Watch = False,
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
            concurrency_key=concurrency_key,
            delay_s=delay,
        )
        return follow(client, execution, as_json, wait=wait, watch=watch)

    run(action, as_json)


def get(
    execution_id: ExecutionId,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it ends.")] = False,
    as_json: Json = False,
) -> None:
    """Show an execution; once it has ended, the exit code tells how."""

    def action(client: "Client") -> int:
        execution = client.wait(execution_id) if wait else client.get(execution_id)
        show(execution, as_json)
        return outcome(execution)

    run(action, as_json)


def watch(execution_id: ExecutionId, as_json: Json = False) -> None:
    """Follow an execution live: progress bar, status changes, log lines; the exit code tells how it ended."""

    def action(client: "Client") -> int:
        from agentq import live, output

        if as_json:
            return outcome(live.watch_json(client, execution_id))
        final = live.watch(client, execution_id)
        output.execution(final)
        return outcome(final)

    run(action, as_json)


def list_(
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(STATUSES)}.", metavar="STATUS")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin.")] = None,
    schedule: Annotated[str | None, typer.Option(help="Only what this schedule id fired.")] = None,
    waiting: Annotated[
        bool, typer.Option("--waiting", help="Only those held back: by a full limit, or until their run_at.")
    ] = False,
    limit: Limit = 20,
    cursor: Cursor = None,
    as_json: Json = False,
) -> None:
    """List executions, newest first (tab-separated rows when piped)."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status")

    def action(client: "Client") -> None:
        from agentq import output

        page = client.list_executions(
            status=status,
            plugin=plugin,
            schedule_id=schedule,
            waiting=waiting or None,
            limit=limit,
            cursor=cursor,
        )
        if as_json:
            output.print_json(page)
        else:
            output.executions(page.executions, page.next_cursor)

    run(action, as_json)


def cancel(execution_id: ExecutionId, as_json: Json = False) -> None:
    """Cancel a queued or running execution."""
    run(lambda client: show(client.cancel(execution_id), as_json), as_json)


def plugins(as_json: Json = False) -> None:
    """What the workers offer: plugins, their commands and params."""

    def action(client: "Client") -> None:
        from agentq import output

        found = client.plugins()
        if as_json:
            output.print_json(found)
        else:
            output.plugins(found)

    run(action, as_json)
