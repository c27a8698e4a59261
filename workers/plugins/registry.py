"""Finds plugins: the built-in ones and those installed under the ``agentq.plugins`` entry point."""

import importlib
import logging
from importlib.metadata import entry_points

from agentq.core.errors import PluginNotFound, UnknownCommand
from agentq.core.models import PluginCommand, utcnow
from agentq.core.settings import settings
from agentq.plugin import Command, Plugin

ENTRY_POINT_GROUP = "agentq.plugins"
BUILTIN = (
    "workers.plugins.echo:EchoPlugin",
    "workers.plugins.simulate:SimulatePlugin",
    "workers.plugins.http:HttpPlugin",
    "workers.plugins.news:NewsPlugin",
    "workers.plugins.llm:LlmPlugin",
)

log = logging.getLogger(__name__)


class DuplicatePlugin(Exception):
    pass


def _import(target: str) -> object:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plugin_class(found: object, target: str) -> type[Plugin]:
    if not (isinstance(found, type) and issubclass(found, Plugin)):
        raise TypeError(f"{target} is not a Plugin subclass")
    return found


class Registry:
    def __init__(self) -> None:
        self._plugins: dict[str, Plugin] = {}
        # Plugins that could not be imported, by name (or import path): why.
        self.left_out: dict[str, str] = {}

    def add(self, cls: type[Plugin]) -> None:
        if cls.name in self._plugins:
            raise DuplicatePlugin(f"A plugin named {cls.name!r} is already registered.")
        if not cls.commands:
            raise TypeError(f"Plugin {cls.name!r} has no commands.")
        self._plugins[cls.name] = cls()

    def get(self, name: str) -> Plugin:
        try:
            return self._plugins[name]
        except KeyError:
            raise PluginNotFound(name) from None

    def command(self, plugin: str, command: str) -> tuple[Plugin, Command]:
        found = self.get(plugin)
        try:
            return found, type(found).commands[command]
        except KeyError:
            offered = ", ".join(sorted(type(found).commands))
            raise UnknownCommand(
                f"Plugin {plugin!r} has no command {command!r}; it offers: {offered}."
            ) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._plugins.values())

    def catalog(self, default_queue: str) -> list[PluginCommand]:
        now = utcnow()
        return [
            PluginCommand(
                plugin=plugin.name,
                command=cmd.name,
                description=cmd.description[:255],
                plugin_description=plugin.description[:255],
                params_schema=cmd.params_schema(),
                version=plugin.version,
                queue=plugin.queue or default_queue,
                result_type=cmd.result_type or plugin.name,
                updated_at=now,
                max_concurrency=settings.plugin_limits.get(plugin.name, plugin.max_concurrency),
            )
            for plugin in self._plugins.values()
            for cmd in type(plugin).commands.values()
        ]


def _leave_out(registry: Registry, name: str, target: str, exc: Exception) -> None:
    """A plugin whose module cannot be imported (a dependency not installed, say) must not
    keep the others from serving: it is left out of the catalog, and said so loudly."""
    registry.left_out[name] = f"{type(exc).__name__}: {exc}"
    # The built-in plugins' own dependencies come with the worker extra.
    hint = " (pip install 'agentq[worker]')" if isinstance(exc, ModuleNotFoundError) else ""
    log.error(
        "plugin %s (%s) cannot be imported and is left out; its commands are not offered: %s: %s%s",
        name,
        target,
        type(exc).__name__,
        exc,
        hint,
        exc_info=exc,
    )


def load_registry() -> Registry:
    registry = Registry()
    # Importing runs the plugin's module, so any exception there leaves that plugin out;
    # a class that is no plugin, or a name taken twice, is a mistake that stops the worker.
    for target in BUILTIN:
        try:
            found = _import(target)
        except Exception as exc:
            _leave_out(registry, target.partition(":")[0].rpartition(".")[2], target, exc)
            continue
        registry.add(_plugin_class(found, target))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found = ep.load()
        except Exception as exc:
            _leave_out(registry, ep.name, ep.value, exc)
            continue
        registry.add(_plugin_class(found, ep.value))
        log.info("loaded plugin %s from %s", ep.name, ep.value)
    return registry
