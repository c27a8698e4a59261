"""The per-process runtime and plugin registry, created on first use after fork."""

import os
import socket

from agentq.core.db import dispose_after_fork
from workers.plugins.registry import Registry, load_registry
from workers.runtime import Runtime

_runtime: tuple[int, Runtime] | None = None
_queues: frozenset[str] = frozenset()


def consume(queues: frozenset[str]) -> None:
    """The queues this worker consumes (before its runtime starts): a finish may start an
    execution of one of them without a message (``Runtime.runs_here``)."""
    global _queues
    _queues = queues


def runtime() -> Runtime:
    """This process's runtime; a forked child (prefork pool) builds its own."""
    global _runtime
    if _runtime is None or _runtime[0] != os.getpid():
        dispose_after_fork()
        started = Runtime(registry(), worker=f"{socket.gethostname()}:{os.getpid()}", queues=_queues)
        started.start()
        _runtime = (os.getpid(), started)
    return _runtime[1]


def drain() -> None:
    """Warm shutdown began: give running executions the grace period, then hand them back."""
    if _runtime is not None and _runtime[0] == os.getpid():
        _runtime[1].drain()


def shutdown() -> None:
    """Stop this process's runtime, if it started one."""
    if _runtime is not None and _runtime[0] == os.getpid():
        _runtime[1].stop()


_registry: Registry | None = None


def registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry
