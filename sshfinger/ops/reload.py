"""
Operations: reload on SIGHUP, and log files it can reopen (JSON lines for log shippers, or text).

SIGHUP re-checks the passwd files (they are re-read at every login anyway, and authorized keys come from the
store at every login: nothing is cached to refresh) and reopens the log files, so logrotate can move them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import IO, Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.ops import logs


@implementer(ILogObserver)
class ReopenableLog:
    """
    A log observer writing events to a file that SIGHUP reopens: as JSON lines, one object per event (info and
    above), or as text lines (what L{sshfinger.ops.logs.predicate} keeps: without Conch's per-channel notes).

    @ivar path: the file.
    """

    def __init__(self, path: str, json: bool) -> None:
        """
        @param path: the file, opened for appending.
        @param json: JSON lines (for log shippers) rather than text.
        @raise OSError: if the file cannot be opened.
        """
        self.path = path
        self.json = json
        self._file: IO[str] | None = None
        self._observer: Any = None
        self.reopen()

    def reopen(self) -> None:
        """
        Open the file again (after logrotate moved it), then close the old one.

        @raise OSError: if the file cannot be opened; the old file (if any) then stays in use.
        """
        new = open(self.path, "a", encoding="utf-8")
        self.close()
        self._file = new
        if self.json:
            self._observer = FilteringLogObserver(
                logs.JSONLinesObserver(new), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)]
            )
        else:
            self._observer = FilteringLogObserver(textFileLogObserver(new), [logs.predicate()])

    def __call__(self, event: dict[str, Any]) -> None:
        """
        Write one event.
        """
        if self._observer is not None:
            self._observer(event)

    def close(self) -> None:
        """
        Close the file.
        """
        if self._file is not None:
            self._file.close()
            self._file, self._observer = None, None


class Reopenable(Protocol):
    """
    A log file another service owns that SIGHUP reopens (the finger access log).
    """

    path: str

    def reopen(self) -> None:
        """
        Close and open the file again; raise L{OSError} if it cannot be opened.
        """


def _no_review(path: str) -> list[str]:
    return []


def _at_once(function: Callable[[], Any]) -> Deferred[Any]:
    return maybeDeferred(function)


class ReloadService(Service):
    """
    Handles SIGHUP and owns the reopenable log files.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        passwd_files: Sequence[str],
        json_log: str | None = None,
        text_log: str | None = None,
        access_log: Reopenable | None = None,
        review_passwd: Callable[[str], list[str]] = _no_review,
        run_in_thread: Callable[[Callable[[], Any]], Deferred[Any]] | None = None,
    ) -> None:
        """
        @param reactor: where the reload runs (the signal handler only schedules it).
        @param passwd_files: the C{--auth file:} paths to re-check.
        @param json_log: a file for JSON events, or L{None}.
        @param text_log: a file for text events, or L{None}.
        @param access_log: the finger access log to reopen too (another service opens and closes it), or L{None}.
        @param review_passwd: checks one passwd file: raises L{ValueError} if it is unusable, returns its
            warnings (L{sshfinger.ssh.checkers.review_passwd_file}).
        @param run_in_thread: runs the passwd reviews off the reactor thread (file reads); by default at once.
        """
        self.reactor = reactor
        self.passwd_files = list(passwd_files)
        self.paths = [(path, json) for path, json in ((json_log, True), (text_log, False)) if path]
        self.logs: list[ReopenableLog] = []
        self.access_log = access_log
        self.review_passwd = review_passwd
        self.run_in_thread = run_in_thread or _at_once
        self._previous: Any = None

    def startService(self) -> None:
        """
        Open the log files and take SIGHUP.

        @raise SystemExit: with one line, if a log file cannot be opened (twistd then exits with status 1).
        """
        for path, json in self.paths:
            try:
                log = ReopenableLog(path, json)
            except OSError as e:
                raise SystemExit(f"sshfinger: cannot open the log file {path}: {e.strerror}") from None
            globalLogPublisher.addObserver(log)
            self.logs.append(log)
        self._previous = signal.signal(signal.SIGHUP, self._signalled)
        super().startService()

    def _signalled(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> Deferred[None]:
        """
        Reopen the log files, then re-check the passwd files (read in a thread, L{run_in_thread}) and log one
        summary line.

        @return: a L{Deferred} that fires once the summary is logged.
        """
        problems = 0
        reopened = 0
        for log in self.logs:
            try:
                log.reopen()
                reopened += 1
            except OSError as e:
                problems += 1
                self.log.warn(
                    "Reload: cannot reopen the log file {path} ({error}); still writing to the old one",
                    path=log.path,
                    error=e.strerror,
                )
        if self.access_log is not None:
            try:
                self.access_log.reopen()
                reopened += 1
            except OSError as e:
                problems += 1
                self.log.error("Reload: access log {path}: {error}", path=self.access_log.path, error=e.strerror)
        paths = list(self.passwd_files)

        def review_all() -> list[str | list[str]]:
            reviews: list[str | list[str]] = []
            for path in paths:
                try:
                    reviews.append(self.review_passwd(path))
                except ValueError as e:
                    reviews.append(str(e))  # unusable: its one-line reason
            return reviews

        def summarise(reviews: list[str | list[str]]) -> None:
            nonlocal problems
            for path, review in zip(paths, reviews):
                if isinstance(review, str):
                    problems += 1
                    self.log.error("Reload: passwd file {path}: {error}", path=path, error=review)
                    continue
                for warning in review:
                    problems += 1
                    self.log.warn("Reload: {problem}", problem=warning)
            self.log.info(
                "Reloaded on SIGHUP: {reopened} log file(s) reopened, {count} passwd file(s) checked, "
                "{problems} problem(s)",
                reopened=reopened,
                count=len(paths),
                problems=problems,
                event_type="reload",
            )

        def failed(failure: Failure) -> None:
            self.log.failure("Reload on SIGHUP failed", failure)

        return self.run_in_thread(review_all).addCallback(summarise).addErrback(failed)

    def stopService(self) -> None:
        """
        Give SIGHUP back and close the log files.
        """
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
        for log in self.logs:
            globalLogPublisher.removeObserver(log)
            log.close()
        self.logs = []
