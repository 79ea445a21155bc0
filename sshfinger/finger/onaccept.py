"""
Answering a finger query while its connection is accepted, before Twisted builds a transport for it.

A finger client sends its query as soon as it is connected, so when the server accepts the connection the query
is nearly always in the socket already.  For such a connection the whole exchange is four system calls on the
accepted socket (look at the line, take it, send the answer held for the FIN, close:
L{FingerProtocol.answer_on_accept}), where a transport costs its construction, four changes to the reactor's
interest set, a write event and the closing machinery: in C{bench/}, 40 % of the server's CPU time per query.
The query is answered by the same protocol code either way; only the answer's way out differs.  A connection
whose query is not there yet, or is followed by more bytes, or whose peer is at its limit, gets a transport as
usual, with nothing taken from the socket.

L{AnsweringEndpoint} wraps the finger service's endpoint and, on a plain TCP port, replaces the port's
C{transport} with an L{AnsweringTransports} (L{twisted.internet.tcp.Port} documents that attribute as the
callable to replace, "with the signature expected for C{Server.__init__}").  Ports of other kinds (UNIX, or
TCP under a wrapping factory: TLS, the PROXY protocol) are left as they are.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IListeningPort, IProtocolFactory, IStreamServerEndpoint, ITransport
from zope.interface import implementer

from sshfinger.finger.protocol import FingerProtocol


@implementer(ITransport)
class AnsweredTransport:
    """
    The transport a L{FingerProtocol} is connected to when its query was answered, and the connection closed,
    as the connection was accepted: writing and closing do nothing.

    @ivar peer: the client's address.
    @ivar port: the listening port that accepted the connection (the server's address is its own: asked for only
        when wanted, as asking costs a system call).
    """

    def __init__(self, peer: IAddress, port: IListeningPort) -> None:
        self.peer, self.port = peer, port

    def write(self, data: bytes) -> None:
        """
        Ignore C{data}: the connection is closed.
        """

    def writeSequence(self, data: Any) -> None:
        """
        Ignore C{data}: the connection is closed.
        """

    def loseConnection(self) -> None:
        """
        Do nothing: the connection is closed.
        """

    def getPeer(self) -> IAddress:
        """
        Return the client's address.
        """
        return self.peer

    def getHost(self) -> IAddress:
        """
        Return the server's address.
        """
        return self.port.getHost()


class AnsweringTransports:
    """
    A finger port's C{transport} callable: answer a connection's query from the socket if
    L{FingerProtocol.answer_on_accept} can, else build the port's usual transport.

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
        if isinstance(protocol, FingerProtocol) and protocol.answer_on_accept(skt):
            return AnsweredTransport(protocol.address, port)  # type: ignore[arg-type]
        return self.transport(skt, protocol, addr, port, sessionno, reactor)


@implementer(IStreamServerEndpoint)
class AnsweringEndpoint:
    """
    Listen on another endpoint; if that gives a plain TCP port serving the factory itself, have the port answer
    waiting queries as it accepts their connections (L{AnsweringTransports}).

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
                port.transport = AnsweringTransports(port.transport)
            return port

        return self.endpoint.listen(protocolFactory).addCallback(answering)


__all__ = ["AnsweredTransport", "AnsweringEndpoint", "AnsweringTransports"]
