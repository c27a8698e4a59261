"""``agentq schedules``: add, list, rm, run; a schedule is named by its id or its name."""

import re
from contextlib import suppress
from typing import TYPE_CHECKING, Annotated

import typer

from agentq.remote import (
    MAX_INTERVAL_S,
    MAX_JITTER_S,
    MAX_PAGE,
    Command,
    Cursor,
    Group,
    Json,
    Limit,
    MaxRetries,
    Params,
    ParamsJson,
    Priority,
    Timeout,
    follow,
    parse_params,
    run,
)

if TYPE_CHECKING:
    from agentq.client import Client, Schedule

app = typer.Typer(help="Periodic agents: add, list, rm, run.", no_args_is_help=True, cls=Group)

ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}", re.IGNORECASE)
ScheduleRef = Annotated[str, typer.Argument(metavar="ID|NAME", help="The schedule's id or name.")]


def find(client: "Client", ref: str) -> "Schedule":
    """The schedule with this id, else the one with this name."""
    from agentq.client import NotFoundError

    if ULID.fullmatch(ref):
        with suppress(NotFoundError):
            return client.get_schedule(ref)
    named: list[Schedule] = []
    cursor = None
    while True:
        page = client.list_schedules(limit=MAX_PAGE, cursor=cursor)
        named += [found for found in page.schedules if found.name == ref]
        cursor = page.next_cursor
        if not cursor:
            break
    if not named:
        raise NotFoundError(404, "Not Found", f"No schedule has the id or name {ref!r}.")
    if len(named) > 1:
        # The admin key sees every key's schedules, and names are unique per key only.
        ids = ", ".join(found.id for found in named)
        raise typer.BadParameter(f"{len(named)} schedules are named {ref!r} ({ids}); give an id")
    return named[0]


@app.command("add", cls=Command)
def add(
    name: Annotated[str, typer.Argument(help="A name unique among your schedules.")],
    plugin: Annotated[str, typer.Argument()],
    command: Annotated[str, typer.Argument()],
    cron: Annotated[str | None, typer.Option(help="5-field cron, e.g. '*/15 * * * *'.")] = None,
    every: Annotated[
        float | None, typer.Option(min=1, max=MAX_INTERVAL_S, help="Seconds between runs (interval_s).")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone of the cron, e.g. Europe/Berlin (default UTC).")
    ] = None,
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
    jitter: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=MAX_JITTER_S,
            help="Spread each run over this many seconds after its slot (jitter_s), "
            "the same delay for a slot whichever beat fires it.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Add a schedule: give --cron or --every. Prints its next runs in its zone."""
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
            jitter_s=jitter,
        )
        if as_json:
            output.print_json(created)
        else:
            output.schedule(created)

    run(action, as_json)


@app.command("list", cls=Command)
def list_(limit: Limit = 50, cursor: Cursor = None, as_json: Json = False) -> None:
    """List schedules, newest first (tab-separated rows when piped)."""

    def action(client: "Client") -> None:
        from agentq import output

        page = client.list_schedules(limit=limit, cursor=cursor)
        if as_json:
            output.print_json(page)
        else:
            output.schedules(page.schedules, page.next_cursor)

    run(action, as_json)


@app.command("rm", cls=Command)
def remove(ref: ScheduleRef, as_json: Json = False) -> None:
    """Delete a schedule; the executions it created stay."""

    def action(client: "Client") -> None:
        from agentq import output

        found = find(client, ref)
        client.delete_schedule(found.id)
        if as_json:
            output.print_json({"id": found.id, "name": found.name, "deleted": True})
        else:
            output.out.print(f"deleted schedule {found.id} ({found.name})")

    run(action, as_json)


@app.command("run", cls=Command)
def run_now(
    ref: ScheduleRef,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the run ends.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run live.")] = False,
    as_json: Json = False,
) -> None:
    """Fire a schedule now."""

    def action(client: "Client") -> int:
        return follow(client, client.run_schedule(find(client, ref).id), as_json, wait=wait, watch=watch)

    run(action, as_json)
