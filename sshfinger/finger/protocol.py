"""
The RFC 1288 finger protocol and its factory: one connection carries one query.

The protocol reads a line (CRLF or bare LF, in as many TCP segments as the client likes), hands it to the
factory's L{Responder}, writes the reply through its transport and closes.  It knows only its transport: the
reply cache, the limits and the deadlines are the factory's parts (L{sshfinger.finger.cache},
L{sshfinger.finger.limits}, L{sshfinger.finger.deadlines}), and the factory only builds and wires them.
"""

from __future__ import annotations

import socket

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IAddress, IReactorTime, IReadDescriptor, ITransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure

from sshfinger.finger import constants
from sshfinger.finger.accesslog import EventQueryLog, IQueryLog
from sshfinger.finger.cache import Reply
from sshfinger.finger.deadlines import Deadlines
from sshfinger.finger.limits import ConnectionLimits, PeerKeys
from sshfinger.finger.query import escape_query
from sshfinger.finger.render import encode_lines
from sshfinger.finger.respond import Responder
from sshfinger.finger.service import IFingerService
from sshfinger.model.peers import IPV6_PREFIX, LOCAL_PEER, describe_peer
from sshfinger.ops.descriptors import finger_connection_cap

#: Linux's option to hold partial segments until uncorked or closed (L{None} elsewhere).
TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


def send_with_fin(transport: ITransport) -> None:
    """
    Ask the kernel to hold what C{transport} writes next until the connection closes (Linux C{TCP_CORK}), so that
    an answer followed by C{loseConnection} leaves in the same segment as the FIN: two packets fewer per query.
    Does nothing for a transport without a socket (C{getHandle}) or where the option is missing or refused.
    """
    get_handle = getattr(transport, "getHandle", None)
    if TCP_CORK is None or get_handle is None:
        return
    try:
        get_handle().setsockopt(socket.IPPROTO_TCP, TCP_CORK, 1)
    except (OSError, AttributeError):  # not a TCP socket, or no socket at all
        pass


def read_at_once(transport: ITransport, crowded: bool) -> None:
    """
    Read what a connection has received already, now rather than on the reactor's next turn: a finger client
    sends its query as soon as it is connected, so it is nearly always waiting, and reading it now spares the
    reactor a readiness event.  Only a transport that is itself a read descriptor is read this way (a wrapping
    transport, TLS or the PROXY protocol's, may make the connection from within its own C{dataReceived}, where
    reading the socket again would reorder the stream).  When C{crowded} (many connections open: a burst being
    accepted in one loop), a transport whose writes wait for the reactor is left for the reactor to read, so an
    answer written now does not hold back those of the connections accepted before it.
    """
    if isinstance(transport, ProtocolWrapper) or not IReadDescriptor.providedBy(transport):
        return
    if crowded and isinstance(transport, FileDescriptor):
        return
    if transport.doRead() is not None:
        transport.loseConnection()


