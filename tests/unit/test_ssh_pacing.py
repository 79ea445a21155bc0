"""
Tests for L{sshfinger.ssh.pacing}: a connection's packets are handled a bounded number per reactor turn, and a key
exchange is answered from a thread with the connection's input held meanwhile.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys, transport
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ssh.pacing import PACKETS_PER_TURN
from sshfinger.ssh.server import SSHFactory

#: An unencrypted packet of message 200, which the server answers with one "unimplemented" packet.
UNKNOWN = struct.pack(">IB", 12, 10) + b"\xc8" + b"\0" * 10


def one_turn(clock: Clock) -> None:
    """
    Run the calls due now but not those they schedule, as one turn of a real reactor does (L{Clock.advance} runs
    both).
    """
    for call in [call for call in clock.getDelayedCalls() if call.getTime() <= clock.seconds()]:
        function, args, kw = call.func, call.args, call.kw
        call.cancel()
        function(*args, **kw)


def started_factory(case: SynchronousTestCase, clock: Clock) -> SSHFactory:
    """
    A started factory with an ed25519 host key on C{clock}.
    """
    host_key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    factory = SSHFactory(Portal(None), {b"ssh-ed25519": host_key}, clock=clock)  # type: ignore[arg-type]
    factory.startFactory()
    case.addCleanup(factory.stopFactory)
    return factory


class PacketBudgetTests(SynchronousTestCase):
    """
    One read full of packets is handled L{PACKETS_PER_TURN} at a time, one reactor turn each.
    """

    def test_one_turn_at_a_time(self) -> None:
        """
        Of 40 packets in one read, the first turn answers 16 and pauses the socket; each turn of the clock
        answers 16 more, and once all are answered the socket reads again.
        """
        clock = Clock()
        server = started_factory(self, clock).buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))
        connection = StringTransport()
        server.makeConnection(connection)
        server.dataReceived(b"SSH-2.0-test\r\n" + UNKNOWN)
        connection.clear()
        server.dataReceived(UNKNOWN)
        reply = len(connection.value())
        connection.clear()

        server.dataReceived(UNKNOWN * 40)
        answered = [len(connection.value()) // reply]
        self.assertEqual(connection.producerState, "paused")
        for _ in range(2):
            one_turn(clock)
            answered.append(len(connection.value()) // reply)
        self.assertEqual(answered, [PACKETS_PER_TURN, 2 * PACKETS_PER_TURN, 40])
        self.assertEqual(connection.producerState, "producing")

    def test_connection_lost_between_turns(self) -> None:
        """
        A connection lost with packets still waiting for their turn handles none of them.
        """
        clock = Clock()
        server = started_factory(self, clock).buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))
        connection = StringTransport()
        server.makeConnection(connection)
        server.dataReceived(b"SSH-2.0-test\r\n" + UNKNOWN * 40)
        written = connection.value()
        server.connectionLost(None)
        clock.advance(0)
        self.assertEqual(connection.value(), written)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failure_in_a_later_turn(self) -> None:
        """
        A packet whose handling raises in a later turn closes the connection with the failure logged, as the
        reactor does when C{dataReceived} raises.
        """
        clock = Clock()
        server = started_factory(self, clock).buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))
        connection = StringTransport()
        server.makeConnection(connection)
        server.ssh_IGNORE = lambda packet: 1 / 0
        ignore = struct.pack(">IB", 12, 10) + b"\x02" + b"\0" * 10
        server.dataReceived(b"SSH-2.0-test\r\n" + UNKNOWN * PACKETS_PER_TURN + ignore)
        self.assertFalse(connection.disconnecting)
        one_turn(clock)
        self.assertTrue(connection.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class Client(transport.SSHClientTransport):
    """
    A Conch client that trusts any host key and notes when the key exchange is done.
    """

    secure = False

    def verifyHostKey(self, hostKey: bytes, fingerprint: bytes) -> Deferred[bool]:
        """
        Trust it.
        """
        return succeed(True)

    def connectionSecure(self) -> None:
        """
        The keys are in use.
        """
        self.secure = True


class KeyExchangeInThreadTests(SynchronousTestCase):
    """
    The server's answer to a key exchange is computed by the factory's C{run_kex}, in another thread.
    """

    def setUp(self) -> None:
        """
        A factory whose C{run_kex} keeps each function it is given, and its events logged.
        """
        self.clock = Clock()
        self.factory = started_factory(self, self.clock)
        self.pending: list[tuple[Callable[[], None], Deferred[None]]] = []
        self.factory.run_kex = self.later
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def later(self, function: Callable[[], None]) -> Deferred[None]:
        """
        Keep C{function} to run when the test says.
        """
        done: Deferred[None] = Deferred()
        self.pending.append((function, done))
        return done

    def connect(self) -> tuple[Any, Client, iosim.IOPump]:
        """
        Connect a Conch client to a server of the factory, in memory, and pump until the server waits for its
        key exchange answer.
        """
        server = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))
        client = Client()
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), clock=self.clock
        )
        pump.flush()
        return server, client, pump

    def test_answered_from_another_thread(self) -> None:
        """
        The answer is computed in another thread, and nothing of it is sent until it is complete; then the
        key exchange finishes as Conch's would.
        """
        server, client, pump = self.connect()
        [(function, done)] = self.pending
        self.assertFalse(client.secure)
        sent_before = server.transport.stream[:]
        threads: list[int] = []

        def compute() -> None:
            threads.append(threading.get_ident())
            function()

        worker = threading.Thread(target=compute)
        worker.start()
        worker.join()
        self.assertNotEqual(threads, [threading.get_ident()])
        self.assertEqual(server.transport.stream, sent_before)
        done.callback(None)
        pump.flush()
        self.assertTrue(client.secure)
        self.assertTrue(server.isEncrypted("both"))

    def test_connection_lost_meanwhile(self) -> None:
        """
        A connection lost while its answer is computed sends nothing once it is done.
        """
        server, client, pump = self.connect()
        [(function, done)] = self.pending
        server.connectionLost(None)
        sent = server.transport.stream[:]
        function()
        done.callback(None)
        self.assertEqual(server.transport.stream, sent)
        self.assertFalse(client.secure)

    def test_failure_closes(self) -> None:
        """
        An answer that fails (a bad key share) closes the connection with one log line and no traceback.
        """
        self.factory.run_kex = lambda function: fail(ValueError("invalid public key"))
        server, client, pump = self.connect()
        self.assertTrue(server.transport.disconnecting)
        self.assertFalse(client.secure)
        lines = [formatEvent(event) for event in self.events if "key exchange" in formatEvent(event)]
        self.assertEqual(len(lines), 1)
        self.assertRegex(
            lines[0], r"^SSH key exchange with \S+ \[ssh-\d+\] failed: invalid public key; connection closed$"
        )
        self.assertFalse([event for event in self.events if event.get("log_failure")])
