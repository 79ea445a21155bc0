"""
What the text logs keep: C{twistd --logger sshfinger.ops.logs.observer sshfinger ...} writes the server's log to
standard output (the journal, under systemd) with the same choice of events as C{--log-file}.

twistd's own observer writes every event, debug included: about 24 lines per SSH login, half of them Conch's
trace of the key exchange and the authentication, then its notes on each channel (opened, command, exit code,
closed).  Kept here: info and above, except from Conch's own namespaces (C{twisted.conch}), which only log
warnings and errors.  A login is then the lines sshfinger writes itself: who logged in, from where and how,
and when the client left.
"""

from __future__ import annotations

import sys
from typing import TextIO

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)

#: Namespaces whose info events are left out (their warnings and errors are kept).
QUIET_NAMESPACES = ("twisted.conch",)


def predicate() -> LogLevelFilterPredicate:
    """
    Return the filter of the text logs: info and above, warnings and above from L{QUIET_NAMESPACES}.
    """
    levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    for namespace in QUIET_NAMESPACES:
        levels.setLogLevelForNamespace(namespace, LogLevel.warn)
    return levels


def observer(stream: TextIO | None = None) -> ILogObserver:
    """
    A twistd log observer factory (C{twistd --logger sshfinger.ops.logs.observer}): the events L{predicate} keeps,
    as text lines on C{stream} (standard output by default).  It takes the place of twistd's C{--logfile}; to
    write a file as well, use sshfinger's C{--log-file}.
    """
    return FilteringLogObserver(textFileLogObserver(stream or sys.stdout), [predicate()])


__all__ = ["QUIET_NAMESPACES", "observer", "predicate"]
