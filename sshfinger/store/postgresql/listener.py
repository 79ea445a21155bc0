"""
L{Listener}: the one connection of a node that C{LISTEN}s for the writers' notifications, watched by the reactor.

The connection is made in a thread (connecting blocks); then the reactor watches a duplicate of its socket
(C{os.dup}): once libpq drops a connection, psycopg no longer gives its socket number, and libpq closes its
descriptor before the reactor stops watching it (epoll then fails with C{EBADF}, C{connectionLost} never runs and
the node silently stops following).  Our own descriptor stays valid until we close it in C{connectionLost}.

Every tick (a few seconds) the listener wakes the follower (a notification is only a hint) and sends C{SELECT 1}
on the connection without waiting: no answer within the timeout means a half-open connection, which is dropped.
A lost connection is retried with a growing delay; the log says so once, and once more when it is back.  After
every (re)connect: C{LISTEN} first, then wake the follower, so that nothing committed meanwhile is missed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReadDescriptor
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.store.postgresql.feed import describe_error
from sshfinger.store.postgresql.tuning import (
    FOLLOW_INTERVAL,
    LIVENESS_TIMEOUT,
    NOTIFY_CHANNEL,
    RECONNECT_FIRST,
    RECONNECT_MAX,
)


@implementer(IReadDescriptor)
class _Watch:
    """
    What the reactor watches: our duplicate of the LISTEN connection's socket.
    """

    def __init__(self, listener: Listener, fd: int) -> None:
        self._listener = listener
        self._fd = fd

    def fileno(self) -> int:
        """
        Our descriptor (-1 once closed).
        """
        return self._fd

    def doRead(self) -> Failure | None:
        """
        Let the listener read what arrived.
        """
        return self._listener.readable(self)

    def connectionLost(self, reason: Failure) -> None:
        """
        Close our descriptor and tell the listener.
        """
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._listener.lost(self, reason)

    def logPrefix(self) -> str:
        """
        The prefix of log events about this descriptor.
        """
        return "sshfinger-postgresql-listen"


class Listener:
    """
    Keep one LISTEN connection open and call C{wake} whenever changes may have been committed.

    @ivar connected: whether the connection is up now.
    """

    log = Logger()

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        wake: Callable[[], None],
        reactor: Any,
        description: str,
        interval: float = FOLLOW_INTERVAL,
        threadpool: Any = None,
        on_state: Callable[[bool], None] | None = None,
        channels: dict[str, Callable[[str], None]] | None = None,
        liveness_timeout: float = LIVENESS_TIMEOUT,
    ) -> None:
        """
        @param connect: opens a new autocommit connection (blocking; run in a thread).
        @param wake: called on the reactor thread when the follower should read the change log.
        @param reactor: provides C{IReactorFDSet}, C{IReactorTime} and C{IReactorThreads}.
        @param description: the database, for the log.
        @param interval: seconds between ticks (wake and liveness query).
        @param threadpool: where connecting runs (default: the reactor's).
        @param on_state: told C{False} when the database is found unreachable, C{True} when it is back.
        @param channels: more channels to LISTEN on, each with what to call with a notification's payload.
        @param liveness_timeout: seconds the answer to a liveness query may take before the connection is dropped.
        """
        self._connect_fn = connect
        self._wake = wake
        self._reactor = reactor
        self._description = description
        self._interval = interval
        self._threadpool = threadpool
        self._running = False
        self._connection: psycopg.Connection[Any] | None = None
        self._watch: _Watch | None = None
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = reactor
        self._retry_call: IDelayedCall | None = None
        self._probe_deadline: IDelayedCall | None = None
        self._delay = RECONNECT_FIRST
        self._failing = False
        self._on_state = on_state
        self._channels = dict(channels or {})
        self._liveness_timeout = liveness_timeout
        self.connected = False

    def start(self) -> None:
        """
        Connect, and tick every interval.
        """
        self._running = True
        self._ticker.start(self._interval, now=False)
        self._connect()

    def stop(self) -> Deferred[None] | None:
        """
        Close the connection and stop ticking and retrying.
        """
        self._running = False
        if self._ticker.running:
            self._ticker.stop()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._drop()
        return None

    # Connecting.

    def _connect(self) -> None:
        self._retry_call = None
        pool = self._threadpool if self._threadpool is not None else self._reactor.getThreadPool()
        deferToThreadPool(self._reactor, pool, self._open).addCallbacks(self._opened, self._failed)

    def _open(self) -> psycopg.Connection[Any]:
        connection = self._connect_fn()
        try:
            for channel in (NOTIFY_CHANNEL, *self._channels):
                connection.execute(f"LISTEN {channel}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _opened(self, connection: psycopg.Connection[Any]) -> None:
        if not self._running:
            connection.close()
            return
        connection.pgconn.nonblocking = 1
        self._connection = connection
        self._watch = _Watch(self, os.dup(connection.pgconn.socket))
        self._reactor.addReader(self._watch)
        self.connected = True
        self._delay = RECONNECT_FIRST
        if self._failing:
            self._failing = False
            if self._on_state is not None:
                self._on_state(True)
            self.log.info("Following the changes in {store} again", store=self._description)
        self._wake()  # LISTEN first, then read: nothing committed while we were away is missed

    def _failed(self, reason: Failure) -> None:
        self._trouble(describe_error(reason.value))
        self._schedule_retry()

    def _trouble(self, error: str) -> None:
        if not self._failing:
            self._failing = True
            if self._on_state is not None:
                self._on_state(False)
            self.log.warn(
                "Lost the change feed of {store}: {error}; retrying until it is back (edits fail meanwhile)",
                store=self._description,
                error=error,
            )

    def _schedule_retry(self) -> None:
        if not self._running or self._retry_call is not None:
            return
        self._retry_call = self._reactor.callLater(self._delay, self._connect)
        self._delay = min(self._delay * 2, RECONNECT_MAX)

    # Reading.

    def readable(self, watch: _Watch) -> Failure | None:
        """
        Read what arrived on the connection: notifications wake the follower; the answer to a liveness query
        clears its deadline.

        @return: L{ConnectionLost} if the connection is gone (the reactor then calls C{connectionLost}).
        """
        connection = self._connection
        if connection is None or watch is not self._watch:
            return Failure(ConnectionLost("not following"))
        pgconn = connection.pgconn
        try:
            pgconn.consume_input()
            if self._probe_deadline is not None:
                while not pgconn.is_busy():
                    result = pgconn.get_result()
                    if result is None:
                        self._probe_deadline.cancel()
                        self._probe_deadline = None
                        break
                    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                        raise psycopg.OperationalError(pgconn.get_error_message())
            notified = False
            heard = []
            while (notice := pgconn.notifies()) is not None:
                channel = notice.relname.decode("utf-8", "replace")
                if channel == NOTIFY_CHANNEL:
                    notified = True
                elif channel in self._channels:
                    heard.append((self._channels[channel], notice.extra.decode("utf-8", "replace")))
        except psycopg.Error as e:
            return Failure(ConnectionLost(describe_error(e)))
        if pgconn.status != pq.ConnStatus.OK:
            return Failure(ConnectionLost("connection closed"))
        if notified:
            self._wake()
        for handler, payload in heard:
            try:
                handler(payload)
            except Exception:
                self.log.failure("A notification handler failed")
        return None

    def lost(self, watch: _Watch, reason: Failure) -> None:
        """
        The reactor stopped watching C{watch}: close the connection, say so, and reconnect.
        """
        if watch is not self._watch:
            return
        self._drop(watched=False)
        if self._running:
            error = reason.value
            lost = isinstance(error, ConnectionLost) and error.args
            self._trouble(str(error.args[0]) if lost else describe_error(error))
            self._schedule_retry()

    def _drop(self, watched: bool = True) -> None:
        watch, self._watch = self._watch, None
        connection, self._connection = self._connection, None
        self.connected = False
        if self._probe_deadline is not None:
            if self._probe_deadline.active():
                self._probe_deadline.cancel()
            self._probe_deadline = None
        if watch is not None and watched:
            self._reactor.removeReader(watch)
            watch.connectionLost(Failure(ConnectionLost("closed")))
        if connection is not None:
            try:
                connection.close()
            except psycopg.Error:
                pass

    # Ticking: wake the follower, and check the connection is alive.

    def _tick(self) -> None:
        self._wake()
        connection = self._connection
        if connection is None or self._probe_deadline is not None:
            return
        try:
            connection.pgconn.send_query(b"SELECT 1")
            connection.pgconn.flush()
        except psycopg.Error as e:
            self._lose(describe_error(e))
            return
        self._probe_deadline = self._reactor.callLater(self._liveness_timeout, self._no_answer)

    def _no_answer(self) -> None:
        self._probe_deadline = None
        self._lose(f"no answer to a liveness query within {self._liveness_timeout:g} s")

    def _lose(self, error: str) -> None:
        self._drop()
        if self._running:
            self._trouble(error)
            self._schedule_retry()


__all__ = ["Listener"]
