"""
Tests for L{sshfinger.ssh.server}: how failed logins are logged and penalised, per client address, and which
algorithms the server offers.
"""

from __future__ import annotations

import struct
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.conch.ssh import keys, transport
from twisted.conch.ssh.common import NS
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.peers import describe_peer, peer_key
from sshfinger.ssh.groups import modp_prime
from sshfinger.ssh.penalties import THRESHOLD
from sshfinger.ssh.server import ServerTransport, SSHFactory, UserAuthServer
from tests.proxy import behind_proxy, connect_proxied


class FakeConnection:
    """
    The TCP transport under an SSH transport: only its peer's address.
    """

    def __init__(self, address: IAddress) -> None:
        """
        @param address: what C{getPeer} returns.
        """
        self.address = address

    def getPeer(self) -> IAddress:
        """
        The client's address.
        """
        return self.address


class FakeSSHTransport:
    """
    What L{UserAuthServer} asks of its SSH transport when a login fails: the factory, the connection, the
    client's address as logged and counted, and the disconnect it may send.
    """

    def __init__(self, factory: SSHFactory, address: IAddress) -> None:
        """
        @param factory: the server factory (its penalties).
        @param address: the client's address.
        """
        self.factory = factory
        self.transport = FakeConnection(address)
        self.peer = describe_peer(address)
        self.peer_key = peer_key(address)
        self.login = "-"
        self.disconnected: list[int] = []

    def log_fields(self) -> dict[str, str]:
        """
        The fields of the connection's events.
        """
        return {"peer": self.peer, "conn": "ssh-1", "login": self.login}

    def sendDisconnect(self, reason: int, description: bytes) -> None:
        """
        Remember the disconnect.
        """
        self.disconnected.append(reason)


