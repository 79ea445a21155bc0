"""
The reply cache: a query line's answer, kept as the bytes that went out, sent again while it holds.

The query a server hears most, a known user's name, then costs a dictionary lookup and two comparisons rather
than parsing, rendering and encoding.  Whether a kept reply still holds is the service's to say
(L{sshfinger.finger.service.IFingerService.is_current}: the store's C{version} is unchanged and the record's
"N minutes ago" minute has not passed), so any edit of any account invalidates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from twisted.internet.interfaces import IReactorTime

from sshfinger.finger import constants
from sshfinger.finger.service import Answer


class Reply(NamedTuple):
    """
    A query's answer as it goes out.

    @ivar data: the bytes sent.
    @ivar outcome: for the log (see L{sshfinger.finger.protocol.FingerProtocol}).
    @ivar query: the query as logged (L{sshfinger.finger.query.escape_query}).
    @ivar answer: the L{Answer} it was made from, if it may be sent again while that answer holds; else L{None}.
    """

    data: bytes
    outcome: str
    query: str
    answer: Answer | None = None


class ReplyCache:
    """
    Replies kept under their query lines: at most L{constants.CACHE_SIZE} replies and L{constants.CACHE_BYTES}
    bytes (past either, the cache starts afresh, so distinct queries cannot grow it without bound).

    @ivar is_current: says whether an answer still holds at a time (L{IFingerService.is_current}).
    @ivar clock: the reactor or a L{task.Clock}.
    @ivar size: the bytes of the replies kept.
    """

    def __init__(self, is_current: Callable[[Answer, float], bool], clock: IReactorTime) -> None:
        self.is_current = is_current
        self.clock = clock
        self.size = 0
        self._replies: dict[bytes, Reply] = {}

    def __len__(self) -> int:
        """
        The number of replies kept.
        """
        return len(self._replies)

    def get(self, line: bytes) -> Reply | None:
        """
        Return the reply kept for query C{line} (without its line ending), if its answer still holds.
        """
        reply = self._replies.get(line)
        if reply is None or not self.is_current(reply.answer, self.clock.seconds()):  # type: ignore[arg-type]
            return None
        return reply

    def put(self, line: bytes, reply: Reply) -> None:
        """
        Keep C{reply} for query C{line}, if it has an answer that holds now.
        """
        if reply.answer is None or not self.is_current(reply.answer, self.clock.seconds()):
            return
        if len(self._replies) >= constants.CACHE_SIZE or self.size + len(reply.data) > constants.CACHE_BYTES:
            self._replies.clear()
            self.size = 0
        old = self._replies.get(line)
        if old is not None:
            self.size -= len(old.data)
        self._replies[line] = reply
        self.size += len(reply.data)


__all__ = ["Reply", "ReplyCache"]
