"""
Tests for L{sshfinger.ops.background}: pool threads at a lower CPU priority than the reactor thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ops.background import BACKGROUND_NICE, background, in_background, usable_cores


def own_nice() -> int:
    """
    The nice value of the calling thread.
    """
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class ThreadReactor:
    """
    The part of a reactor that L{twisted.internet.threads.deferToThreadPool} uses: calls from other threads are
    queued, and run on the test's thread by L{run_queued}.
    """

    def __init__(self) -> None:
        """
        An empty queue.
        """
        self.queued: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        self.lock = threading.Lock()

    def callFromThread(self, function: Callable[..., object], *args: object) -> None:
        """
        Queue C{function(*args)} (called from a pool thread).
        """
        with self.lock:
            self.queued.append((function, args))

    def run_queued(self) -> None:
        """
        Run what the pool threads queued.
        """
        with self.lock:
            queued, self.queued = self.queued, []
        for function, args in queued:
            function(*args)


class BackgroundTests(SynchronousTestCase):
    """
    L{background} and L{in_background}.
    """

    def test_in_background_runs_at_low_priority(self) -> None:
        """
        A function run by an L{in_background} executor runs in a pool thread at L{BACKGROUND_NICE}, its result
        arrives through the reactor, and the calling thread keeps its own priority.
        """
        if not hasattr(os, "getpriority"):
            raise self.skipTest("no per-thread priorities here")  # pragma: no cover
        before = own_nice()
        reactor = ThreadReactor()
        pool = ThreadPool(minthreads=1, maxthreads=1, name="test-background")
        pool.start()
        run = in_background(reactor, pool)
        d = run(lambda: (threading.get_ident(), own_nice()))
        pool.stop()  # joins the thread: the function has run
        self.assertNoResult(d)
        reactor.run_queued()
        thread, nice = self.successResultOf(d)
        self.assertNotEqual(thread, threading.get_ident())
        self.assertEqual(nice, max(before, BACKGROUND_NICE))
        self.assertEqual(own_nice(), before)

    def test_background_returns_the_result(self) -> None:
        """
        L{background} returns what the function returns, and lets its exception through.
        """
        results: list[object] = []

        def work() -> None:
            results.append(background(lambda: 42))
            try:
                background(lambda: 1 / 0)
            except ZeroDivisionError as e:
                results.append(e)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        self.assertEqual(results[0], 42)
        self.assertIsInstance(results[1], ZeroDivisionError)

    def test_usable_cores(self) -> None:
        """
        The usable cores are those of the process's CPU affinity, at least one.
        """
        if not hasattr(os, "sched_setaffinity"):
            raise self.skipTest("no CPU affinity here")  # pragma: no cover
        allowed = os.sched_getaffinity(0)
        self.addCleanup(os.sched_setaffinity, 0, allowed)
        self.assertEqual(usable_cores(), len(allowed))
        os.sched_setaffinity(0, {min(allowed)})
        self.assertEqual(usable_cores(), 1)
