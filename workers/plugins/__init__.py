"""Plugins: the SDK (``base``), the registry, and the built-in plugins."""

from workers.plugins.base import Context, Interrupted, Plugin, command

__all__ = ["Context", "Interrupted", "Plugin", "command"]