class FailedLoginTests(SynchronousTestCase):
    """
    A refused login is logged with the client's address, and counts against its host's penalty.
    """

    def setUp(self) -> None:
        """
        A started factory on a fake clock, and the log events captured.
        """
        host_key = keys.Key(ed25519.Ed25519PrivateKey.generate())
        self.factory = SSHFactory(Portal(None), {b"ssh-ed25519": host_key}, clock=Clock())  # type: ignore[arg-type]
        self.factory.startFactory()
        self.addCleanup(self.factory.stopFactory)
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def refuse(self, address: IAddress) -> None:
        """
        Fail one password login from C{address} (the server supports no method, so nothing is checked).
        """
        server = UserAuthServer()
        server.transport = FakeSSHTransport(self.factory, address)  # type: ignore[assignment]
        server.supportedAuthentications = []
        self.failureResultOf(server.tryAuth(b"password", b"admin", b"\x00" + NS(b"guess")))

    def logged(self, outcome: str) -> list[dict[str, Any]]:
        """
        The events logged with C{outcome}.
        """
        return [event for event in self.events if event.get("outcome") == outcome]

    def test_ipv4(self) -> None:
        """
        An IPv4 client is logged as host:port and penalised by its host.
        """
        for _ in range(THRESHOLD):
            self.refuse(IPv4Address("TCP", "192.0.2.7", 40000))
        self.assertEqual(self.logged("refused")[0]["peer"], "192.0.2.7:40000")
        self.assertEqual(self.logged("penalised")[0]["host"], "192.0.2.7")
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 50000)))
        self.assertIsNotNone(self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.8", 50000)))

    def test_ipv6(self) -> None:
        """
        An IPv6 client is logged with its host in brackets, and penalised by its /64 network, which is what a
        new connection from it (or any host of that network) is checked against.
        """
        for _ in range(THRESHOLD):
            self.refuse(IPv6Address("TCP", "2001:db8::1", 40000))
        self.assertEqual(self.logged("refused")[0]["peer"], "[2001:db8::1]:40000")
        self.assertEqual(self.logged("penalised")[0]["host"], "2001:db8::/64")
        self.assertIsNone(self.factory.buildProtocol(IPv6Address("TCP", "2001:db8::2", 50000)))
        self.assertEqual(self.logged("penalised")[-1]["host"], "2001:db8::/64")
        self.assertIsNotNone(self.factory.buildProtocol(IPv6Address("TCP", "2001:db8:0:1::1", 50000)))

    def test_unix_socket(self) -> None:
        """
        Clients of a UNIX-socket endpoint have no host: they are logged, penalised and refused as one peer,
        C{local}, rather than failing to be logged.
        """
        for _ in range(THRESHOLD):
            self.refuse(UNIXAddress(None))
        self.assertEqual(self.logged("refused")[0]["peer"], "local")
        self.assertEqual(self.logged("penalised")[0]["host"], "local")
        self.assertIsNone(self.factory.buildProtocol(UNIXAddress(b"/run/sshfinger.sock")))
        self.assertEqual(self.logged("penalised")[-1]["host"], "local")

    def test_behind_proxy(self) -> None:
        """
        Behind the PROXY protocol (C{--ssh haproxy:...}) a penalised client is refused once the header names
        it, though the proxy's own connection is not; another client through the same proxy is served.
        """
        for _ in range(THRESHOLD):
            self.refuse(IPv4Address("TCP", "192.0.2.7", 40000))
        wrapping = behind_proxy(self, self.factory)
        penalised, other = (
            connect_proxied(wrapping, host, 40001, b"SSH-2.0-OpenSSH_9.2\r\n") for host in ("192.0.2.7", "192.0.2.8")
        )
        self.assertFalse(penalised.connected)
        self.assertEqual(self.logged("penalised")[-1]["host"], "192.0.2.7")
        self.assertTrue(other.connected)


class AlgorithmTests(SynchronousTestCase):
    """
    The server offers and accepts no algorithm resting on SHA-1, MD5, 3DES or CBC mode.
    """

    def setUp(self) -> None:
        """
        A factory with an ed25519 and an RSA host key (and no moduli file), and one transport built by it, with
        the events logged meanwhile.
        """
        self.rsa = keys.Key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.factory = self.start_factory(self.mktemp())
        self.server = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))

    def start_factory(self, moduli: str) -> SSHFactory:
        """
        Start a factory with the host keys (C{moduli} is not read any more: see L{test_group_exchange}).
        """
        host_keys = {b"ssh-ed25519": keys.Key(ed25519.Ed25519PrivateKey.generate()), b"ssh-rsa": self.rsa}
        factory = SSHFactory(Portal(None), host_keys, clock=Clock())  # type: ignore[arg-type]
        factory.startFactory()
        self.addCleanup(factory.stopFactory)
        return factory

    def test_group_exchange(self) -> None:
        """
        The SHA-256 group exchange is offered over RFC 3526's groups (2048 and 3072 bits; OpenSSH's sshd without
        a moduli file goes to 8192), the group closest to the size asked for, and a connection is made without a
        log line.
        """
        self.assertIn(b"diffie-hellman-group-exchange-sha256", self.server.supportedKeyExchanges)
        self.assertEqual(self.factory.getDHPrime(2048), (transport.DH_GENERATOR, transport.DH_PRIME))
        self.assertEqual(self.factory.getDHPrime(8192), (2, modp_prime(3072)))
        self.assertEqual(self.factory.getDHPrime(100000), (2, modp_prime(3072)))
        self.assertEqual(self.factory.getDHPrime(3000), (2, modp_prime(3072)))
        self.assertEqual([formatEvent(event) for event in self.events], [])

    def test_group_exchange_is_cheap(self) -> None:
        """
        The largest group's Diffie-Hellman work, as Conch does it (the cryptography library), takes well under a
        second (issue 17 #3: with an 8192-bit group of C{/etc/ssh/moduli} it took 35 s, holding the GIL; a
        4096-bit one 8 s).
        """
        import time
        import warnings

        from cryptography.hazmat.primitives.asymmetric import dh

        g, p = self.factory.getDHPrime(8192)
        started = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            numbers = dh.DHParameterNumbers(p, g)
            ours = numbers.parameters().generate_private_key()
            theirs = numbers.parameters().generate_private_key()
            ours.exchange(dh.DHPublicNumbers(theirs.public_key().public_numbers().y, numbers).public_key())
        self.assertLess(time.process_time() - started, 1.0)

    def test_offered(self) -> None:
        """
        The key exchanges, ciphers, MACs and host-key signatures offered are the strong ones only.
        """
        server = self.server
        self.assertEqual(
            [kex for kex in server.supportedKeyExchanges if b"sha1" in kex or b"group1-" in kex], []
        )
        self.assertIn(b"curve25519-sha256", server.supportedKeyExchanges)
        self.assertEqual(server.supportedCiphers, [b"aes256-ctr", b"aes192-ctr", b"aes128-ctr"])
        self.assertEqual(server.supportedMACs, [b"hmac-sha2-512", b"hmac-sha2-384", b"hmac-sha2-256"])
        self.assertEqual(sorted(server.supportedPublicKeys), [b"rsa-sha2-256", b"rsa-sha2-512", b"ssh-ed25519"])

    def test_sha1_client_signature_refused(self) -> None:
        """
        A client RSA key offered for C{ssh-rsa} (SHA-1) signatures is refused with that reason before the
        portal sees it; offered for C{rsa-sha2-512}, it goes on to the portal (which has no checker here).
        """
        auth = UserAuthServer()
        auth.transport = FakeSSHTransport(self.factory, IPv4Address("TCP", "192.0.2.7", 40000))  # type: ignore[assignment]
        auth.portal = Portal(None)
        auth.supportedAuthentications = [b"publickey"]
        auth.user = b"alice"
        blob = NS(self.rsa.public().blob())
        weak = self.failureResultOf(auth.tryAuth(b"publickey", b"alice", b"\x00" + NS(b"ssh-rsa") + blob))
        weak.trap(UnauthorizedLogin)
        self.assertEqual(weak.getErrorMessage(), "ssh-rsa signatures use SHA-1 and are refused")
        strong = self.failureResultOf(auth.tryAuth(b"publickey", b"alice", b"\x00" + NS(b"rsa-sha2-512") + blob))
        strong.trap(UnhandledCredentials)


