"""Thread pools kept for the life of a process, one per purpose.

A pool is made on first use and made again after a fork: the child inherits
the parent's executor object but none of its threads, and work submitted to
it would wait forever.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading

__all__ = ["process_pool"]

_pools: dict[str, tuple[int, concurrent.futures.ThreadPoolExecutor]] = {}
_lock = threading.Lock()


def _new_lock_in_child() -> None:
    # A thread of the parent may have held the lock at the fork; the child's
    # copy would then stay held, and the child's first pool would wait forever.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def process_pool(name: str, workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """This process's pool called ``name`` (threads ``evidence-<name>_N``)."""
    with _lock:
        held = _pools.get(name)
        if held is None or held[0] != os.getpid():
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=f"evidence-{name}"
            )
            _pools[name] = held = (os.getpid(), pool)
        return held[1]
