"""agentq: the plugin SDK, and the ``agentq`` command (``agentq.cli``).

Plugin authors import everything from here::

    from agentq import Context, PermanentError, Plugin, RetryLater, command, run_command

The names live in ``agentq.plugin`` and ``agentq.core.errors`` and are imported on first
use (PEP 562), so ``import agentq`` (which every ``agentq`` command does) loads neither
pydantic nor anything of the API or the workers.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentq.core.errors import PermanentError, RetryLater
    from agentq.plugin import Context, Plugin, command, run_command

__all__ = ["Context", "PermanentError", "Plugin", "RetryLater", "command", "run_command"]

_HOMES = {
    "Context": "agentq.plugin",
    "Plugin": "agentq.plugin",
    "command": "agentq.plugin",
    "run_command": "agentq.plugin",
    "RetryLater": "agentq.core.errors",
    "PermanentError": "agentq.core.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        # An AttributeError also lets ``from agentq import cli`` fall back to the submodule.
        raise AttributeError(f"module 'agentq' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
