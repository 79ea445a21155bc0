"""
Operations: reload on SIGHUP, and an optional JSON event log for log shippers.

SIGHUP re-checks the passwd files (they are re-read at every login anyway, and authorized keys come from the
store at every login: nothing is cached to refresh) and reopens the JSON log, so logrotate can move it.
"""

from __future__ import annotations

import signal
from typing import IO, Any, Sequence

from twisted.application.service import Service
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    globalLogPublisher,
    jsonFileLogObserver,
)

from sshfinger.ssh.checkers import check_passwd_file, plaintext_warnings


class JSONLog:
    """
    A log observer writing one JSON object per event (info and above) to a file that can be reopened.

    @ivar path: the file.
    """

    def __init__(self, path: str) -> None:
        """
        @param path: the file, opened for appending.
        """
        self.path = path
        self._file: IO[str] | None = None
        self._observer: Any = None
        self.reopen()

    def reopen(self) -> None:
        """
        Close and reopen the file (after logrotate moved it).
        """
        self.close()
        self._file = open(self.path, "a", encoding="utf-8")
        self._observer = FilteringLogObserver(
            jsonFileLogObserver(self._file), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)]
        )

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


class ReloadService(Service):
    """
    Handles SIGHUP and owns the JSON log.
    """

    log = Logger()

    def __init__(self, reactor: Any, passwd_files: Sequence[str], json_log: str | None = None) -> None:
        """
        @param reactor: where the reload runs (the signal handler only schedules it).
        @param passwd_files: the C{--auth file:} paths to re-check.
        @param json_log: a file for JSON events, or L{None}.
        """
        self.reactor = reactor
        self.passwd_files = list(passwd_files)
        self.json_log_path = json_log
        self.json_log: JSONLog | None = None
        self._previous: Any = None

    def startService(self) -> None:
        """
        Open the JSON log and take SIGHUP.
        """
        if self.json_log_path:
            self.json_log = JSONLog(self.json_log_path)
            globalLogPublisher.addObserver(self.json_log)
        self._previous = signal.signal(signal.SIGHUP, self._signalled)
        super().startService()

    def _signalled(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> None:
        """
        Re-check the passwd files and reopen the JSON log.
        """
        if self.json_log is not None:
            self.json_log.reopen()
        problems = 0
        for path in self.passwd_files:
            try:
                check_passwd_file(path)
            except ValueError as e:
                problems += 1
                self.log.error("Reload: passwd file {path}: {error}", path=path, error=str(e))
                continue
            for warning in plaintext_warnings(path):
                self.log.warn("Reload: {problem}", problem=warning)
        self.log.info(
            "Reloaded on SIGHUP: {count} passwd file(s) checked, {problems} problem(s)",
            count=len(self.passwd_files),
            problems=problems,
            event_type="reload",
        )

    def stopService(self) -> None:
        """
        Give SIGHUP back and close the JSON log.
        """
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
        if self.json_log is not None:
            globalLogPublisher.removeObserver(self.json_log)
            self.json_log.close()
