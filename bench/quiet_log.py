"""
A twistd log observer factory that drops info and debug events: C{twistd --logger quiet_log.observer ...}
(with C{bench/} on C{PYTHONPATH}).

The bench runs sshfinger once with it to show how much of the per-query cost is the per-query log line.  Warnings
and errors are still written to standard output.
"""

import sys

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)


def observer() -> ILogObserver:
    """
    Write warnings and errors to standard output; drop everything below before it is formatted.
    """
    return FilteringLogObserver(
        textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)]
    )
