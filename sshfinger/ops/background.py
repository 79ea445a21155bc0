"""
Work that must not compete with the reactor thread for the CPU: bcrypt checks and the store's commits run in
pool threads at a lower CPU priority (L{background}), so that on a busy core the reactor thread (finger, SSH
I/O) runs first and the background work takes what is left.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

#: The nice value of background threads: against one nice 19 thread the reactor thread gets about 98% of a
#: shared core (90% at nice 10); background work still runs, only slower, while finger saturates the core.
BACKGROUND_NICE = 19


def usable_cores() -> int:
    """
    The number of cores this process may run on (its CPU affinity where the system tells, else all of them).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def background(function: Callable[[], T]) -> T:
    """
    Run C{function} in this (pool) thread at the lower CPU priority L{BACKGROUND_NICE}.  Linux sets priorities
    per thread; elsewhere (or if refused) this just runs C{function}.
    """
    try:
        thread_id = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread_id) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, thread_id, BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass
    return function()


def in_background(reactor: Any, pool: ThreadPool) -> Callable[[Callable[[], T]], Deferred[T]]:
    """
    Return an executor: it runs a function in one of C{pool}'s threads at the background priority
    (L{background}) and returns a L{Deferred} that fires in the reactor thread with the result.

    @param reactor: provides L{twisted.internet.interfaces.IReactorFromThreads}.
    """

    def run(function: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(reactor, pool, lambda: background(function))

    return run


__all__ = ["BACKGROUND_NICE", "background", "in_background", "usable_cores"]
