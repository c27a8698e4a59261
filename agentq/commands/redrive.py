"""``agentq retry``: run failed, timed-out or cancelled executions again, by id or by filter."""

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from agentq.remote import ExitCode, Json, run

if TYPE_CHECKING:
    from agentq.client import Client, Execution

RETRYABLE = ("failed", "timed_out", "cancelled")
MAX_RETRY_BATCH = 1000  # the API's bound (agentq.core.store.MAX_RETRY_BATCH)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")

_WHEN = "a duration ago (90s, 30m, 1h, 2d, 1w) or a time (2026-12-07T09:00Z, UTC without an offset)"
Since = Annotated[str | None, typer.Option(metavar="WHEN", help=f"Only those created since: {_WHEN}.")]
Until = Annotated[str | None, typer.Option(metavar="WHEN", help=f"Only those created before: {_WHEN}.")]


def parse_when(text: str, option: str, now: datetime | None = None) -> datetime:
    """``1h`` (that long before ``now``) or an ISO 8601 time (UTC when it has no offset)."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(ago[1]) * _UNITS[ago[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (90s, 30m, 1h, 2d, 1w) nor a time (2026-12-07T09:00Z)",
            param_hint=option,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def retry(
    execution_ids: Annotated[
        list[str] | None, typer.Argument(metavar="ID", help="The executions to run again.")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            metavar="STATUS", help=f"Only this status: {', '.join(RETRYABLE)}; repeatable (default all)."
        ),
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only this plugin.")] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_RETRY_BATCH, help="At most this many, oldest first (default 100)."),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retrying with the same key again answers the first retry.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Run failed, timed-out or cancelled executions again, as new executions.

    Give ids (agentq retry ID...), or a filter of the key's own executions
    (agentq retry --status failed --plugin news --since 1h). Each retry is a new
    execution whose retry_of is the original; retrying an original twice runs it twice.
    """
    filtered = any(v is not None for v in (status, plugin, since, until, limit))
    if execution_ids and filtered:
        raise typer.BadParameter(
            "give execution ids or a filter (--status, --plugin, --since, --until, --limit), not both"
        )
    if not execution_ids and not filtered:
        raise typer.BadParameter("give execution ids, or a filter: --status, --plugin, --since, --until")
    if execution_ids and len(execution_ids) > 1 and idempotency_key:
        raise typer.BadParameter("takes one execution id (or a filter)", param_hint="--idempotency-key")
    for value in status or []:
        if value not in RETRYABLE:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(RETRYABLE)}", param_hint="--status")
    after = parse_when(since, "--since") if since else None
    before = parse_when(until, "--until") if until else None

    def action(client: "Client") -> int:
        if execution_ids:
            return _each(client, execution_ids, idempotency_key, as_json)
        found = client.retry_many(
            status=status,
            plugin=plugin,
            created_after=after,
            created_before=before,
            limit=limit,
            idempotency_key=idempotency_key,
        )
        _show(found, as_json)
        return ExitCode.OK

    run(action, as_json)


def _each(client: "Client", execution_ids: list[str], key: str | None, as_json: bool) -> int:
    """Retry each id; one that cannot be retried is reported, and the others still are."""
    from agentq import output
    from agentq.client import AgentqHTTPError

    done, code = [], ExitCode.OK
    for execution_id in execution_ids:
        try:
            done.append(client.retry(execution_id, idempotency_key=key))
        except AgentqHTTPError as exc:
            output.http_error(exc, as_json)
            code = ExitCode.API_ERROR
    _show(done, as_json)
    return code


def _show(executions: "list[Execution]", as_json: bool) -> None:
    from agentq import output

    if as_json:
        for execution in executions:
            output.print_json(execution)
    elif executions:
        output.retries(executions)
    else:
        output.err.print("nothing to retry: no execution matched")
