"""``agentq limits``: set, list and remove the limits of this key's concurrency keys."""

from typing import TYPE_CHECKING, Annotated

import typer

from agentq.remote import Command, Group, Json, run

if TYPE_CHECKING:
    from agentq.client import Client

app = typer.Typer(
    help="Concurrency limits of this key's concurrency keys: set, list, rm.", no_args_is_help=True, cls=Group
)
Key = Annotated[str, typer.Argument(metavar="CONCURRENCY_KEY", help="The `concurrency_key` of executions.")]


@app.command("set", cls=Command)
def set_(
    key: Key,
    max_running: Annotated[int, typer.Argument(min=1, help="How many of them may run at once.")],
    as_json: Json = False,
) -> None:
    """Let at most MAX_RUNNING executions with CONCURRENCY_KEY run at once."""

    def action(client: "Client") -> None:
        from agentq import output

        limit = client.set_limit(key, max_running)
        if as_json:
            output.print_json(limit)
        else:
            output.limits([limit])

    run(action, as_json)


@app.command("list", cls=Command)
def list_(as_json: Json = False) -> None:
    """This key's limits, with how many of their executions run and wait now."""

    def action(client: "Client") -> None:
        from agentq import output

        found = client.list_limits()
        if as_json:
            output.print_json(found)
        else:
            output.limits(found)

    run(action, as_json)


@app.command("rm", cls=Command)
def rm(key: Key, as_json: Json = False) -> None:
    """Remove a limit: executions with that key then run as if they had none."""

    def action(client: "Client") -> None:
        from agentq import output

        client.delete_limit(key)
        if as_json:
            output.print_json({"concurrency_key": key, "removed": True})
        else:
            output.out.print(f"removed the limit on {key}")

    run(action, as_json)
