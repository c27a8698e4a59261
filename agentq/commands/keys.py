"""``agentq keys``: create, list, revoke (with the admin key)."""

from typing import TYPE_CHECKING, Annotated

import typer

from agentq.remote import Command, Group, Json, run

if TYPE_CHECKING:
    from agentq.client import Client

app = typer.Typer(
    help="API keys (with the admin key): create, list, revoke.", no_args_is_help=True, cls=Group
)


@app.command("create", cls=Command)
def create(name: Annotated[str, typer.Argument(help="What the key is for.")], as_json: Json = False) -> None:
    """Create an API key; its secret is shown this once."""

    def action(client: "Client") -> None:
        from agentq import output

        created = client.create_key(name)
        if as_json:
            output.print_json(created)
        else:
            output.key_created(created)

    run(action, as_json)


@app.command("list", cls=Command)
def list_(as_json: Json = False) -> None:
    """Every key, revoked ones included; never their secrets (tab-separated rows when piped)."""

    def action(client: "Client") -> None:
        from agentq import output

        found = client.list_keys()
        if as_json:
            output.print_json(found)
        else:
            output.keys(found)

    run(action, as_json)


@app.command("revoke", cls=Command)
def revoke(key_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Revoke a key; it stops working within AGENTQ_KEY_CACHE_S."""

    def action(client: "Client") -> None:
        from agentq import output

        client.revoke_key(key_id)
        if as_json:
            output.print_json({"id": key_id, "revoked": True})
        else:
            output.out.print(f"revoked key {key_id}")

    run(action, as_json)
