"""
The finger access log: one text line per query, in its own file, written in batches.

twistd's text observer formats every event field by field and writes it at once, which costs a finger query
about as much again as answering it.  With C{--access-log FILE} the query events (see
L{sshfinger.finger.FingerProtocol}, made by a L{QueryLogger}) go to an L{AccessLog} instead, which formats
them with one f-string and a timestamp computed once per second, and writes what piled up every
L{FLUSH_INTERVAL} seconds (or as soon as L{BUFFER_LIMIT} characters are waiting), the way web servers buffer
their access logs.  A crash can lose the
last L{FLUSH_INTERVAL} seconds of lines; a clean stop loses none.  SIGHUP reopens the file (L{reopen}), so
logrotate can move it.

A line looks like twistd's::

    2026-11-23T15:49:07+0000 [finger] 192.0.2.7:40000 'alice' -> user
"""

from __future__ import annotations

import errno
import os
import time
from io import FileIO
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface import implementer

#: Every valid log level, for L{QueryLogger}'s check.
_LEVELS = frozenset(LogLevel.iterconstants())

#: Most seconds a line waits in memory before it is written.
FLUSH_INTERVAL = 0.1

#: Characters waiting in memory that cause an immediate write.
BUFFER_LIMIT = 65536


class QueryLogger(Logger):
    """
    A L{Logger} for one event per query: the same events, made without L{Logger.emit}'s check of the level
    against C{LogLevel.iterconstants()}, which builds and walks a sorted list on every call and costs more than
    the rest of the event together.  The level is checked against a set made once; anything unusual goes the
    ordinary way.
    """

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        """
        Emit an event as L{Logger.emit} does.
        """
        if level not in _LEVELS or "log_trace" in kwargs:
            super().emit(level, format, **kwargs)
            return
        kwargs.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),
        )
        self.observer(kwargs)


@implementer(ILogObserver)
class AccessLog(Service):
    """
    A log observer for finger query events, writing them to a file in batches; a service that opens the file
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

    def __call__(self, event: dict[str, Any]) -> None:
        """
        Queue one event as a line: a query event (with C{peer}, C{query} and C{outcome}) by one f-string, any
        other event by its format.
        """
        when = event.get("log_time") or self.clock.seconds()
        second = int(when)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
        try:
            text = f"{event['peer']} {event['query']} -> {event['outcome']}"
        except KeyError:
            text = formatEvent(event)
        line = f"{self._stamp} [finger] {text}\n"
        self._pending.append(line)
        self._size += len(line)
        if self._size >= BUFFER_LIMIT:
            self.flush()
        elif self._timer is None and self._file is not None:
            self._timer = self.clock.callLater(FLUSH_INTERVAL, self.flush)

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


__all__ = ["AccessLog", "BUFFER_LIMIT", "FLUSH_INTERVAL", "QueryLogger"]
