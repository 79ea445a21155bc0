"""
Open a store from its C{--store} value (through L{sshfinger.store.registry}) and run it as a Twisted service: a
single writer thread for a backend whose calls block, and the change feed followed while it runs.  The writer runs
at a low CPU priority (L{sshfinger.ops.background}): a stream of edits then slows down under a finger flood
instead of slowing finger down.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from sshfinger.model.errors import StoreError
from sshfinger.ops.background import in_background
from sshfinger.store.cached import CachedStore, run_now
from sshfinger.store.interfaces import maintenance_of
from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES
from sshfinger.store.registry import POLL_INTERVAL, StoreOptions, check_store_spec, is_threaded, open_backend

__all__ = [
    "POLL_INTERVAL",
    "StoreService",
    "check_store_spec",
    "make_store",
    "open_offline",
    "readable_by_others",
    "readable_files",
]


def readable_by_others(path: str) -> int | None:
    """
    Return the permission bits of C{path} if others may read or write it, else L{None} (also if it is missing).
    """
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o007 else None


def readable_files(store: CachedStore) -> list[tuple[str, int]]:
    """
    The store's local files that others may read, with their modes (see L{IStoreMaintenance.files}).
    """
    maintenance = maintenance_of(store.backend)
    if maintenance is None:
        return []
    found = []
    for name in maintenance.files():
        mode = readable_by_others(name)
        if mode is not None:
            found.append((name, mode))
    return found


class StoreService(Service):
    """
    Runs a L{CachedStore}: opens it at start and follows its change feed, drains its writes at stop.

    The store is opened in L{startService}, which twistd calls after shedding privileges, so a new SQLite file is
    created by the unprivileged user and stays writable.

    @ivar store: the store.
    """

    log = Logger()

    def __init__(self, store: CachedStore, pool: ThreadPool | None = None) -> None:
        """
        @param store: the store to run.
        @param pool: the writer thread pool the store's executor uses, started and stopped with the service.
        """
        self.store = store
        self._pool = pool

    def startService(self) -> None:
        """
        Open the store, start the writer thread and follow the feed.

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
        for name, mode in readable_files(self.store):
            self.log.warn(
                "Store file {path} is readable by others (mode {mode}); it holds shell history and the audit "
                "trail: chmod 600 it",
                path=name,
                mode=f"{mode:o}",
            )
        if self._pool is not None:
            self._pool.start()
        self.store.start_following()
        super().startService()

    def stopService(self) -> Deferred[None]:
        """
        Stop following, let every queued write commit, then stop the writer thread and close the store.
        """
        super().stopService()

        def close(_: object) -> None:
            if self._pool is not None:
                self._pool.stop()
            self.store.close()

        stopped = maybeDeferred(self.store.stop_following)  # a PostgreSQL listener stops asynchronously
        return stopped.addBoth(lambda _: self.store.flush()).addBoth(close)


def make_store(
    spec: str,
    reactor: Any,
    poll_interval: float = POLL_INTERVAL,
    audit_keep: int | None = CHANGES_KEEP,
    audit_max_bytes: int | None = CHANGES_MAX_BYTES,
) -> StoreService:
    """
    Build the store service for a C{--store} value.

    @param reactor: provides L{IReactorTime} and L{IReactorThreads}.
    @param audit_keep: how many audit entries (changes, manhole lines) the store keeps.
    @param audit_max_bytes: how many bytes of audit entries the store keeps.
    """
    assert IReactorTime.providedBy(reactor)
    options = StoreOptions(reactor, audit_keep, audit_max_bytes, poll_interval)
    backend = open_backend(spec, options)
    if not is_threaded(spec):
        return StoreService(CachedStore(backend, reactor.seconds))
    assert IReactorThreads.providedBy(reactor)
    pool = ThreadPool(minthreads=1, maxthreads=1, name="sshfinger-store-writer")
    return StoreService(CachedStore(backend, reactor.seconds, in_background(reactor, pool)), pool)


def open_offline(spec: str, audit_keep: int | None = None, audit_max_bytes: int | None = None) -> CachedStore:
    """
    Open a store for the offline tool: every call commits synchronously on the calling thread.  The audit
    trail is kept as the server last started on the store says (or by the defaults), unless given.
    """
    check_store_spec(spec)
    store = CachedStore(open_backend(spec, StoreOptions(None, audit_keep, audit_max_bytes)), time.time, run_now)
    store.open()
    return store
