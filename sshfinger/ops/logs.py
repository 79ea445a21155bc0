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

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from constantly import NamedConstant
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

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


def plain(value: Any, depth: int = 0) -> Any:
    """
    Return C{value} as a plain JSON value: strings, numbers, booleans and None as they are, bytes decoded
    (UTF-8, invalid bytes as C{\\xNN}), lists and dicts element by element, anything else as its C{str}.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [plain(item, depth + 1) for item in value]
    if depth < 4 and isinstance(value, Mapping):
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, NamedConstant):
        return value.name
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def event_as_json(event: Mapping[str, Any]) -> str:
    """
    Return one event as one JSON line (JSON Lines: no record separator, no newline inside): C{time} (ISO 8601,
    UTC), C{level} (its name), C{namespace}, C{message} (the rendered text), C{traceback} when the event carries
    a failure, then the event's own fields (Twisted's C{log_*} keys left out) as plain values.
    """
    level = event.get("log_level")
    when = event.get("log_time")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds") if when else None,
        "level": level.name if isinstance(level, NamedConstant) else plain(level),
        "namespace": plain(event.get("log_namespace")),
        "message": formatEvent(dict(event)),
    }
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_"):
            continue
        record[f"{key}_" if key in record else key] = plain(value)
    return json.dumps(record, default=str)


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Writes every event it gets as one line of JSON (L{event_as_json}) to a text stream.
    """

    def __init__(self, stream: TextIO) -> None:
        """
        @param stream: where the lines go (flushed after each one).
        """
        self.stream = stream

    def __call__(self, event: Mapping[str, Any]) -> None:
        """
        Write one event.
        """
        self.stream.write(event_as_json(event) + "\n")
        self.stream.flush()



#: Characters longer peer-supplied text is cut to in the log.
PEER_TEXT_LIMIT = 200
#: Unicode bidirectional overrides and isolates: printable, but they reorder what a terminal shows.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def escape_peer_text(value: bytes | str, limit: int = PEER_TEXT_LIMIT) -> str:
    """
    Return text a peer sent (a login, a client version, a disconnect reason, a command) as log text on one line:
    bytes decoded as UTF-8, a byte that is not UTF-8 written C{\\xNN}, a backslash doubled, every control
    character (newline and CR included), C1 control and bidirectional override written as its C{\\xNN} or
    C{\\uNNNN} escape, and the result cut to C{limit} characters (ending in C{...}).  A forged log line or a
    terminal escape sequence thus stays visible text inside the line it came in.
    """
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    escaped = "".join(
        char if char.isprintable() and char not in _BIDI and char != "\\" else _escape_char(char) for char in text
    )
    if len(escaped) > limit:
        escaped = escaped[: limit - 3] + "..."
    return escaped


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return ascii(char)[1:-1]


__all__ = [
    "PEER_TEXT_LIMIT",
    "QUIET_NAMESPACES",
    "JSONLinesObserver",
    "escape_peer_text",
    "event_as_json",
    "observer",
    "plain",
    "predicate",
]
