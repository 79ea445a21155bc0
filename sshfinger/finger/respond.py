"""
From a query line to the bytes that answer it: L{Responder.respond}, which the finger protocol and the
accept-time path both call.

It is pure in the sense that matters here: no transport, no socket, no log line per query (the caller records
the query), no timer.  It reads the reply cache first, then parses the query, asks the service, caps and
encodes the answer; a listing query spends its peer's listing budget (past it, the refusal comes after a
pause); an error in the service becomes the
internal-error line (its traceback logged), never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from sshfinger.finger import constants
from sshfinger.finger.cache import Reply, ReplyCache
from sshfinger.finger.limits import ListingLimiter
from sshfinger.finger.query import Query, QueryError, escape_query, parse_query
from sshfinger.finger.render import cap_lines, encode_lines, sanitize
from sshfinger.finger.service import Answer, IFingerService


class Responder:
    """
    Answers query lines for one finger server.

    @ivar service: the L{IFingerService}.
    @ivar cache: the L{ReplyCache}.
    @ivar listings: the L{ListingLimiter} for listing queries.
    @ivar max_output: largest answer in bytes.
    @ivar ascii_only: answers in ASCII rather than UTF-8.
    """

    log = Logger(namespace="sshfinger.finger")

    def __init__(
        self,
        service: IFingerService,
        clock: IReactorTime,
        max_output: int = constants.MAX_OUTPUT,
        ascii_only: bool = False,
    ) -> None:
        self.service = service
        self.clock = clock
        self.cache = ReplyCache(lambda answer, now: self.service.is_current(answer, now), clock)
        self.listings = ListingLimiter(clock)
        self.max_output = max_output
        self.ascii_only = ascii_only

    def respond(self, line: bytes, peer: str) -> Reply | Deferred[Reply]:
        """
        Answer query C{line} (without its line ending) from C{peer} (a L{sshfinger.model.peers.peer_key}).

        @return: the L{Reply}, or (for a service that answers later) a L{Deferred} firing with it, never failing.
        """
        if len(line) > constants.MAX_QUERY:
            text = line[: constants.MAX_QUERY + 1].decode("utf-8", errors="replace")
            return self._reply(text, "too-long", [constants.QUERY_TOO_LONG])
        reply = self.cache.get(line)
        if reply is not None:
            if reply.outcome in ("list", "long-list") and not self.listings.allow(peer):
                return self._limited(
                    self._reply(reply.query, "list-limited", [constants.TOO_MANY_LISTINGS], escaped=True)
                )
            return reply
        text = line.decode("utf-8", errors="replace")
        try:
            query = parse_query(text)
        except QueryError as error:
            return self._reply(text, "bad-query", [f"finger: bad query: {sanitize(str(error))}"])
        service = self.service
        costly = (query.is_listing and getattr(service, "allow_list", True)) or (
            query.hosts and getattr(service, "forwarder", None) is not None
        )
        if costly and not self.listings.allow(peer):
            return self._limited(self._reply(text, "list-limited", [constants.TOO_MANY_LISTINGS]))
        try:
            result = self.service.answer(query)
        except Exception:
            return self._failed(Failure(), peer, text)
        if isinstance(result, list):  # (not isinstance(result, Deferred): that check goes through ABCMeta)
            return self._answered(result, line, text, query, peer)
        return result.addCallbacks(
            self._answered, self._failed, callbackArgs=(line, text, query, peer), errbackArgs=(peer, text)
        )

    def _limited(self, reply: Reply) -> Deferred[Reply]:
        """
        Give C{reply} (a refused listing) after L{constants.LIST_PENALTY} seconds, so that a client flooding
        listings one after another slows down to one a second rather than keeping the server busy.
        """
        return deferLater(self.clock, constants.LIST_PENALTY, lambda: reply)

    def _answered(self, lines: list[str], line: bytes, text: str, query: Query, peer: str) -> Reply:
        outcome = getattr(lines, "outcome", None)
        if outcome is None:
            outcome = "forward-denied" if query.hosts else "list" if query.user is None else "user"
        try:
            reply = self._reply(text, outcome, lines, lines if isinstance(lines, Answer) else None)
        except Exception:
            return self._failed(Failure(), peer, text, "cannot render the answer")
        self.cache.put(line, reply)
        return reply

    def _failed(self, failure: Failure, peer: str, text: str, what: str = "internal error") -> Reply:
        self.log.failure("finger {peer} {query}: {what}", failure, peer=peer, query=escape_query(text), what=what)
        return self._reply(text, "error", [constants.INTERNAL_ERROR])

    def _reply(
        self, text: str, outcome: str, lines: Iterable[str], answer: Answer | None = None, escaped: bool = False
    ) -> Reply:
        """
        Encode C{lines}, capped at L{max_output} bytes, as the reply to query C{text}.
        """
        data = encode_lines(cap_lines(lines, self.max_output, self.ascii_only), self.ascii_only)
        return Reply(data, outcome, text if escaped else escape_query(text), answer)


__all__ = ["Responder"]
