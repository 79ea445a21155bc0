"""
The RFC 1288 finger server: query parsing, the service that answers queries, and the protocol and factory.

One connection carries one query.  The protocol reads a line (CRLF or bare LF, in as many TCP segments as the
client likes, at most L{MAX_QUERY} bytes), asks L{FingerService.answer}, writes the answer with CRLF line endings
and closes.  The factory keeps each answer's bytes under the query line that asked for it, and sends them again
for the same line as long as L{FingerService.is_current} says the answer still holds.  On a TCP port, a query
that came with its connection is answered as the connection is accepted (L{sshfinger.finger.onaccept}).  Every stored
text is sanitized (L{sshfinger.finger.render.sanitize}) and the answer is capped in size.  Forwarding (C{user@host}) is
always refused; the user list can be.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Iterable
from itertools import islice
from typing import NamedTuple

from twisted.internet import tcp
from twisted.internet.interfaces import IAddress, IReactorTime, ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure

from sshfinger.finger.accesslog import EventQueryLog, IQueryLog
from sshfinger.finger.render import cap_lines, encode_lines, render_listing, render_record, sanitize
from sshfinger.model.peers import LOCAL_PEER, describe_peer, peer_key
from sshfinger.store.interfaces import IUserStore

#: Longest query accepted, in bytes, not counting its line ending.
MAX_QUERY = 512
#: Most accounts an empty query lists (the answer is also capped in bytes); a huge store costs no more.
LIST_MAX = 1000
#: Answers kept for reuse, per factory (the cache is emptied when it grows past this many or L{CACHE_BYTES}).
CACHE_SIZE = 10_000
#: Bytes of encoded answers kept for reuse, per factory (their lines are kept too, about as much again).
CACHE_BYTES = 16 * 1024 * 1024

#: Longest query text kept in a log event, in characters (after escaping).
LOG_QUERY_CHARS = 100

#: Most connections open (counting a new one) for which a new connection's query is read while it is accepted
#: (L{read_at_once}); in a burst beyond that, the reactor reads it on its next turn (see L{FingerProtocol}).
READ_AT_ONCE_MAX = 16

#: Most seconds between two checks for connections past their deadline (see L{FingerFactory.timeout}).
SWEEP_INTERVAL = 1.0

#: The fixed lines a peer may receive.
LIST_DENIED = "Finger online user list denied"
FORWARD_DENIED = "Finger forwarding service denied"
QUERY_TOO_LONG = "finger: query too long"
TOO_MANY = "finger: too many connections from your address, try again later"
INTERNAL_ERROR = "Internal error in server"


#: Linux's option to hold partial segments until uncorked or closed (L{None} elsewhere).
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)

#: How a query waiting in a socket is read before the socket has a transport: without waiting (0 where the
#: system has no such flag, and L{FingerProtocol.answer_on_accept} does nothing).
_DONT_WAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
#: Linux's flag to hold the data sent for more to come, here the FIN: what L{send_with_fin} does for a transport,
#: without a system call of its own (0 elsewhere).
_MORE: int = getattr(socket, "MSG_MORE", 0)

#: A query that is nothing but a user name.
_PLAIN_USER = re.compile(r"[^\s@/][^\s@]*")


class QueryError(ValueError):
    """
    A query does not follow RFC 1288's grammar.  The message is one line, safe to show to the peer.
    """


class Query(NamedTuple):
    """
    One parsed finger query.

    @ivar verbose: the query started with C{/W}.
    @ivar user: the user asked about, or L{None} for the user list.
    @ivar hosts: the hosts of a forwarding query (C{user@a@b} gives C{("a", "b")}), empty otherwise.
    """

    verbose: bool = False
    user: str | None = None
    hosts: tuple[str, ...] = ()


def parse_query(line: str) -> Query:
    """
    Parse one query line (without its line ending) by RFC 1288's grammar::

        {Q1} ::= [{W}|{W}{S}{U}]{C}
        {Q2} ::= [{W}{S}][{U}]{H}{C}
        {H}  ::= @hostname | @hostname{H}
        {W}  ::= /W            (any case)
        {S}  ::= <SP> | <SP>{S}

    Leading and trailing whitespace is ignored; any whitespace may separate C{/W} from what follows.  A user is
    any run of characters without whitespace or C{"@"} that does not start with C{"/"}; whether it names an
    account is for L{FingerService} to say.

    @raise QueryError: for anything else (C{"/X"}, C{"/Walice"}, C{"alice bob"}, C{"alice@"}).
    """
    if _PLAIN_USER.fullmatch(line):  # the common case, answered without the general parse below
        return Query(False, line)
    text = line.strip()
    verbose = False
    if text[:2] in ("/W", "/w"):
        rest = text[2:]
        if rest and not rest[0].isspace():
            raise QueryError("/W must be followed by a space")
        verbose = True
        text = rest.strip()
    if not text:
        return Query(verbose)
    if len(text.split(None, 1)) > 1:
        raise QueryError("expected [/W] [user][@host...]")
    if text.startswith("/"):
        raise QueryError("unknown switch: only /W is supported")
    user, *hosts = text.split("@")
    if any(not host for host in hosts):
        raise QueryError("empty host name")
    return Query(verbose, user or None, tuple(hosts))


class Answer(list[str]):
    """
    The lines answering one query, what kind of answer it was, and how long it holds (L{FingerService.is_current}).

    @ivar outcome: for the log: C{"user"}, C{"no-such-user"}, C{"list"}, C{"list-denied"} or C{"forward-denied"}.
    @ivar version: the store's L{IUserStore.version} when answering, if the answer depends on an account; else
        L{None}.
    @ivar expires: the time from which the answer may read differently even with the same account (its
        "N minutes ago" text changes); infinity if never, 0 for an answer never reused.
    """

    def __init__(
        self,
        lines: Iterable[str],
        outcome: str,
        version: int | None = None,
        expires: float = math.inf,
    ) -> None:
        """
        @param lines: the lines, without line endings.
        @param outcome: see L{Answer.outcome}; the other parameters likewise.
        """
        super().__init__(lines)
        self.outcome = outcome
        self.version = version
        self.expires = expires


class FingerService:
    """
    Answers finger queries from an L{IUserStore}'s in-memory view.

    Every method returns an L{Answer} (a list of lines without line endings) at once: lookups use
    L{IUserStore.peek} and L{IUserStore.visible_accounts} only, so nothing waits on a disk or a thread.

    @ivar store: the user store.
    @ivar allow_list: whether an empty query lists the users.
    """

    def __init__(self, store: IUserStore, clock: IReactorTime, allow_list: bool = True) -> None:
        """
        @param store: the user store.
        @param clock: anything with C{seconds()}, for the age of updates (the reactor, or a L{task.Clock}).
        @param allow_list: whether an empty query lists the users; when false it gets L{LIST_DENIED}.
        """
        self.store = store
        self.clock = clock
        self.allow_list = allow_list

    def user(self, login: str, verbose: bool) -> Answer:
        """
        Describe one account.

        A login that is unknown, hidden or not even a valid login gets the same single line
        C{"finger: LOGIN: no such user."}, so a peer cannot tell them apart.  The answer holds until the store
        changes (L{IUserStore.version}), or (for a record) until the next whole minute since the update, when its
        "N minutes ago" text (L{sshfinger.finger.render.age_text}) may change.
        """
        version = self.store.version
        account = self.store.peek(login)  # an invalid login is in no store: no need to check it first
        if account is None or account.hidden:
            return Answer([f"finger: {sanitize(login)}: no such user."], "no-such-user", version)
        now = self.clock.seconds()
        expires = account.updated_at + 60 * ((now - account.updated_at) // 60 + 1)
        return Answer(render_record(account, verbose, now), "user", version, expires)

    def is_current(self, answer: Answer, now: float) -> bool:
        """
        Return whether C{answer} still answers its query at time C{now}: it has not expired, and if it depends on
        an account, no account has changed since (the store's L{IUserStore.version} is the same; a change to any
        account counts, which is rare next to queries and costs one answer rendered again).
        """
        return now < answer.expires and (answer.version is None or answer.version == self.store.version)

    def listing(self) -> Answer:
        """
        List the visible accounts (at most L{LIST_MAX}), or refuse with L{LIST_DENIED} when L{allow_list} is
        false.
        """
        if not self.allow_list:
            return Answer([LIST_DENIED], "list-denied")
        accounts = list(islice(self.store.visible_accounts(), LIST_MAX + 1))
        lines = list(render_listing(accounts[:LIST_MAX]))
        if len(accounts) > LIST_MAX:
            lines.append(f"... more accounts than the {LIST_MAX} listed; ask for one by name")
        return Answer(lines, "list", expires=0.0)  # any change to any account changes it: never reused

    def forward(self, query: Query) -> Answer:
        """
        Refuse a forwarding query (C{user@host}) with L{FORWARD_DENIED}, as RFC 1288 section 3.2.1 recommends.
        """
        return Answer([FORWARD_DENIED], "forward-denied")

    def answer(self, query: Query) -> Answer:
        """
        Answer any query: forwarding is refused, an empty query lists the users (C{/W} changes nothing there), a
        user query describes the user, verbosely with C{/W}.
        """
        if query.hosts:
            return self.forward(query)
        if query.user is None:
            return self.listing()
        return self.user(query.user, query.verbose)


def send_with_fin(transport: ITransport) -> None:
    """
    Ask the kernel to hold what C{transport} writes next until the connection closes (Linux C{TCP_CORK}), so that
    an answer followed by C{loseConnection} leaves in the same segment as the FIN rather than in a segment of its
    own: two packets fewer per query, counting the peer's acknowledgements, and less kernel work on both ends.
    Does nothing for a transport without a socket (C{getHandle}) or where the option is missing or refused (a
    UNIX socket, another system).
    """
    get_handle = getattr(transport, "getHandle", None)
    if _TCP_CORK is None or get_handle is None:
        return
    try:
        get_handle().setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)
    except (OSError, AttributeError):  # not a TCP socket, or no socket at all
        pass


def read_at_once(transport: ITransport) -> None:
    """
    Read what a plain TCP connection has received already, at once rather than on the reactor's next turn.

    A finger client sends its query as soon as it is connected, so by the time the server accepts the connection
    the query is nearly always waiting in the socket.  Reading it while the connection is set up spares the
    reactor one readiness event per query.  This calls the transport's C{doRead}
    (L{twisted.internet.interfaces.IReadDescriptor}) as the reactor would: with nothing to read yet it returns
    at once, and the reactor reads later as usual; a connection found closed or broken is closed.

    Only a protocol directly on a L{twisted.internet.tcp.Server} is read this way.  A wrapping transport (TLS,
    the PROXY protocol) answers C{doRead} too, by delegation to the socket beneath it; but a wrapper may make the
    connection from within its own C{dataReceived}, where reading the socket again would reorder the stream.
    """
    if type(transport) is tcp.Server and transport.doRead() is not None:
        transport.loseConnection()


def escape_query(text: str) -> str:
    """
    Return a query as log text: control and non-ASCII characters escaped by L{ascii}, at most L{LOG_QUERY_CHARS}
    characters.
    """
    escaped = ascii(text)
    if len(escaped) > LOG_QUERY_CHARS:
        escaped = escaped[: LOG_QUERY_CHARS - 3] + "..."
    return escaped


class Reply(NamedTuple):
    """
    A query's answer as it goes out, which L{FingerFactory} keeps for the next identical query line.

    @ivar data: the bytes sent.
    @ivar outcome: for the log (see L{FingerProtocol}).
    @ivar query: the query as logged (L{escape_query}).
    @ivar answer: the L{Answer} it was made from, if it may be sent again while that answer holds
        (L{FingerService.is_current}); else L{None}.
    """

    data: bytes
    outcome: str
    query: str
    answer: Answer | None = None


class FingerProtocol(Protocol):
    """
    Serve one finger query on one connection.

    Bytes are buffered until the first LF (a CR before it is dropped); the line is decoded as UTF-8 with
    C{errors="replace"}, so any byte sequence becomes text (undecodable bytes turn into U+FFFD) and no decoding
    error can occur.  Anything after the line is ignored.  The answer is written with CRLF line endings, capped at
    C{factory.max_output} bytes, and the connection is closed.  A line the factory answered before, with an
    answer that still holds, gets the same bytes again without being parsed (L{FingerFactory.cached_reply}).

    On a port set up for it (L{sshfinger.finger.onaccept}), a query that came with its connection is answered before the
    connection even has a transport (L{answer_on_accept}), and its answer leaves at once.  Otherwise, on a plain
    TCP connection a query that came with the connection is read as soon as the connection is made
    (L{read_at_once}), unless more than L{READ_AT_ONCE_MAX} connections are open: a burst of connections is
    accepted in one loop, and a query answered there through a transport holds back the answers of every
    connection accepted before it until the loop ends (they leave in the reactor's write events), so in a burst
    the reactor reads as usual and accepting stays quick.  The answer and the FIN leave together
    (L{send_with_fin}).

    The whole query must arrive within C{factory.timeout} seconds; once the answer is written, the peer has as long
    again to read it before the connection is aborted (L{FingerFactory.watch}).  Each query is recorded in
    C{factory.query_log} (L{IQueryLog}) with the peer, the query (escaped by L{escape_query}) and its outcome:
    C{"user"}, C{"no-such-user"}, C{"list"}, C{"list-denied"}, C{"forward-denied"}, C{"bad-query"},
    C{"too-long"}, C{"timeout"}, C{"too-many"} or C{"error"}.  A peer that closes before sending a query is not
    logged.

    @ivar factory: the L{FingerFactory} that built this protocol.
    """

    log = Logger()
    factory: FingerFactory
    #: The peer's address as the port gave it to L{FingerFactory.buildProtocol} (else the transport is asked).
    address: IAddress | None = None
    #: When the connection times out (see L{FingerFactory.watch}).
    deadline = 0.0

    # The starting state, as class attributes: a connection sets only what it changes.
    _buffer = b""
    _state = "reading"  # then "answering" (waiting on the service), then "done"
    _lost = False
    _counted_as: str | None = None
    _peer = LOCAL_PEER
    _line: bytes | None = None  # the query line, once parsed (the key of its reply)
    _query = ""
    _socket: socket.socket | None = None  # while answer_on_accept answers: the socket the answer goes to
    _unsent = b""  # what the socket did not take of that answer

    def answer_on_accept(self, skt: socket.socket) -> bool:
        """
        Answer the query waiting in C{skt}, a plain TCP connection just accepted and not yet given a transport,
        straight on the socket, and close it; return whether this was done.  See L{sshfinger.finger.onaccept}.

        It is done if the socket holds one whole query line and nothing after it, and the peer is under its
        connection limit; otherwise nothing is taken from the socket, and the connection goes on as usual.  The
        line is answered as L{dataReceived} would answer it, logged and all; only the answer goes to the socket.
        If the socket takes only part of it, or the service answers later (a L{Deferred}), the rest is done
        through the transport, once the connection is made (L{connectionMade}), and this returns false.
        """
        factory = self.factory
        if not _DONT_WAIT:  # no way to look without waiting (Windows): a blocking socket would block the reactor
            return False
        try:
            data = skt.recv(MAX_QUERY + 3, socket.MSG_PEEK | _DONT_WAIT)
        except OSError:  # nothing there yet, or an error that the transport will meet in its turn
            return False
        end = data.find(b"\n")
        if end < 0 or end != len(data) - 1:  # no line yet (or the peer closed), or more than the line
            return False
        address = self.address
        if factory.connections_from(peer_key(address)) >= factory.max_per_peer:
            return False  # to be refused, through the transport
        try:
            skt.recv(len(data), _DONT_WAIT)
        except OSError:
            return False
        self._peer = describe_peer(address)
        self._socket = skt
        try:
            self._line_received(data[:-2] if data.endswith(b"\r\n") else data[:-1])
        finally:
            self._socket = None
        return self._state == "done" and not self._unsent

    def connectionMade(self) -> None:
        """
        Start the deadline and count the connection against its peer's limit, refusing it if over; then, unless
        in a burst, read the query if it came with the connection (L{read_at_once}).  A connection answered as it
        was accepted (L{answer_on_accept}) only has the transport write what the socket did not take, if anything.

        Under a wrapping transport (a L{ProtocolWrapper}: the PROXY protocol's, TLS) the connection is counted
        when its first bytes arrive instead: by then a PROXY wrapper has read its header and gives the real
        client as the peer, where now it would give the proxy, and every client behind it would share one limit.
        """
        factory = self.factory
        if self._state == "done":  # answered as it was accepted (answer_on_accept)
            if self._unsent:
                self._write(self._unsent)
            return
        factory.watch(self)
        if isinstance(self.transport, ProtocolWrapper):
            self._peer = describe_peer(self.transport.getPeer())  # for now: the proxy's, if there is one
            return
        address = self.address if self.address is not None else self.transport.getPeer()  # type: ignore[union-attr]
        if self._admit(address) and factory.watched() <= READ_AT_ONCE_MAX:
            read_at_once(self.transport)  # type: ignore[arg-type]

    def _admit(self, address: IAddress) -> bool:
        """
        Count this connection against the limit of C{address}'s host; if that host is at its limit, refuse it.

        @return: whether it was admitted.
        """
        self._peer = describe_peer(address)
        key = peer_key(address)
        if not self.factory.admit(key):
            self._respond("too-many", [TOO_MANY])
            return False
        self._counted_as = key
        return True

    def dataReceived(self, data: bytes) -> None:
        """
        Buffer C{data} until a whole query line arrives, then answer it; ignore anything after that line.
        """
        if self._state != "reading":
            return
        if self._counted_as is None and not self._admit(self.transport.getPeer()):  # type: ignore[union-attr]
            return
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0:
            pending = self._buffer[:-1] if self._buffer.endswith(b"\r") else self._buffer
            if len(pending) > MAX_QUERY:
                self._too_long(pending)
            return
        line = self._buffer[:end]
        self._buffer = b""
        self._line_received(line[:-1] if line.endswith(b"\r") else line)

    def _line_received(self, line: bytes) -> None:
        """
        Answer query C{line} (without its line ending): with the reply kept for it, if it still holds, else
        afresh (L{_answer}).
        """
        if len(line) > MAX_QUERY:
            self._too_long(line)
            return
        reply = self.factory.cached_reply(line)
        if reply is not None:
            self._send(reply)
        else:
            self._answer(line)

    def _answer(self, line: bytes) -> None:
        self._line = line
        self._query = line.decode("utf-8", errors="replace")
        try:
            query = parse_query(self._query)
        except QueryError as error:
            self._respond("bad-query", [f"finger: bad query: {sanitize(str(error))}"])
            return
        self._state = "answering"
        try:
            result = self.factory.service.answer(query)
        except Exception:
            self._failed(Failure())
            return
        if isinstance(result, list):  # (not isinstance(result, Deferred): that check goes through ABCMeta)
            self._answered(result, query)
        else:  # a Deferred: a service that has to wait for its answer
            result.addCallbacks(self._answered, self._failed, callbackArgs=(query,))

    def _too_long(self, text: bytes) -> None:
        self._query = text[: MAX_QUERY + 1].decode("utf-8", errors="replace")
        self._buffer = b""
        self._respond("too-long", [QUERY_TOO_LONG])

    def _answered(self, lines: Iterable[str], query: Query) -> None:
        if self._state != "answering":
            return
        outcome = getattr(lines, "outcome", None)
        if outcome is None:
            outcome = "forward-denied" if query.hosts else "list" if query.user is None else "user"
        self._respond(outcome, lines)

    def _failed(self, failure: Failure) -> None:
        self.log.failure(
            "finger {peer} {query}: internal error", failure, peer=self._peer, query=escape_query(self._query)
        )
        if self._state == "answering":
            self._respond("error", [INTERNAL_ERROR])

    def _respond(self, outcome: str, lines: Iterable[str]) -> None:
        """
        Encode C{lines} and send them (L{_send}); let the factory keep the reply if it came from an L{Answer}.
        """
        factory = self.factory
        answer = lines if isinstance(lines, Answer) else None
        try:
            data = encode_lines(cap_lines(lines, factory.max_output, factory.ascii_only), factory.ascii_only)
        except Exception:
            self.log.failure(
                "finger {peer} {query}: cannot render the answer", peer=self._peer, query=escape_query(self._query)
            )
            outcome, data, answer = "error", encode_lines([INTERNAL_ERROR]), None
        reply = Reply(data, outcome, escape_query(self._query), answer)
        if answer is not None and self._line is not None:
            factory.remember(self._line, reply)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        """
        Log the query's outcome, then (if the peer is still there) write the answer, close, and give the peer
        a fresh deadline to read it.
        """
        self._state = "done"
        self.factory.query_log.query(self._peer, reply.query, reply.outcome)
        if self._socket is not None:
            self._send_on_socket(self._socket, reply.data)
        elif not self._lost:
            self._write(reply.data)

    def _send_on_socket(self, skt: socket.socket, data: bytes) -> None:
        """
        Send C{data} on C{skt} (while L{answer_on_accept} answers) and close it, the data held to leave with the
        FIN (C{MSG_MORE}); or, if the socket takes only part of it, keep the rest for the transport (L{_unsent}).
        """
        try:
            sent = skt.send(data, _DONT_WAIT | _MORE)
        except OSError:  # the peer is gone
            sent = len(data)
        if sent < len(data):
            self._unsent = data[sent:]
        else:
            skt.close()

    def _write(self, data: bytes) -> None:
        """
        Write C{data} and close, giving the peer a fresh deadline to read it.
        """
        self.factory.watch(self)
        send_with_fin(self.transport)  # type: ignore[arg-type]
        self.transport.write(data)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def timeoutConnection(self) -> None:
        """
        Called by the factory at the deadline: close a connection whose query did not arrive (or was not
        answered) in time; abort one whose peer does not read its answer.
        """
        if self._state == "done":
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if self._state == "reading":
            self._query = self._buffer.decode("utf-8", errors="replace")
        self._state = "done"
        self._buffer = b""
        self.factory.query_log.query(self._peer, escape_query(self._query), "timeout")
        self.factory.watch(self)
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Drop the deadline, free the peer's connection slot and make sure nothing is written any more.
        """
        self._lost = True
        self.factory.unwatch(self)
        if self._counted_as is not None:
            self.factory.release(self._counted_as)
            self._counted_as = None


class FingerFactory(ServerFactory):
    """
    Build L{FingerProtocol}s, count their connections per peer host, enforce their deadlines and keep their
    replies for reuse.

    A reply is kept under its query line (at most L{CACHE_SIZE} replies and L{CACHE_BYTES} bytes: past either,
    the cache starts afresh) and sent again while its answer holds (L{FingerService.is_current}); so the query
    a server hears most, a known user's name, costs a dictionary lookup and two comparisons rather than parsing,
    rendering and encoding.

    Each open connection carries its deadline; one L{LoopingCall} checks them all every L{SWEEP_INTERVAL} seconds
    (or a quarter of the timeout, if shorter) while any connection is open.  A connection thus costs a set
    insertion and removal rather than a timed call of its own (a heap entry created, cancelled and cleared), and
    is closed between C{timeout} and C{timeout} plus that interval after its deadline started.

    @ivar service: the L{FingerService} answering queries.
    @ivar clock: the reactor (or a L{task.Clock}) for deadlines.
    @ivar timeout: seconds a peer has to send its query, and again to read the answer.
    @ivar max_per_peer: most concurrent connections from one host (all UNIX-socket peers share one count).
    @ivar ascii_only: send answers in ASCII (L{sshfinger.finger.render.to_ascii}) instead of UTF-8.
    @ivar max_output: largest answer in bytes; longer ones end with C{"[output truncated]"}.
    @ivar query_log: where each query is recorded (L{IQueryLog}).
    """

    protocol = FingerProtocol

    def __init__(
        self,
        service: FingerService,
        clock: IReactorTime,
        timeout: float = 10.0,
        max_per_peer: int = 20,
        ascii_only: bool = False,
        max_output: int = 65536,
        query_log: IQueryLog | None = None,
    ) -> None:
        """
        See the instance variables; C{query_log} defaults to info events in the global log (L{EventQueryLog}).
        """
        self.service = service
        self.clock = clock
        self.timeout = timeout
        self.max_per_peer = max_per_peer
        self.ascii_only = ascii_only
        self.max_output = max_output
        self.query_log = query_log if query_log is not None else EventQueryLog(FingerProtocol.log)
        self._per_peer: dict[str, int] = {}
        self._replies: dict[bytes, Reply] = {}
        self._reply_bytes = 0
        self._watched: set[FingerProtocol] = set()
        self._sweeper = LoopingCall(self._sweep)
        self._sweeper.clock = clock

    def admit(self, key: str) -> bool:
        """
        Count one more connection from peer C{key} (see L{sshfinger.model.peers.peer_key}), unless it has
        L{max_per_peer} already.

        @return: whether the connection was admitted (and counted).
        """
        count = self._per_peer.get(key, 0)
        if count >= self.max_per_peer:
            return False
        self._per_peer[key] = count + 1
        return True

    def release(self, key: str) -> None:
        """
        Forget one admitted connection from peer C{key}.
        """
        count = self._per_peer.get(key, 0) - 1
        if count > 0:
            self._per_peer[key] = count
        else:
            self._per_peer.pop(key, None)

    def connections_from(self, key: str) -> int:
        """
        Return the number of admitted connections from peer C{key} still open.
        """
        return self._per_peer.get(key, 0)

    def buildProtocol(self, addr: IAddress) -> FingerProtocol:
        """
        Build a protocol for a connection from C{addr}, which it keeps (so it need not ask its transport again).
        """
        protocol = FingerProtocol()
        protocol.factory = self
        protocol.address = addr
        return protocol

    def cached_reply(self, line: bytes) -> Reply | None:
        """
        Return the reply kept for query C{line} (without its line ending), if its answer still holds.
        """
        reply = self._replies.get(line)
        if reply is None or not self.service.is_current(reply.answer, self.clock.seconds()):  # type: ignore[arg-type]
            return None
        return reply

    def remember(self, line: bytes, reply: Reply) -> None:
        """
        Keep C{reply} for query C{line}, if it has an answer that holds now.
        """
        if reply.answer is None or not self.service.is_current(reply.answer, self.clock.seconds()):
            return
        if len(self._replies) >= CACHE_SIZE or self._reply_bytes + len(reply.data) > CACHE_BYTES:
            self._replies.clear()
            self._reply_bytes = 0
        old = self._replies.get(line)
        if old is not None:
            self._reply_bytes -= len(old.data)
        self._replies[line] = reply
        self._reply_bytes += len(reply.data)

    def watch(self, protocol: FingerProtocol) -> None:
        """
        (Re)start C{protocol}'s deadline: its C{timeoutConnection} is called L{timeout} seconds from now, unless
        L{unwatch} comes first.
        """
        protocol.deadline = self.clock.seconds() + self.timeout
        self._watched.add(protocol)
        if not self._sweeper.running:
            self._sweeper.start(min(SWEEP_INTERVAL, self.timeout / 4), now=False)

    def unwatch(self, protocol: FingerProtocol) -> None:
        """
        Drop C{protocol}'s deadline (it has closed).
        """
        self._watched.discard(protocol)

    def watched(self) -> int:
        """
        Return the number of connections with a running deadline.
        """
        return len(self._watched)

    def _sweep(self) -> None:
        now = self.clock.seconds()
        for protocol in [protocol for protocol in self._watched if protocol.deadline <= now]:
            self._watched.discard(protocol)
            try:
                protocol.timeoutConnection()
            except Exception:  # one broken connection must not stop the deadlines of all the others
                FingerProtocol.log.failure("finger {peer}: cannot time out the connection", peer=protocol._peer)
        if not self._watched and self._sweeper.running:
            self._sweeper.stop()

    def stopFactory(self) -> None:
        """
        Stop checking deadlines: the port is closing.
        """
        if self._sweeper.running:
            self._sweeper.stop()


__all__ = [
    "Answer",
    "FingerFactory",
    "FingerProtocol",
    "FingerService",
    "Query",
    "QueryError",
    "Reply",
    "escape_query",
    "parse_query",
    "read_at_once",
    "send_with_fin",
]
