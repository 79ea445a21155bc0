"""
Where finger queries are recorded: one line per query, through an L{IQueryLog}.

By default (L{BatchedEventLog}, what C{twistd sshfinger} uses without C{--access-log}) the queries land where
twistd's log goes, as one info event per reactor turn listing that turn's queries one line each: twistd's text
observer formats every event field by field and writes it at once, which for an event per query
(L{EventQueryLog}) costs a finger query about as much again as answering it, while a busy server answers many
queries per turn (a burst of connections is accepted and answered in one loop).  With C{--access-log FILE} queries
go to an L{AccessLog} instead, the way L{twisted.web.http.HTTPFactory} keeps its
access log: each query is formatted with one f-string and a timestamp computed once per second, and what piled
up is written every L{FLUSH_INTERVAL} seconds (or as soon as L{BUFFER_LIMIT} characters are waiting).  A crash
can lose the last L{FLUSH_INTERVAL} seconds of lines; a clean stop loses none.  SIGHUP reopens the file
(L{AccessLog.reopen}), so logrotate can move it.

A line looks like twistd's::

    2026-11-23T15:49:07+0000 [finger] 192.0.2.7:40000 'alice' -> user
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from io import FileIO

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from sshfinger.finger import constants
from sshfinger.finger.constants import BATCH_LINES, BUFFER_LIMIT, FLUSH_INTERVAL


class IQueryLog(Interface):
    """
    Records finger queries.
    """

    def query(peer: str, query: str, outcome: str, elapsed: float = 0.0) -> None:
        """
        Record one query.

        @param peer: who asked, as L{sshfinger.model.peers.describe_peer} gives it.
        @param query: the query, escaped (L{sshfinger.finger.protocol.escape_query}).
        @param outcome: what kind of answer it got (see L{sshfinger.finger.protocol.FingerProtocol}).
        @param elapsed: seconds from the connection's accept to its answer (for the latency histogram).
        """

    def flush() -> None:
        """
        Write out the queries recorded but not written yet (the finger port is closing).
        """


@implementer(IQueryLog)
class EventQueryLog:
    """
    Record each query as an info event of twisted.logger: C{"finger {peer} {query} -> {outcome}"}.

    @ivar log: the logger the events go through.
    """

    def __init__(self, log: Logger) -> None:
        """
        @param log: the logger the events go through (its namespace names them).
        """
        self.log = log

    def query(self, peer: str, query: str, outcome: str, elapsed: float = 0.0) -> None:
        """
        See L{IQueryLog.query}.
        """
        self.log.info(
            "finger {peer} {query} -> {outcome}", peer=peer, query=query, outcome=outcome, elapsed=elapsed
        )

    def flush(self) -> None:
        """
        See L{IQueryLog.flush}: nothing waits.
        """


@implementer(IQueryLog)
class BatchedEventLog:
    """
    Record queries in the main log, batched: at the end of each reactor turn that had queries (or once
    L{BATCH_LINES} are waiting), one info event whose text is one line per query,
    C{"finger {peer} {query} -> {outcome}"} (twistd's text observer indents every line after the first with a
    tab), with the lines also as its C{queries} field.
    The finger factory flushes it when its port closes.

    @ivar log: the logger the events go through.
    """

    def __init__(self, clock: IReactorTime, log: Logger | None = None) -> None:
        """
        @param clock: the reactor (or a L{task.Clock}), for the batching timer.
        @param log: the logger (by default one in the finger protocol's namespace, as the events per query had).
        """
        self.clock = clock
        self.log = log if log is not None else Logger(namespace="sshfinger.finger.protocol.FingerProtocol")
        self._pending: list[str] = []
        self._timer: IDelayedCall | None = None
        #: Callables given each query as well (the web face's metrics hook), with L{IQueryLog.query}'s arguments.
        self.observers: list[Callable[[str, str, str, float], None]] = []

    def query(self, peer: str, query: str, outcome: str, elapsed: float = 0.0) -> None:
        """
        See L{IQueryLog.query}: queue the query's line (logged once the reactor's turn ends).
        """
        for observer in self.observers:
            observer(peer, query, outcome, elapsed)
        self._pending.append(f"finger {peer} {query} -> {outcome}")
        if len(self._pending) >= constants.BATCH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Log the waiting lines now, as one event.
        """
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._pending:
            lines, self._pending = self._pending, []
            self.log.info("{text}", text="\n".join(lines), queries=lines)


@implementer(IQueryLog)
class AccessLog(Service):
    """
    An L{IQueryLog} writing one line per query to a file, in batches; a service that opens the file
    when it starts (after twistd has dropped privileges) and writes everything out when it stops.

    @ivar path: the file, opened for appending.
    """

    log = Logger()

    def __init__(self, path: str, clock: IReactorTime) -> None:
        """
        @param path: the file.
        @param clock: the reactor (or a L{task.Clock}), for the batching timer.
        """
        self.path = path
        self.clock = clock
        self._file: FileIO | None = None
        self._pending: list[str] = []
        self._size = 0
        self._timer: IDelayedCall | None = None
        self._second = -1
        self._stamp = ""
        self._failing = False
        #: Callables given each query as well (the web face's metrics hook), with L{IQueryLog.query}'s arguments.
        self.observers: list[Callable[[str, str, str, float], None]] = []

    def query(self, peer: str, query: str, outcome: str, elapsed: float = 0.0) -> None:
        """
        See L{IQueryLog.query}: queue the query's line (written within L{FLUSH_INTERVAL} seconds).
        """
        second = int(self.clock.seconds())
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
        line = f"{self._stamp} [finger] {peer} {query} -> {outcome}\n"
        for observer in self.observers:
            observer(peer, query, outcome, elapsed)
        self._pending.append(line)
        self._size += len(line)
        if self._size >= constants.BUFFER_LIMIT:
            self.flush()
        elif self._timer is None and self._file is not None:
            self._timer = self.clock.callLater(constants.FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """
        Write the waiting lines now.  A failed write is reported once in the main log (not per line) and the
        lines are dropped, so a full disk cannot make the server grow without bound.
        """
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._file is None or not self._pending:
            return
        data = memoryview("".join(self._pending).encode("utf-8", "replace"))
        self._pending, self._size = [], 0
        try:
            while data:
                written = self._file.write(data)
                if not written:  # a regular file takes something or raises; never spin on it
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                data = data[written:]
        except OSError as e:
            if not self._failing:
                self.log.error("Access log {path}: cannot write: {error}", path=self.path, error=e.strerror)
            self._failing = True
        else:
            self._failing = False

    def reopen(self) -> None:
        """
        Write out, close and reopen the file (after logrotate moved it).

        @raise OSError: if the file cannot be opened; the old one then stays in use.
        """
        self.flush()
        new = FileIO(self.path, "ab")
        if self._file is not None:
            self._file.close()
        self._file = new
        self.flush()

    def startService(self) -> None:
        """
        Open the file and write the lines that arrived before.

        @raise SystemExit: with one line, if the file cannot be opened (twistd then exits with status 1).
        """
        try:
            self.reopen()
        except OSError as e:
            self.log.critical("Cannot open the access log {path}: {error}", path=self.path, error=e.strerror)
            raise SystemExit(f"sshfinger: cannot open the access log {self.path}: {e.strerror}") from None
        super().startService()

    def stopService(self) -> None:
        """
        Write everything out and close the file.
        """
        super().stopService()
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


__all__ = [
    "AccessLog",
    "BATCH_LINES",
    "BUFFER_LIMIT",
    "BatchedEventLog",
    "EventQueryLog",
    "FLUSH_INTERVAL",
    "IQueryLog",
]
