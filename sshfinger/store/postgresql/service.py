"""
Run a L{CachedStore} over a L{PostgreSQLBackend} as a Twisted service: writes and feed reads on a dedicated
thread, and the cached view following the change feed (woken by the LISTEN connection, a timer and every
reconnect).

Unlike SQLite's writer, the thread runs at normal CPU priority: its work is mostly waiting on the database, and
at the lowest priority a busy core delayed applying another node's change by a quarter of a second.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from sshfinger import __version__
from sshfinger.model.errors import StoreError
from sshfinger.store.cached import CachedStore
from sshfinger.store.interfaces import FeedGap
from sshfinger.store.postgresql import open_backend
from sshfinger.store.postgresql.backend import PostgreSQLBackend
from sshfinger.store.postgresql.feed import describe_error
from sshfinger.store.postgresql.nodes import heartbeat, list_nodes
from sshfinger.store.postgresql.tuning import HEARTBEAT_INTERVAL


class Follower:
    """
    Apply the feed to a cached store whenever woken: one read at a time (wakes during a read cause one more
    read after it), a follower behind the horizon reloads everything, and trouble is logged once.
    """

    log = Logger()

    def __init__(self, store: CachedStore, backend: PostgreSQLBackend, executor: Any) -> None:
        """
        @param store: the cached view to keep up to date.
        @param backend: its backend.
        @param executor: runs a blocking call off the reactor thread (the store's).
        """
        self.store = store
        self._backend = backend
        self._executor = executor
        self._busy = False
        self._again = False
        self._failing = False
        #: Fires after each completed read (tests and benchmarks wait on it).
        self.reads = 0

    def wake(self) -> None:
        """
        Read the feed now, or right after the read in progress.
        """
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._again = False
        self.store.poll().addCallbacks(self._done, self._failed)

    def _done(self, _count: int) -> None:
        if self._failing:
            self._failing = False
            self.log.info("Reading the changes of {store} again", store=self._backend.description)
        self._finish()

    def _failed(self, reason: Failure) -> None:
        if reason.check(FeedGap):
            self._reload(reason.value)
            return
        # Said once per outage, and not at all when the LISTEN connection already said the database is away.
        if not self._failing and self._backend.reachable:
            self._failing = True
            self.log.warn(
                "Cannot read the changes of {store}: {error} (finger answers from memory meanwhile)",
                store=self._backend.description,
                error=describe_error(reason.value),
            )
        self._finish()

    def _reload(self, gap: FeedGap) -> None:
        self.log.warn(
            "This node fell behind the change log of {store} ({error}): reloading every account",
            store=self._backend.description,
            error=str(gap),
        )

        def loaded(count: int) -> None:
            self.store.open()  # takes what stage_reload loaded: no I/O here
            self.log.info("Reloaded {count} accounts from {store}", count=count, store=self._backend.description)
            self._again = True  # what was committed since the reload (own writes included) is read next
            self._finish()

        def failed(reason: Failure) -> None:
            self.log.warn("Reloading failed: {error}", error=describe_error(reason.value))
            self._finish()

        self._executor(self._backend.stage_reload).addCallbacks(loaded, failed)

    def _finish(self) -> None:
        self._busy = False
        self.reads += 1
        if self._again:
            self.wake()


class PostgreSQLStoreService(Service):
    """
    Opens the store at start (after twistd sheds privileges), follows the feed, drains writes at stop.

    @ivar store: the cached store.
    @ivar follower: applies the feed to it.
    """

    log = Logger()

    def __init__(self, store: CachedStore, backend: PostgreSQLBackend, reactor: Any, pool: ThreadPool) -> None:
        """
        @param store: the store to run, over C{backend}.
        @param reactor: watches the LISTEN connection and runs the threads.
        @param pool: the store's thread (its executor's), started and stopped here.
        """
        self.store = store
        self.backend = backend
        self._reactor = reactor
        self._pool = pool
        self._executor = store_executor(reactor, pool)
        self.follower = Follower(store, backend, self._executor)
        #: This node in the registry: its name and host-key fingerprints (see L{register_node}).
        self.node: tuple[str, list[str]] | None = None
        self._started_at = 0.0
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = reactor

    def register_node(self, name: str, host_keys: list[str]) -> None:
        """
        Register this node in the store's C{nodes} table as C{name}, serving C{host_keys} (fingerprints),
        with a heartbeat every L{HEARTBEAT_INTERVAL} seconds while it runs.
        """
        self.node = (name, sorted(host_keys))

    def heartbeat(self) -> Deferred[None] | None:
        """
        Refresh this node's row (its version, host keys and how far behind the change log it is).
        """
        if self.node is None:
            return None
        name, keys = self.node
        backend = self.backend
        started = self._started_at

        def beat() -> None:
            def work(connection: Any) -> None:
                heartbeat(connection, name, __version__, keys, started, backend.applied)
                backend.known_nodes = list_nodes(connection)

            backend.run(work, "heartbeat")

        return self._executor(beat).addErrback(lambda _: None)

    def startService(self) -> None:
        """
        Open the store, start its thread and follow the feed.

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
        self._pool.start()
        self.backend.feed.reactor = self._reactor
        self.backend.feed.start(self.follower.wake)
        self._started_at = self._reactor.seconds()
        if self.node is not None:
            self._heartbeat.start(HEARTBEAT_INTERVAL, now=True)
        super().startService()

    def stopService(self) -> Deferred[None] | None:
        """
        Stop following, let every queued write commit, then stop the thread and close the store.
        """
        super().stopService()
        if self._heartbeat.running:
            self._heartbeat.stop()
        self.backend.feed.stop()

        def close(_: object) -> None:
            self._pool.stop()
            self.store.close()

        return self.store.flush().addBoth(close)


def store_executor(reactor: Any, pool: ThreadPool) -> Any:
    """
    The executor of a PostgreSQL store: C{pool}'s thread, at normal priority.
    """

    def run(function: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, pool, function)

    return run


def make_postgresql_store(url: str, reactor: Any, audit_keep: int | None = None) -> PostgreSQLStoreService:
    """
    Build the store service for a C{postgresql://} C{--store} value.

    @param reactor: provides C{IReactorTime}, C{IReactorThreads} and C{IReactorFDSet}.
    @param audit_keep: how many changes the change log keeps (the default if L{None}).
    """
    options = {} if audit_keep is None else {"changes_keep": audit_keep}
    backend = open_backend(url, **options)
    pool = ThreadPool(minthreads=1, maxthreads=1, name="sshfinger-store-postgresql")
    store = CachedStore(backend, reactor.seconds, store_executor(reactor, pool))
    return PostgreSQLStoreService(store, backend, reactor, pool)


__all__ = ["Follower", "PostgreSQLStoreService", "make_postgresql_store"]
