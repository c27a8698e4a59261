"""The worker's memory upkeep: glibc calls made, at most as often as asked."""

import gc

from agentq.core import heap


def test_trim_runs_at_most_once_per_interval() -> None:
    heap.trim_if_due(every_s=0)
    first = heap._last_trim
    heap.trim_if_due(every_s=3600)
    assert heap._last_trim == first
    heap.trim_if_due(every_s=0)
    assert heap._last_trim > first


def test_glibc_functions_are_found_here() -> None:
    # The machines agentq runs on are glibc Linux: a missing symbol would make both no-ops.
    assert heap._glibc("malloc_trim") is not None
    assert heap._glibc("mallopt") is not None
    heap.fix_mmap_threshold()


def test_frozen_startup_objects_leave_the_collector() -> None:
    before = gc.get_freeze_count()
    kept: list[list[object]] = [[] for _ in range(10)]  # tracked by the collector, as lists are
    heap.freeze_startup()
    assert gc.get_freeze_count() >= before + len(kept)
    gc.unfreeze()
