"""Whether a concurrency limit may apply to an execution, answered from memory.

Only then does its submission (or fire, or re-drive) go through admission
(``admissions``): with no limit set, the hot paths take no lock and run no extra
statement. The plugins with a ``max_concurrency`` and the keys with a ``max_running``
are read again every ``AGENTQ_CATALOG_TTL_S``.
"""

import math
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from agentq.core import db
from agentq.core.db import autocommit_scope
from agentq.core.models import ApiKey, PluginCommand
from agentq.core.settings import settings


@dataclass
class _Known:
    plugins: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)


_known = _Known()


def limited_plugins_and_owners() -> tuple[set[str], set[str]]:
    """Plugins with a ``max_concurrency`` in the catalog, and keys with a ``max_running``."""
    with autocommit_scope() as session:
        plugins = set(
            session.scalars(
                select(PluginCommand.plugin).where(PluginCommand.max_concurrency.is_not(None)).distinct()
            )
        )
        owners = set(session.scalars(select(ApiKey.id).where(ApiKey.max_running.is_not(None))))
    return plugins, owners


def forget_limits() -> None:
    """A limit changed in this process: read them again at the next question."""
    _known.at = -math.inf


def may_be_limited(owner: str, plugin: str, concurrency_key: str | None) -> bool:
    """Whether a limit may apply to an execution (refreshed every ``AGENTQ_CATALOG_TTL_S``):
    only then does its submission go through admission."""
    if concurrency_key is not None or plugin in settings.plugin_limits:
        return True
    if _stale():
        # Not waited for: on the API's event loop the holder may be another request,
        # which resumes only once this one yields; only a first read is made twice.
        held = _known.lock.acquire(blocking=False)
        try:
            if (held or _known.at == -math.inf) and _stale():
                plugins, owners = limited_plugins_and_owners()
                _known.plugins, _known.owners = frozenset(plugins), frozenset(owners)
                _known.at = time.monotonic()
        finally:
            if held:
                _known.lock.release()
    return plugin in _known.plugins or owner in _known.owners


async def may_be_limited_on_loop(owner: str, plugin: str, concurrency_key: str | None) -> bool:
    """``may_be_limited``, awaited on the API's event loop."""
    if _stale() and concurrency_key is None and plugin not in settings.plugin_limits:
        return await db.run(may_be_limited, owner, plugin, concurrency_key)
    return may_be_limited(owner, plugin, concurrency_key)


def _stale() -> bool:
    return time.monotonic() - _known.at > settings.catalog_ttl_s
