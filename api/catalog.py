"""The plugin catalog as the API sees it: read from the database, cached for a moment.

Workers publish what they offer; the API validates submissions against the published
JSON Schemas without importing any plugin code.
"""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema_rs
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from agentq.core import db, store
from agentq.core.errors import InvalidParams, UnknownCommand, UnknownPlugin
from agentq.core.models import PluginCommand
from agentq.core.settings import settings


class Catalog:
    def __init__(
        self, ttl_s: float, load: Callable[[], Sequence[PluginCommand]] = store.read_catalog
    ) -> None:
        self._ttl_s = ttl_s
        self._load = load
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._entries: dict[tuple[str, str], PluginCommand] = {}
        # Per command: a compiled validator that accepts valid params quickly, and
        # jsonschema's, which words the problems of the others.
        self._validators: dict[tuple[str, str], tuple[jsonschema_rs.Validator, Validator]] = {}

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at > self._ttl_s

    async def refresh(self) -> None:
        """Read the catalog again if it is stale, on the event loop: a coroutine calls this
        before its first lookup; sync code (``db.run``) reads it as it looks up."""
        if self._stale():
            await db.run(self.entries)

    def entries(self) -> dict[tuple[str, str], PluginCommand]:
        if self._stale():
            # Not waited for: on the API's event loop the holder may be another request,
            # which resumes only once this one yields. Meanwhile the entries read last
            # serve; only a first read is made twice.
            held = self._lock.acquire(blocking=False)
            try:
                if (held or not self._entries) and self._stale():
                    self._entries = {(e.plugin, e.command): e for e in self._load()}
                    self._validators = {}
                    self._loaded_at = time.monotonic()
            finally:
                if held:
                    self._lock.release()
        return self._entries

    def resolve(self, plugin: str, command: str, loc: tuple[str | int, ...] = ("body",)) -> PluginCommand:
        """The entry of ``plugin``/``command``; the problem of an unknown one names its field
        under ``loc`` (the body, or a batch's item)."""
        entries = self.entries()
        if (plugin, command) in entries:
            return entries[(plugin, command)]
        plugins = sorted({p for p, _ in entries})
        if plugin not in plugins:
            raise UnknownPlugin(
                f"No worker offers plugin {plugin!r}. Offered: {', '.join(plugins) or 'none (is a worker running?)'}.",
                [
                    {
                        "loc": [*loc, "plugin"],
                        "msg": f"unknown plugin; offered: {plugins}",
                        "type": "unknown_plugin",
                    }
                ],
            )
        commands = sorted(c for p, c in entries if p == plugin)
        raise UnknownCommand(
            f"Plugin {plugin!r} has no command {command!r}. Its commands: {', '.join(commands)}.",
            [
                {
                    "loc": [*loc, "command"],
                    "msg": f"unknown command; offered: {commands}",
                    "type": "unknown_command",
                }
            ],
        )

    def validate(self, entry: PluginCommand, params: dict[str, Any], loc: tuple[str | int, ...]) -> None:
        key = (entry.plugin, entry.command)
        validators = self._validators.get(key)
        if validators is None:
            schema = entry.params_schema
            validators = self._validators[key] = (
                jsonschema_rs.validator_for(schema),
                validator_for(schema)(schema),
            )
        accepts, explains = validators
        if accepts.is_valid(params):
            return
        # jsonschema has the last word: params it finds no problem with are accepted.
        problems = sorted(explains.iter_errors(params), key=lambda e: list(e.absolute_path))
        if problems:
            raise InvalidParams(
                f"Invalid params for {entry.plugin}/{entry.command}: "
                + "; ".join(
                    f"{'.'.join(map(str, p.absolute_path)) or 'params'}: {p.message}" for p in problems
                ),
                [
                    {"loc": [*loc, *p.absolute_path], "msg": p.message, "type": str(p.validator)}
                    for p in problems
                ],
            )

    def owners_of(self, command: str) -> list[PluginCommand]:
        return [e for (_, c), e in self.entries().items() if c == command]


catalog = Catalog(settings.catalog_ttl_s)