class GoodbyeTests(SynchronousTestCase):
    """
    L{ServerTransport.receiveError} on a client's ordinary goodbye.
    """

    def test_logged_as_text(self) -> None:
        """
        The goodbye is an info event with the connection's fields whose text is the client's reason, decoded,
        with the control characters it may carry escaped (no forged log lines, no terminal escapes).
        """
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        server = ServerTransport()
        server.transport = StringTransport()
        server.receiveError(transport.DISCONNECT_BY_APPLICATION, b"bye \xc3\xa9\x1b[2J\nforged line")
        self.assertEqual(
            [formatEvent(event) for event in events],
            ["SSH client disconnected: bye \u00e9\\x1b[2J\\nforged line (- from unknown [ssh-?])"],
        )
        self.assertEqual(events[0]["log_level"], LogLevel.info)
        self.assertTrue(server.transport.disconnecting)


class AdmissionTransportTests(SynchronousTestCase):
    """
    L{ServerTransport}'s grace time and caps, on a fake clock and in-memory transports.
    """

    def setUp(self) -> None:
        """
        A started factory with a 10 s grace time and at most 2 connections per address.
        """
        self.clock = Clock()
        host_key = keys.Key(ed25519.Ed25519PrivateKey.generate())
        self.factory = SSHFactory(
            Portal(None), {b"ssh-ed25519": host_key}, login_grace=10, clock=self.clock, max_per_peer=2  # type: ignore[arg-type]
        )
        self.factory.startFactory()
        self.addCleanup(self.factory.stopFactory)

    def connect(self, host: str = "192.0.2.7") -> tuple[ServerTransport, StringTransport]:
        """
        Connect one client from C{host}.
        """
        address = IPv4Address("TCP", host, 40000)
        server = self.factory.buildProtocol(address)
        connection = StringTransport(peerAddress=address)
        server.makeConnection(connection)
        return server, connection

    def test_grace_counts_from_accept(self) -> None:
        """
        A client that sends nothing is cut when the grace time, counted from the accept, runs out; its slot is
        free again.
        """
        server, connection = self.connect()
        self.assertTrue(connection.value().startswith(b"SSH-2.0-"))
        self.clock.advance(9.9)
        self.assertFalse(connection.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(connection.disconnecting)
        server.connectionLost(None)
        self.assertEqual(self.factory.admission.pending, 0)

    def test_nothing_handled_once_closing(self) -> None:
        """
        Once the server is closing a connection, the packets still buffered are dropped unhandled (a flood cut
        off mid-read costs nothing more); before that, the same packet is answered (here: "unimplemented").
        """
        unknown = struct.pack(">IB", 12, 10) + b"\xc8" + b"\0" * 10  # message 200, unencrypted, padded to 16
        for closing in (False, True):
            server, connection = self.connect(f"192.0.2.{20 + closing}")
            server.dataReceived(b"SSH-2.0-test\r\n")
            connection.clear()
            if closing:
                connection.loseConnection()
            server.dataReceived(unknown * 3)
            self.assertEqual(connection.value() == b"", closing)

    def test_per_peer_cap(self) -> None:
        """
        The third connection from one address is closed at once, without a banner; another address is served.
        """
        self.connect()
        self.connect()
        _, third = self.connect()
        self.assertTrue(third.disconnecting)
        self.assertEqual(third.value(), b"")
        _, other = self.connect("192.0.2.8")
        self.assertFalse(other.disconnecting)
