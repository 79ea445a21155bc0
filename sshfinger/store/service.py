"""
Open a store from its C{--store} value and run it as a Twisted service: a single writer thread for the SQLite
backend, and a poll that picks up changes other processes commit to the same file.  The writer runs at a low CPU
priority (L{sshfinger.ops.background}): a stream of edits then slows down under a finger flood instead of slowing
finger down.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from sshfinger.model.errors import StoreError
from sshfinger.ops.background import in_background
from sshfinger.store.cached import CachedStore, run_now
from sshfinger.store.memory import MemoryBackend
from sshfinger.store.sqlite import CHANGES_KEEP, SQLiteBackend

#: Seconds between two polls for changes made by other processes.
POLL_INTERVAL = 0.5


def check_store_spec(spec: str) -> str:
    """
    Check a C{--store} value: C{memory}, or a SQLite file path whose directory exists.

    @return: the value to use.
    @raise ValueError: with a one-line reason.
    """
    if spec == "memory":
        return spec
    if spec.startswith(("postgresql://", "postgres://")):  # until the backend registry: see store/postgresql
        return spec
    path = Path(spec)
    if path.is_dir():
        raise ValueError(f"{spec} is a directory; give the path of a SQLite file")
    if not path.parent.is_dir():
        raise ValueError(f"directory {str(path.parent)!r} does not exist")
    return spec


class StoreService(Service):
    """
    Runs a L{CachedStore}: opens it at start, polls it for outside changes, drains its writes at stop.

    The store is opened in L{startService}, which twistd calls after shedding privileges, so a new SQLite file is
    created by the unprivileged user and stays writable.

    @ivar store: the store.
    """

    log = Logger()

    def __init__(
        self,
        store: CachedStore,
        clock: IReactorTime,
        pool: ThreadPool | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        """
        @param store: the store to run.
        @param clock: schedules the poll.
        @param pool: the writer thread pool the store's executor uses, started and stopped with the service.
        @param poll_interval: seconds between polls.
        """
        self.store = store
        self._pool = pool
        self._poller = LoopingCall(self._poll)
        self._poller.clock = clock
        self._poll_interval = poll_interval

    def startService(self) -> None:
        """
        Open the store, start the writer thread and the poll.

        @raise SystemExit: with one line, if the store cannot be opened (twistd then exits with status 1).
        """
        try:
            self.store.open()
        except StoreError as e:
            self.log.critical("Cannot open the store {store}: {error}", store=self.store.description, error=e)
            raise SystemExit(f"sshfinger: cannot open the store: {e}") from None
        self.log.info(
            "Store {store} open with {count} accounts", store=self.store.description, count=len(self.store)
        )
        if self._pool is not None:
            self._pool.start()
        self._poller.start(self._poll_interval, now=False)
        super().startService()

    def _poll(self) -> Deferred[Any]:
        def failed(reason: Any) -> None:
            self.log.failure("Polling the store for outside changes failed", reason)

        return self.store.poll().addErrback(failed)

    def stopService(self) -> Deferred[None] | None:
        """
        Stop polling, let every queued write commit, then stop the writer thread and close the store.
        """
        super().stopService()
        if self._poller.running:
            self._poller.stop()
        def close(_: object) -> None:
            if self._pool is not None:
                self._pool.stop()
            self.store.close()

        return self.store.flush().addBoth(close)


def make_store(
    spec: str, reactor: Any, poll_interval: float = POLL_INTERVAL, audit_keep: int = CHANGES_KEEP
) -> StoreService:
    """
    Build the store service for a C{--store} value: C{memory}, or a SQLite file path.

    @param reactor: provides L{IReactorTime} and L{IReactorThreads}.
    @param audit_keep: how many audit entries (changes, manhole lines) a SQLite store keeps.
    """
    if spec == "memory":
        return StoreService(CachedStore(MemoryBackend(), reactor.seconds), reactor, poll_interval=poll_interval)
    if spec.startswith(("postgresql://", "postgres://")):  # until the backend registry: see store/postgresql
        from sshfinger.store.postgresql.service import make_postgresql_store

        return make_postgresql_store(spec, reactor, audit_keep)  # type: ignore[return-value]
    assert IReactorThreads.providedBy(reactor)
    pool = ThreadPool(minthreads=1, maxthreads=1, name="sshfinger-store-writer")
    store = CachedStore(SQLiteBackend(spec, changes_keep=audit_keep), reactor.seconds, in_background(reactor, pool))
    return StoreService(store, reactor, pool, poll_interval)


def open_offline(spec: str) -> CachedStore:
    """
    Open a store for the offline tool: every call commits synchronously on the calling thread.
    """
    backend: Any = MemoryBackend() if spec == "memory" else None
    if spec.startswith(("postgresql://", "postgres://")):  # until the backend registry: see store/postgresql
        from sshfinger.store.postgresql import open_backend

        backend = open_backend(spec)
    elif backend is None:
        backend = SQLiteBackend(check_store_spec(spec))
    store = CachedStore(backend, time.time, run_now)
    store.open()
    return store
