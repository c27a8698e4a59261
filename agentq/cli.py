"""The ``agentq`` command.

Each command imports its implementation when it runs, so ``agentq --help`` stays fast and
works even when the settings are invalid. Groups of commands (``keys``, ...) join as
sub-apps: ``app.add_typer(keys_app, name="keys")``. ``dev`` and ``migrate`` run agentq
itself; the commands from ``agentq.remote`` talk to a running agentq over HTTP.
"""

from typing import Annotated

import typer

from agentq import remote

app = typer.Typer(
    cls=remote.Group,
    name="agentq",
    help="Distributed task-queue workers for AI agent executions.",
    epilog=(
        "Client commands talk to AGENTQ_URL (default http://127.0.0.1:8000) with AGENTQ_API_KEY. "
        "Exit codes: 0 succeeded, 1 failed, 2 usage, 3 timed out, 4 cancelled, 5 API error, 6 unreachable."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Plain tracebacks: rich's boxed ones with every SQLAlchemy frame bury the message.
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("agentq")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown"
        typer.echo(f"agentq {found}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


@app.command(cls=remote.Command)
def dev() -> None:
    """Run the API, a worker, beat and Flower locally on an embedded Redis and SQLite.

    Listens on 127.0.0.1 (API on AGENTQ_API_PORT, Flower on AGENTQ_FLOWER_PORT) and keeps
    its files under AGENTQ_DATA_DIR. Ctrl-C stops everything.
    """
    from agentq.core.settings import settings
    from agentq.dev import DevStack

    raise typer.Exit(DevStack(settings).run())


@app.command(cls=remote.Command)
def migrate(
    revision: str = typer.Argument("head", help="Alembic revision to upgrade to."),
) -> None:
    """Upgrade the database schema (alembic upgrade head) at AGENTQ_DATABASE_URL."""
    from agentq.migrate import upgrade

    upgrade(revision)


@app.command("beat-health", cls=remote.Command)
def beat_health() -> None:
    """Exit 0 while a beat holds the beat lock, naming it; 1 when none does (schedules do not fire).

    Reads the lock in Redis at AGENTQ_REDIS_URL: usable as beat's container healthcheck.
    """
    import redis

    from agentq.core.leadership import holder
    from agentq.core.settings import settings

    try:
        found = holder(redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5))
    except redis.RedisError as exc:
        typer.echo(f"cannot read the beat lock in Redis: {exc}", err=True)
        raise typer.Exit(1) from None
    if found is None:
        typer.echo("no beat holds the beat lock: schedules are not firing", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"beat {found.name} holds the beat lock (expires in {found.expires_in_s:.1f} s unless renewed)"
    )


remote.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
