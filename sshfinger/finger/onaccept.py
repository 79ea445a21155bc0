"""
Answering a finger query on the accepted socket itself, without building Twisted's TCP transport for it.

A finger client sends its query as soon as it is connected, so when the server accepts the connection the query
is nearly always in the socket already.  For such a connection the whole exchange is four system calls on the
accepted socket (look at the line, take it, send the answer held for the FIN, close), where a
L{twisted.internet.tcp.Server} costs its construction, four changes to the reactor's interest set, a write event
and the closing machinery: in C{bench/}, 40 % of the server's CPU time per query.

The protocol does not know about any of this.  L{AnsweringTransports} (a port's C{transport} callable, which
L{twisted.internet.tcp.Port} documents as the attribute to replace, "with the signature expected for
C{Server.__init__}") gives such a connection an L{AcceptedTransport}: a transport over the socket that is its own
read descriptor, so the protocol reads the waiting line from it in C{connectionMade} as it would from any
transport it may read at once, answers through C{write} and closes with C{loseConnection}, which calls the
protocol's C{connectionLost}: the protocol's lifecycle is whole.  What the socket does not take of an answer, or
an answer that comes later, goes through a L{twisted.internet.tcp.Server} built then over the same socket.  A
connection whose query is not there yet, or is followed by more bytes, gets the usual transport.

L{AnsweringEndpoint} wraps the finger service's endpoint and installs this on a plain TCP port; ports of other
kinds (UNIX, or TCP under a wrapping factory: TLS, the PROXY protocol) are left as they are.  C{twistd sshfinger
--no-answer-on-accept} leaves it out.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IReadDescriptor,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.finger import constants
from sshfinger.finger.protocol import FingerProtocol

#: How a socket is read without waiting (0 where the system has no such flag: then nothing is answered here).
DONT_WAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
#: Linux's flag to hold the data sent for more to come, here the FIN: a cork without a system call of its own.
MORE: int = getattr(socket, "MSG_MORE", 0)


@implementer(ITransport, IReadDescriptor)
class AcceptedTransport:
    """
    The transport of a connection whose whole query was waiting when it was accepted: reads and writes go
    straight to the socket, and the protocol reads the query at once (as it would from any transport that is
    its own read descriptor).

    @ivar socket: the accepted socket.
    @ivar protocol: the connection's protocol.
    @ivar waiting: the bytes of the query line waiting in the socket.
    @ivar disconnecting: whether the connection is closing (as L{ITransport} users expect).
    """

    log = Logger(namespace="sshfinger.finger")
    disconnecting = False
    _server: tcp.Server | None = None  # the usual transport, once one is needed (see _usual)

    def __init__(
        self, skt: socket.socket, protocol: FingerProtocol, addr: Any, port: tcp.Port, sessionno: int, reactor: Any,
        waiting: int,
    ) -> None:  # fmt: skip
        self.socket, self.protocol, self.waiting = skt, protocol, waiting
        self._arguments = (skt, protocol, addr, port, sessionno, reactor)

    def _usual(self) -> tcp.Server:
        """
        Return the usual transport over this socket (built the first time), which then carries the connection
        to its end and calls C{connectionLost}; it reads nothing more.
        """
        if self._server is None:
            self._server = tcp.Server(*self._arguments)
            self._server.stopReading()
        return self._server

    def doRead(self) -> None:
        """
        Take the waiting query line and give it to the protocol.  A socket that fails now is closed; an error in
        the protocol is logged and closes the connection, as the reactor would for a transport of its own.
        """
        if not self.waiting:
            return
        try:
            data = self.socket.recv(self.waiting, DONT_WAIT)
        except OSError:
            data = b""
        self.waiting = 0
        if not data:
            self._close(Failure(ConnectionLost()))
            return
        try:
            self.protocol.dataReceived(data)
        except Exception:
            self.log.failure("finger: error answering on accept")
            self.abortConnection()

    def write(self, data: bytes) -> None:
        """
        Send C{data} held for the FIN (C{MSG_MORE}); what the socket does not take goes through the usual
        transport.  A peer already gone takes everything.
        """
        if self._server is not None:
            self._server.write(data)
            return
        try:
            sent = self.socket.send(data, DONT_WAIT | MORE)
        except OSError:  # the peer is gone: the close tells the protocol
            sent = len(data)
        if sent < len(data):
            self._usual().write(data[sent:])

    def writeSequence(self, data: Any) -> None:
        """
        Write each of C{data}.
        """
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """
        Close the socket and tell the protocol (or let the usual transport do so, once it has written).
        """
        self._close(Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        """
        Close at once.
        """
        if self._server is not None:
            self._server.abortConnection()
            return
        self._close(Failure(ConnectionLost()))

    def _close(self, reason: Failure) -> None:
        if self._server is not None:
            self._server.loseConnection()
            return
        if self.disconnecting:
            return
        self.disconnecting = True
        if self.waiting:  # unread bytes would make the close a reset, losing the answer
            try:
                self.socket.recv(self.waiting, DONT_WAIT)
            except OSError:
                pass
        self.socket.close()
        self.protocol.connectionLost(reason)

    def getPeer(self) -> IAddress:
        """
        Return the client's address.
        """
        return self.protocol.address  # type: ignore[return-value]

    def getHost(self) -> IAddress:
        """
        Return the server's address.
        """
        return self._arguments[3].getHost()

    def fileno(self) -> int:
        """
        The socket's descriptor (L{IReadDescriptor}).
        """
        return self.socket.fileno()

    def logPrefix(self) -> str:
        """
        See L{IReadDescriptor}.
        """
        return "AcceptedTransport"

    def connectionLost(self, reason: Failure) -> None:
        """
        See L{IReadDescriptor}: this transport is never registered with a reactor, so this is not called.
        """


def waiting_line(skt: socket.socket) -> int:
    """
    Return the size of the query line waiting in C{skt} if exactly one whole line is there and nothing after it,
    else 0; nothing is taken from the socket.
    """
    if not DONT_WAIT:  # no way to look without waiting (Windows): a blocking socket would block the reactor
        return 0
    try:
        data = skt.recv(constants.MAX_QUERY + 3, socket.MSG_PEEK | DONT_WAIT)
    except OSError:  # nothing there yet, or an error that the transport will meet in its turn
        return 0
    if not data or data.find(b"\n") != len(data) - 1:  # no line yet (or the peer closed), or more than it
        return 0
    return len(data)


class AnsweringTransports:
    """
    A finger port's C{transport} callable: an L{AcceptedTransport} for a connection whose whole query is
    waiting, else the port's usual transport.

    @ivar transport: the usual transport callable (L{twisted.internet.tcp.Server}).
    """

    def __init__(self, transport: Callable[..., ITransport] = tcp.Server) -> None:
        self.transport = transport

    def __call__(
        self, skt: socket.socket, protocol: Any, addr: Any, port: tcp.Port, sessionno: int, reactor: Any
    ) -> ITransport:
        """
        Return the transport for a connection just accepted on C{port} (the arguments of
        L{twisted.internet.tcp.Server.__init__}).
        """
        if isinstance(protocol, FingerProtocol):
            waiting = waiting_line(skt)
            if waiting:
                return AcceptedTransport(skt, protocol, addr, port, sessionno, reactor, waiting)
        return self.transport(skt, protocol, addr, port, sessionno, reactor)


@implementer(IStreamServerEndpoint)
class AnsweringEndpoint:
    """
    Listen on another endpoint; if that gives a plain TCP port serving the factory itself, have the port answer
    waiting queries on the accepted socket (L{AnsweringTransports}).

    @ivar endpoint: the wrapped endpoint.
    """

    def __init__(self, endpoint: IStreamServerEndpoint) -> None:
        self.endpoint = endpoint

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen with C{protocolFactory} on the wrapped endpoint.
        """

        def answering(port: IListeningPort) -> IListeningPort:
            if isinstance(port, tcp.Port) and port.factory is protocolFactory:
                port.transport = AnsweringTransports(port.transport)  # type: ignore[assignment]
            return port

        return self.endpoint.listen(protocolFactory).addCallback(answering)


__all__ = ["AcceptedTransport", "AnsweringEndpoint", "AnsweringTransports", "waiting_line"]
