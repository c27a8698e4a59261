"""The plugin catalog: the commands workers offer, which the API validates and lists from."""

from collections.abc import Sequence

from sqlalchemy import select

from agentq.core.db import session_scope
from agentq.core.models import PluginCommand


def publish_catalog(entries: Sequence[PluginCommand]) -> None:
    """Upsert the plugin commands a worker offers."""
    with session_scope() as session:
        for entry in entries:
            session.merge(entry)


def read_catalog() -> list[PluginCommand]:
    with session_scope() as session:
        return list(
            session.scalars(select(PluginCommand).order_by(PluginCommand.plugin, PluginCommand.command))
        )
