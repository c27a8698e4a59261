"""Plugins: the SDK (``base``), the registry, and the built-in plugins."""

from agentq.plugin import Context, Interrupted, Plugin, command

__all__ = ["Context", "Interrupted", "Plugin", "command"]