class FingerProtocol(Protocol):
    """
    Serve one finger query on one connection.

    Bytes are buffered until the first LF (a CR before it is dropped); anything after the line is ignored.  The
    reply (L{Responder.respond}) is written, held to leave with the FIN (L{send_with_fin}), and the connection is
    closed.  The whole query must arrive within the factory's timeout; once the answer is written, the peer has as
    long again to read it before the connection is aborted.  Each query is recorded in C{factory.query_log} with
    the peer, the query (escaped) and its outcome: C{"user"}, C{"no-such-user"}, C{"list"}, C{"list-denied"},
    C{"list-limited"}, C{"forward-denied"}, C{"bad-query"}, C{"too-long"}, C{"timeout"}, C{"too-many"} or
    C{"error"}.  A peer that closes before sending a query is not logged.

    Under a wrapping transport (the PROXY protocol's, TLS) the connection is counted when its first bytes
    arrive: by then a PROXY wrapper gives the real client as the peer, not the proxy every client shares.
    """

    log = Logger()
    factory: FingerFactory
    #: The peer's address as the port gave it to L{FingerFactory.buildProtocol} (else the transport is asked).
    address: IAddress | None = None
    #: When the connection times out (see L{Deadlines.watch}).
    deadline = 0.0

    # The starting state, as class attributes: a connection sets only what it changes.
    _buffer = b""
    _state = "reading"  # then "answering" (waiting on the service), then "done"
    _lost = False
    _counted_as: str | None = None
    _peer = LOCAL_PEER
    _query = b""  # the query line while the service answers it (for the log, if it times out)

    def connectionMade(self) -> None:
        """
        Start the deadline and count the connection against its peer's limit, refusing it if over; then read
        the query if it came with the connection (L{read_at_once}).
        """
        factory = self.factory
        factory.deadlines.watch(self)
        transport = self.transport
        if isinstance(transport, ProtocolWrapper):
            self._peer = describe_peer(transport.getPeer())  # for now: the proxy's, if there is one
            return
        address = self.address if self.address is not None else transport.getPeer()  # type: ignore[union-attr]
        if self._admit(address):
            read_at_once(transport, len(factory.deadlines) > constants.READ_AT_ONCE_MAX)  # type: ignore[arg-type]

    def _admit(self, address: IAddress) -> bool:
        """
        Count this connection against the limit of C{address}'s network; if that is at its limit, refuse it.
        """
        self._peer = describe_peer(address)
        key = self.factory.peer_key(address)
        if not self.factory.admit(key, self):
            self._finish(self.factory.too_many)
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
            if len(pending) > constants.MAX_QUERY:
                self._buffer = b""
                self._respond(pending)
            return
        line = self._buffer[:end]
        self._buffer = b""
        self._respond(line[:-1] if line.endswith(b"\r") else line)

    def _respond(self, line: bytes) -> None:
        result = self.factory.responder.respond(line, self._counted_as or self._peer)
        if isinstance(result, Reply):
            self._finish(result)
        else:  # a Deferred: a service that has to wait for its answer
            self._state, self._query = "answering", line
            result.addCallback(self._answered)

    def _answered(self, reply: Reply) -> None:
        if self._state == "answering":
            self._finish(reply)

    def _finish(self, reply: Reply) -> None:
        """
        Log the query's outcome, then (if the peer is still there) write the reply, close, and give the peer a
        fresh deadline to read it.
        """
        self._state = "done"
        self.factory.query_log.query(self._peer, reply.query, reply.outcome, self._elapsed())
        if not self._lost:
            self.factory.deadlines.watch(self)
            send_with_fin(self.transport)  # type: ignore[arg-type]
            self.transport.write(reply.data)  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _elapsed(self) -> float:
        """
        Seconds since the connection was accepted (its first deadline was set then).
        """
        deadlines = self.factory.deadlines
        return deadlines.clock.seconds() - (self.deadline - deadlines.timeout)

    def timeoutConnection(self) -> None:
        """
        Called at the deadline: close a connection whose query did not arrive (or was not answered) in time;
        abort one whose peer does not read its answer.
        """
        if self._state == "done":
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()  # type: ignore[union-attr]
            return
        query = self._buffer if self._state == "reading" else self._query
        self._state, self._buffer = "done", b""
        self.factory.query_log.query(
            self._peer, escape_query(query.decode("utf-8", "replace")), "timeout", self._elapsed()
        )
        self.factory.deadlines.watch(self)
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Drop the deadline, free the peer's connection slot and make sure nothing is written any more.
        """
        self._lost = True
        self.factory.deadlines.unwatch(self)
        if self._counted_as is not None:
            self.factory.limits.release(self._counted_as)
            self._counted_as = None


class FingerFactory(ServerFactory[FingerProtocol]):
    """
    Build L{FingerProtocol}s over one set of parts: the L{Responder} (service, reply cache, listing limits), the
    L{ConnectionLimits} and the L{Deadlines}.

    Past the total connection limit, the connection whose deadline started first is timed out at once to make
    room: real queries are answered in milliseconds, so the connections this closes are idle ones.

    @ivar responder: answers query lines.
    @ivar limits: connections per peer key and in all.
    @ivar deadlines: every open connection's deadline.
    @ivar query_log: where each query is recorded (L{IQueryLog}).
    @ivar peer_key: gives a peer's counting key (L{PeerKeys}: IPv6 peers by their network).
    """

    protocol = FingerProtocol

    def __init__(
        self,
        service: IFingerService,
        clock: IReactorTime,
        timeout: float = constants.TIMEOUT,
        max_per_peer: int = constants.MAX_PER_PEER,
        ascii_only: bool = False,
        max_output: int = constants.MAX_OUTPUT,
        query_log: IQueryLog | None = None,
        max_connections: int = constants.MAX_CONNECTIONS,
        ipv6_prefix: int = IPV6_PREFIX,
    ) -> None:
        """
        See the instance variables; C{query_log} defaults to info events in the global log (L{EventQueryLog}).
        """
        self.responder = Responder(service, clock, max_output, ascii_only)
        self.limits = ConnectionLimits(max_per_peer, max_connections)
        self.deadlines = Deadlines(clock, timeout)
        self.query_log = query_log if query_log is not None else EventQueryLog(FingerProtocol.log)
        self.peer_key = PeerKeys(ipv6_prefix)
        self.too_many = Reply(encode_lines([constants.TOO_MANY]), "too-many", escape_query(""))

    def admit(self, key: str, protocol: FingerProtocol) -> bool:
        """
        Count C{protocol}'s new connection from C{key}, unless that peer is at its limit; past the total limit,
        time out the oldest other open connection.

        @return: whether the connection was admitted (and counted).
        """
        if not self.limits.admit(key):
            return False
        if self.limits.over_total():
            oldest = self.deadlines.oldest(but=protocol)
            if oldest is not None:
                self.deadlines.expire(oldest)
        return True

    def buildProtocol(self, addr: IAddress | None) -> FingerProtocol:
        """
        Build a protocol for a connection from C{addr}, which it keeps (so it need not ask its transport again).
        """
        protocol = FingerProtocol()
        protocol.factory = self
        protocol.address = addr
        return protocol

    def startFactory(self) -> None:
        """
        Fit the cap on connections in all under the descriptor limit (L{finger_connection_cap}): a finger flood
        must leave descriptors for SSH and the store.
        """
        cap = finger_connection_cap(self.limits.max_total)
        if cap < self.limits.max_total:
            FingerProtocol.log.warn(
                "Finger connections capped at {cap} in all (a quarter of the descriptor limit), not {configured}",
                cap=cap,
                configured=self.limits.max_total,
            )
            self.limits.max_total = cap

    def stopFactory(self) -> None:
        """
        Stop checking deadlines and write out the queries not logged yet: the port is closing.
        """
        self.deadlines.stop()
        self.query_log.flush()


__all__ = ["FingerFactory", "FingerProtocol", "read_at_once", "send_with_fin"]
