"""``agentq webhooks``: subscribe a URL to this key's execution events, list, remove, and
see deliveries."""

from typing import TYPE_CHECKING, Annotated

import typer

from agentq.remote import Command, Group, Json, run

if TYPE_CHECKING:
    from agentq.client import Client

app = typer.Typer(
    help="Webhook subscriptions: add, list, rm; and their deliveries.", no_args_is_help=True, cls=Group
)


@app.command("add", cls=Command)
def add(
    url: Annotated[str, typer.Argument(help="Where the events are POSTed (http or https).")],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", "-e", help="execution.succeeded, .failed, .timed_out, .cancelled, .started (all)."
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: Json = False,
) -> None:
    """Subscribe URL to this key's execution events; its secret is shown this once."""

    def action(client: "Client") -> None:
        from agentq import output

        created = client.create_webhook(url, event, description=description)
        if as_json:
            output.print_json(created)
            return
        output.out.print(f"webhook [bold]{created.id}[/bold] → {created.url}; its secret, shown this once:")
        print(created.secret)  # on a line of its own, for copy and paste

    run(action, as_json)


@app.command("list", cls=Command)
def list_(as_json: Json = False) -> None:
    """This key's webhook endpoints (tab-separated rows when piped)."""

    def action(client: "Client") -> None:
        from agentq import output
        from agentq.tables import Column, render

        page = client.list_webhooks(limit=500)
        if as_json:
            output.print_json(page.webhooks)
            return
        columns = (Column("ID", keep=True), Column("URL"), Column("EVENTS"), Column("ENABLED", keep=True))
        rows = (
            (w.id, w.url, ", ".join(w.events), "yes" if w.enabled else f"no: {w.disabled_reason}")
            for w in page.webhooks
        )
        render(output.out, columns, rows)

    run(action, as_json)


@app.command("rm", cls=Command)
def rm(webhook_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False) -> None:
    """Delete a webhook endpoint; deliveries still due to it fail."""

    def action(client: "Client") -> None:
        from agentq import output

        client.delete_webhook(webhook_id)
        if as_json:
            output.print_json({"id": webhook_id, "deleted": True})
        else:
            output.out.print(f"deleted webhook {webhook_id}")

    run(action, as_json)


@app.command("deliveries", cls=Command)
def deliveries(
    webhook_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="A webhook endpoint's id.")] = None,
    execution: Annotated[str | None, typer.Option(help="An execution's deliveries instead.")] = None,
    as_json: Json = False,
) -> None:
    """Deliveries of an endpoint (or --execution), newest first, with their last attempt."""

    def action(client: "Client") -> None:
        from agentq import output
        from agentq.tables import Column, render

        if (webhook_id is None) == (execution is None):
            raise typer.BadParameter("give a webhook ID or --execution, one of the two")
        page = client.deliveries(webhook_id=webhook_id, execution_id=execution, limit=500)
        if as_json:
            output.print_json(page.deliveries)
            return
        columns = (
            *(Column("ID", keep=True), Column("EVENT"), Column("EXECUTION", keep=True)),
            *(Column("STATUS", keep=True), Column("ATTEMPTS", justify="right"), Column("LAST ANSWER")),
        )
        rows = []
        for d in page.deliveries:
            last = d.attempts[-1] if d.attempts else None
            answer = "" if last is None else str(last.status_code or last.error or "")
            rows.append((d.id, d.event, d.execution_id, d.status, str(len(d.attempts)), answer))
        render(output.out, columns, rows)

    run(action, as_json)
