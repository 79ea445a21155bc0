"""
Tests for L{sshfinger.finger.onaccept} and L{FingerProtocol.answer_on_accept}: a cached query that came with its
connection is answered as the connection is accepted, on a real L{tcp.Port} over real loopback sockets, with a
L{MemoryReactorClock} in place of the reactor (so the test calls C{doRead} and C{doWrite} itself).
"""

from __future__ import annotations

import gc
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReadDescriptor, ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sshfinger.finger import constants, onaccept
from sshfinger.finger.onaccept import AcceptedTransport, AnsweringEndpoint, AnsweringTransports
from sshfinger.finger.protocol import FingerProtocol
from sshfinger.finger.service import FingerService
from sshfinger.model.account import Actor
from sshfinger.tap import Options, makeService
from tests.unit.test_finger import PEER, BrokenStore, ManualService, ProtocolTestsMixin


class PortEndpoint:
    """
    An endpoint that listens on a real loopback port (L{tcp.Port}) for a given reactor.
    """

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor

    def listen(self, factory: Any) -> Any:
        """
        Listen on a free loopback port; return the port.
        """
        port = tcp.Port(0, factory, 50, "127.0.0.1", self.reactor)
        port.startListening()
        return succeed(port)


class PortReactor(MemoryReactorClock):
    """
    A memory reactor whose C{listenTCP} listens on a real L{tcp.Port} (registered with this reactor, so the test
    calls its C{doRead}), as the real reactor would.

    @ivar ports: every port listened on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[tcp.Port] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> tcp.Port:
        """
        Listen on a real port.
        """
        listening = tcp.Port(port, factory, backlog, interface, self)
        listening.startListening()
        self.ports.append(listening)
        return listening


class MakeServiceTests(SynchronousTestCase):
    """
    The finger service that L{sshfinger.tap.makeService} builds answers on accept.
    """

    def test_answers_on_accept(self) -> None:
        """
        The server's finger port (C{tcp:} endpoint, as given on the command line) answers a query that came with
        its connection without building a transport for it.
        """
        options = Options()
        options.parseOptions(["--store", "memory", "--no-ssh", "--finger", "tcp:0:interface=127.0.0.1"])
        reactor = PortReactor()
        top = makeService(options, reactor)
        top.privilegedStartService()
        self.addCleanup(gc.set_threshold, *gc.get_threshold())
        top.startService()
        self.addCleanup(top.stopService)
        [port] = reactor.ports
        self.addCleanup(port.connectionLost, Failure(ConnectionDone()))
        self.assertIsInstance(port.transport, AnsweringTransports)
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(client.close)
        client.sendall(b"nobody\r\n")
        port.doRead()
        self.assertEqual(reactor.getReaders(), [port])
        self.assertEqual(reactor.getWriters(), [])
        client.settimeout(5)
        self.assertEqual(b"".join(iter(lambda: client.recv(4096), b"")), b"finger: nobody: no such user.\r\n")


class AnswerOnAcceptTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    A port listening through L{AnsweringEndpoint} answers a query on accept when the factory has its reply, and
    otherwise builds a transport that reads the socket from the start.
    """

    def setUp(self) -> None:
        """
        The mixin's factory, listening on a real loopback port with a memory reactor.
        """
        super().setUp()
        self.reactor = MemoryReactorClock()
        self.port = self.successResultOf(AnsweringEndpoint(PortEndpoint(self.reactor)).listen(self.factory))
        self.addCleanup(self.port.connectionLost, Failure(ConnectionDone()))

    def client(self, *sends: bytes, close: bool = False) -> socket.socket:
        """
        Connect to the port, send C{sends} (then close, if C{close}), and have the port accept.
        """
        client = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        self.addCleanup(client.close)
        for data in sends:
            client.sendall(data)
        if close:
            client.close()
        self.port.doRead()
        return client

    def transports(self) -> list[tcp.Server]:
        """
        Return the transports the reactor holds, now that the port has accepted.
        """
        return [t for t in {*self.reactor.getReaders(), *self.reactor.getWriters()} if t is not self.port]

    def finish(self) -> None:
        """
        Do the reactor's work for every transport that is writing its answer: write it, then lose the connection.
        """
        writing = self.reactor.getWriters()
        self.assertTrue(writing)
        for transport in writing:
            done = transport.doWrite()
            self.assertIsInstance(done, ConnectionDone)
            transport.connectionLost(Failure(done))

    def read(self, client: socket.socket) -> bytes:
        """
        Read everything until the server closes.
        """
        client.settimeout(5)
        return b"".join(iter(lambda: client.recv(65536), b""))

    def test_answered_on_accept(self) -> None:
        """
        A query that came with its connection is answered on accept: no transport, logged with its peer, nothing
        left counted or watched, and the protocol's C{connectionLost} called once for each connection.  The same
        query again gets the same bytes, from the reply kept the first time.
        """
        lost: list[FingerProtocol] = []
        connection_lost = FingerProtocol.connectionLost
        self.patch(FingerProtocol, "connectionLost", lambda p, reason: lost.append(p) or connection_lost(p, reason))
        first = self.client(b"alice\r\n")
        self.assertEqual(len(lost), 1)
        self.assertEqual(self.transports(), [])
        expected = self.read(first)
        self.assertIn(b"Status: Down the rabbit hole", expected)
        self.assertIsNotNone(self.factory.responder.cache.get(b"alice"))
        second = self.client(b"alice\n")
        self.assertEqual(self.transports(), [])
        self.assertEqual(self.read(second), expected)
        port = second.getsockname()[1]
        self.assertEqual([e["outcome"] for e in self.outcomes()], ["user", "user"])
        self.assertEqual(self.outcomes()[-1]["peer"], f"127.0.0.1:{port}")
        self.assertEqual(len(set(lost)), 2)
        self.assertEqual((len(self.factory.deadlines), self.factory.limits.connections_from("127.0.0.1")), (0, 0))

    def test_every_outcome(self) -> None:
        """
        Whatever the query, the answer on accept is the one a transport would have carried, logged the same.
        """
        queries = {
            b"nobody": "no-such-user",
            b"/W alice": "user",
            b"": "list",
            b"alice@elsewhere": "forward-denied",
            b"/X": "bad-query",
            b"x" * (constants.MAX_QUERY + 1): "too-long",
            b"\xff\x1b[2J": "no-such-user",
        }
        for line, outcome in queries.items():
            client = self.client(line + b"\r\n")
            self.assertEqual(self.transports(), [])
            self.assertEqual(self.outcomes()[-1]["outcome"], outcome)
            self.assertEqual(self.read(client), self.query(line + b"\r\n"), line)

    def test_changed_account(self) -> None:
        """
        A reply kept before an account changed is not sent again: the next query is answered afresh, on accept.
        """
        self.read(self.client(b"alice\r\n"))
        changes = {"status": "Through the looking glass"}
        self.successResultOf(self.service.store.update("alice", changes, Actor("t", "cli")))
        client = self.client(b"alice\r\n")
        self.assertEqual(self.transports(), [])
        self.assertIn(b"Status: Through the looking glass", self.read(client))

    def assert_left_for_transport(
        self, *sends: bytes, close: bool = False, answered: bool = False
    ) -> tuple[socket.socket, tcp.Server]:
        """
        Connect with C{sends}: check that the port built a transport, which has read the query and answered it
        itself (C{read_at_once}) if C{answered}, and has logged nothing otherwise; return both.
        """
        client = self.client(*sends, close=close)
        [transport] = self.transports()
        self.assertIsInstance(transport, tcp.Server)
        self.assertEqual(len(self.outcomes()), 1 if answered else 0)
        return client, transport

    def test_no_query_yet(self) -> None:
        """
        A connection with no query yet gets a transport, which reads the query when it comes.
        """
        client, transport = self.assert_left_for_transport()
        self.assertIn(transport, self.reactor.getReaders())
        client.sendall(b"alice\r\n")
        transport.doRead()
        self.finish()
        self.assertIn(b"Status: Down the rabbit hole", self.read(client))

    def test_part_of_a_line(self) -> None:
        """
        A connection with only part of its query line gets a transport, which reads the rest when it comes.
        """
        client, transport = self.assert_left_for_transport(b"ali")
        client.sendall(b"ce\r\n")
        transport.doRead()
        self.finish()
        self.assertIn(b"Status: Down the rabbit hole", self.read(client))

    def test_more_than_the_line(self) -> None:
        """
        A query followed by more bytes is left to the transport, which answers it and ignores the rest.
        """
        client, _ = self.assert_left_for_transport(b"alice\r\nhatter\r\n", answered=True)
        self.finish()
        self.assertIn(b"Status: Down the rabbit hole", self.read(client))

    def test_peer_closed(self) -> None:
        """
        A peer that closed without a query is left to the transport, which closes it with nothing logged.
        """
        _, transport = self.assert_left_for_transport(close=True)
        self.assertTrue(transport.disconnecting)
        self.finish()

    def test_no_nonblocking_read(self) -> None:
        """
        Where the system cannot read a socket without waiting (no C{MSG_DONTWAIT}), nothing is answered on accept.
        """
        self.patch(onaccept, "DONT_WAIT", 0)
        client, _ = self.assert_left_for_transport(b"alice\r\n", answered=True)
        self.finish()
        self.assertIn(b"Status: Down the rabbit hole", self.read(client))

    def test_peer_at_its_limit(self) -> None:
        """
        A peer at its connection limit is refused, by the transport.
        """
        self.factory.limits.max_per_peer = 1
        self.client()  # open, its query not sent: it holds the peer's one connection
        client = self.client(b"alice\r\n")
        self.assertEqual(self.read(client), constants.TOO_MANY.encode() + b"\r\n")
        self.assertEqual(self.outcomes()[-1]["outcome"], "too-many")
        self.assertEqual(self.factory.limits.connections_from("127.0.0.1"), 1)

    def test_service_answers_later(self) -> None:
        """
        When the service answers with a L{Deferred}, the query is taken on accept and the answer goes out once it
        comes; meanwhile the connection counts against its peer and has a deadline.
        """
        service = ManualService()
        self.factory.responder.service = service  # type: ignore[assignment]
        client = self.client(b"alice\r\n")
        self.assertEqual(len(service.pending), 1)
        self.assertEqual((len(self.factory.deadlines), self.factory.limits.connections_from("127.0.0.1")), (1, 1))
        service.pending[0].callback(["Late, late"])
        self.assertEqual(self.read(client), b"Late, late\r\n")
        self.assertEqual((len(self.factory.deadlines), self.factory.limits.connections_from("127.0.0.1")), (0, 0))

    def test_answer_larger_than_the_socket_takes(self) -> None:
        """
        An answer larger than the socket's send buffer: what the socket takes leaves at once, the rest through
        the usual transport, built then; the client gets it all, and the connection is released at the end.
        """
        service = ManualService()
        self.factory.responder.service = service  # type: ignore[assignment]
        made: list[AcceptedTransport] = []

        class Recorded(AcceptedTransport):
            def __init__(self, *args: Any) -> None:
                super().__init__(*args)
                made.append(self)

        self.patch(onaccept, "AcceptedTransport", Recorded)
        client = self.client(b"alice\r\n")
        [accepted] = made
        accepted.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        expected = b"".join([b"x" * 98 + b"\r\n"] * 600)
        service.pending[0].callback(["x" * 98] * 600)
        self.assertEqual(len(self.transports()), 1)  # the usual transport, writing the rest
        client.settimeout(5)
        received = b""
        while self.reactor.getWriters():
            for transport in self.reactor.getWriters():
                done = transport.doWrite()
                if done is not None:
                    transport.connectionLost(Failure(done))
            received += client.recv(65536)
        self.assertEqual(received + self.read(client), expected)
        self.assertEqual((len(self.factory.deadlines), self.factory.limits.connections_from("127.0.0.1")), (0, 0))

    def test_service_fails(self) -> None:
        """
        A service that raises gets the peer the internal-error line on accept, and the failure logged.
        """
        self.factory.responder.service = FingerService(BrokenStore(), self.clock)  # type: ignore[arg-type]
        client = self.client(b"alice\r\n")
        self.assertEqual(self.transports(), [])
        self.assertEqual(self.read(client), constants.INTERNAL_ERROR.encode() + b"\r\n")
        self.assertEqual(self.outcomes()[-1]["outcome"], "error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class FakeSocket:
    """
    An accepted socket holding one query, whose C{send} takes at most C{room} bytes or raises C{error}.
    """

    def __init__(self, data: bytes, room: int = 1 << 20, error: OSError | None = None) -> None:
        self.data, self.room, self.error = data, room, error
        self.sent: list[bytes] = []
        self.flags: list[int] = []
        self.closed = False

    def recv(self, size: int, flags: int = 0) -> bytes:
        """
        Return the query; take it unless peeking.
        """
        data = self.data[:size]
        if not flags & socket.MSG_PEEK:
            self.data = self.data[size:]
        return data

    def send(self, data: bytes, flags: int = 0) -> int:
        """
        Take up to C{room} bytes, or raise C{error}.
        """
        if self.error is not None:
            raise self.error
        self.flags.append(flags)
        self.sent.append(data[: self.room])
        return len(self.sent[-1])

    def close(self) -> None:
        """
        Note the close.
        """
        self.closed = True


class AcceptedTransportTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    L{AcceptedTransport} when the peer is gone, and how its answer leaves.
    """

    def setUp(self) -> None:
        """
        The mixin's factory, with the reply for alice kept.
        """
        super().setUp()
        self.expected = self.query(b"alice\r\n")

    def connect_accepted(self, skt: Any) -> tuple[FingerProtocol, AcceptedTransport, list[Failure]]:
        """
        Connect a new protocol to an L{AcceptedTransport} over C{skt} holding C{"alice\r\n"}, as a port would.

        @return: the protocol, the transport, and the reasons its C{connectionLost} was called with.
        """
        protocol = self.factory.buildProtocol(PEER)
        lost: list[Failure] = []
        connection_lost = protocol.connectionLost
        protocol.connectionLost = lambda reason: lost.append(reason) or connection_lost(reason)  # type: ignore
        transport = AcceptedTransport(skt, protocol, None, None, 1, None, len(b"alice\r\n"))  # type: ignore[arg-type]
        protocol.makeConnection(transport)
        return protocol, transport, lost

    def test_peer_reset(self) -> None:
        """
        A peer gone by the time the answer is sent has its socket closed, the query logged, and the protocol's
        C{connectionLost} called once, leaving nothing counted or watched.
        """
        skt = FakeSocket(b"alice\r\n", error=ConnectionResetError())
        protocol, transport, lost = self.connect_accepted(skt)
        self.assertTrue(skt.closed)
        self.assertEqual(len(self.outcomes()), 2)
        self.assertEqual(len(lost), 1)
        self.assertEqual((len(self.factory.deadlines), self.factory.limits.connections_from("192.0.2.7")), (0, 0))
        transport.loseConnection()
        transport.write(b"more")
        self.assertEqual(len(lost), 1)
        self.assertIs(transport.getPeer(), PEER)
        verifyObject(ITransport, transport)
        verifyObject(IReadDescriptor, transport)

    def test_peer_gone_before_the_read(self) -> None:
        """
        A socket that fails when the waiting line is taken is closed at once, nothing logged but the connection
        released.
        """

        class Gone(FakeSocket):
            def recv(self, size: int, flags: int = 0) -> bytes:
                raise ConnectionResetError()

        skt = Gone(b"")
        _, _, lost = self.connect_accepted(skt)
        self.assertTrue(skt.closed)
        self.assertEqual((len(lost), len(self.outcomes())), (1, 1))
        self.assertEqual((len(self.factory.deadlines), self.factory.limits.connections_from("192.0.2.7")), (0, 0))

    def test_protocol_error(self) -> None:
        """
        An error in the protocol while it answers is logged and closes the connection; it does not reach the
        port's accept loop.
        """
        self.patch(FingerProtocol, "dataReceived", lambda protocol, data: 1 / 0)
        skt = FakeSocket(b"alice\r\n")
        _, _, lost = self.connect_accepted(skt)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(skt.closed)
        self.assertEqual(len(lost), 1)

    def test_answer_leaves_with_the_fin(self) -> None:
        """
        On a real TCP socket, the answer written is held until the close (like a cork): the client sees nothing
        before, then the whole answer and the end of the stream.
        """
        if not onaccept.MORE:
            raise self.skipTest("MSG_MORE is Linux-only")  # pragma: no cover
        client, server, _ = self.sockets(b"alice\r\n")
        client.setblocking(False)
        transport = AcceptedTransport(server, self.factory.buildProtocol(PEER), None, None, 1, None, 7)  # type: ignore[arg-type]
        transport.write(self.expected)
        self.assertRaises(BlockingIOError, client.recv, 65536)
        transport.loseConnection()
        client.setblocking(True)
        client.settimeout(5)
        self.assertEqual(b"".join(iter(lambda: client.recv(65536), b"")), self.expected)


class AnsweringEndpointTests(SynchronousTestCase):
    """
    L{AnsweringEndpoint} changes only a plain TCP port serving the factory it was given.
    """

    def test_tcp_port(self) -> None:
        """
        A L{tcp.Port} serving the factory gets an L{AnsweringTransports} over its previous transport.
        """
        reactor = MemoryReactorClock()
        factory = Factory.forProtocol(Protocol)
        port = self.successResultOf(AnsweringEndpoint(PortEndpoint(reactor)).listen(factory))
        self.addCleanup(port.connectionLost, Failure(ConnectionDone()))
        self.assertIsInstance(port.transport, AnsweringTransports)
        self.assertIs(port.transport.transport, tcp.Server)

    def test_wrapped_factory(self) -> None:
        """
        A port serving some other factory (a wrapper's: TLS, the PROXY protocol) is left alone.
        """

        class Wrapping(PortEndpoint):
            def listen(self, factory: Any) -> Any:
                return super().listen(Factory.forProtocol(Protocol))

        reactor = MemoryReactorClock()
        port = self.successResultOf(AnsweringEndpoint(Wrapping(reactor)).listen(Factory.forProtocol(Protocol)))
        self.addCleanup(port.connectionLost, Failure(ConnectionDone()))
        self.assertIs(port.transport, tcp.Server)

    def test_other_port(self) -> None:
        """
        A port that is not a L{tcp.Port} is returned unchanged.
        """
        reactor = MemoryReactorClock()
        port = self.successResultOf(AnsweringEndpoint(TCP4ServerEndpoint(reactor, 1079)).listen(Factory()))
        self.assertEqual(reactor.tcpServers[0][0], 1079)
        self.assertNotIsInstance(getattr(port, "transport", None), AnsweringTransports)

    def test_not_a_finger_protocol(self) -> None:
        """
        The transports of a protocol other than L{FingerProtocol} are built as before.
        """
        built: list[tuple[Any, ...]] = []
        transports = AnsweringTransports(lambda *args: built.append(args) or "transport")  # type: ignore[arg-type, func-returns-value]
        protocol = Protocol()
        self.assertEqual(transports(None, protocol, None, None, 1, None), "transport")  # type: ignore[arg-type]
        self.assertEqual(len(built), 1)
