"""Memory of long-lived processes: full garbage collections kept off the hot paths, and
freed memory handed back to the OS."""

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable
from functools import cache


def freeze_startup() -> None:
    """Take what exists once a process is up (modules, the app, its pools) out of the
    collector's sight.

    A full collection walks every tracked object. With the startup heap in it, each one
    takes tens of milliseconds and lands on whatever request or run is under way: it
    was most of the API's p99 (61 ms, 16 ms once frozen, POST at 1,850 req/s).
    """
    gc.collect()
    gc.freeze()


# Tracked allocations (net of frees) between young-generation collections; Python's is 700.
YOUNG_GC_THRESHOLD = 50_000


def collect_less_often() -> None:
    """Collect the young generation after 50,000 net allocations instead of 700.

    A worker holds thousands of runs in flight (a claim takes up to 1,000 executions), an
    API process the requests of its connections, each a few dozen tracked objects that
    live about as long as the run or request. At Python's threshold they outlive several
    young collections, so each is walked again and again, and many reach the old
    generation, whose full collections walk them all once more: 10,000 no-op executions
    cost a worker 2.2 s of collections, single POSTs an API process 11 % of its CPU. At
    50,000 most are gone before a collection comes (the worker: 0.6 s). What ends is
    mostly freed by reference counting (a run is no cycle), so little garbage waits for
    the rarer collections: RSS stays as flat.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


@cache
def _glibc(function: str) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, function, None)  # glibc only


M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def fix_mmap_threshold() -> None:
    """Keep allocations of 128 KiB and more in their own mappings, returned when freed.

    glibc raises the threshold each time such a block is freed (up to 32 MiB), after
    which large transient buffers (a group's INSERT, a message body) come from the arenas
    and leave them bigger. Set once, early: a fixed value turns that adjustment off.
    """
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


_last_trim = float("-inf")


def trim_if_due(every_s: float = 10.0) -> None:
    """Every ``every_s`` at most, have glibc's malloc return the free pages of its arenas.

    Many threads allocate and free in many arenas; the pages their freed objects leave
    stay in the process unless trimmed. Untrimmed, a worker's RSS rose 20 % over 200,000
    executions with no Python object growing; trimmed, 10–14 %. A trim takes a few ms.
    """
    global _last_trim
    trim = _glibc("malloc_trim")
    if trim is not None and time.monotonic() - _last_trim >= every_s:
        _last_trim = time.monotonic()
        trim(0)
