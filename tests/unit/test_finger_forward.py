"""
Tests for L{sshfinger.finger.forward}: one-hop forwarding to allowed hosts (issue 23 §3), with a memory clock and
an endpoint that connects to a L{StringTransport}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectError
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger import constants
from sshfinger.finger.forward import Forwarder, answer_lines, parse_forward
from sshfinger.finger.query import parse_query
from sshfinger.finger.render import TRUNCATED
from sshfinger.finger.respond import Responder
from sshfinger.finger.service import FingerService
from sshfinger.tap import Options
from tests.unit.test_finger import ALICE, make_clock, make_store


class Endpoint:
    """
    Connects a factory's protocol to a new L{StringTransportWithDisconnection}, or fails.

    @ivar made: every (host, port, timeout, protocol, transport) connected.
    """

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.made: list[tuple[Any, ...]] = []

    def __call__(self, host: str, port: int, timeout: float) -> Endpoint:
        """
        Be the endpoint for C{host}, C{port}.
        """
        self.target = (host, port, timeout)
        return self

    def connect(self, factory: Any) -> Deferred[Any]:
        """
        Connect (or fail to).
        """
        if self.refuse:
            return fail(ConnectError("refused"))
        protocol = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.made.append((*self.target, protocol, transport))
        return succeed(protocol)


class ForwarderTests(SynchronousTestCase):
    """
    L{Forwarder} asks the allowed host and turns its answer into safe local lines.
    """

    def setUp(self) -> None:
        """
        A forwarder allowing C{Far.example} (port 7079) over a memory clock.
        """
        self.reactor = MemoryReactorClock()
        self.endpoint = Endpoint()
        self.forwarder = Forwarder(self.reactor, {"Far.example": 7079}, endpoint=self.endpoint)  # type: ignore

    def test_forwarded(self) -> None:
        """
        C{/W bob@far.example} is sent as C{/W bob} to the allowed host and port; its answer, sanitised, comes back
        under C{[far.example]}; the read timer is cancelled.
        """
        self.assertTrue(self.forwarder.allows("far.EXAMPLE"))
        self.assertFalse(self.forwarder.allows("near.example"))
        d = self.forwarder.forward(parse_query("/W bob@far.example"))
        [(host, port, timeout, protocol, transport)] = self.endpoint.made
        self.assertEqual((host, port, timeout), ("far.example", 7079, constants.FORWARD_CONNECT_TIMEOUT))
        self.assertEqual(transport.value(), b"/W bob\r\n")
        protocol.dataReceived(b"Login: bob\r\nPlan: \x1b[2Jhi\r\n")
        transport.loseConnection()
        answer = self.successResultOf(d)
        self.assertEqual(answer, ["[far.example]", "Login: bob", "Plan: [2Jhi"])
        self.assertEqual(answer.outcome, "forwarded")  # type: ignore[attr-defined]
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.forwarder.in_flight, 0)

    def test_read_timeout(self) -> None:
        """
        A host that does not finish its answer within the read timeout is cut off; what it sent is kept.
        """
        d = self.forwarder.forward(parse_query("bob@far.example"))
        [(*_, protocol, transport)] = self.endpoint.made
        transport.abortConnection = transport.loseConnection  # type: ignore[method-assign]
        protocol.dataReceived(b"Login: bob\r\n")
        self.assertNoResult(d)
        self.reactor.advance(constants.FORWARD_READ_TIMEOUT)
        self.assertEqual(self.successResultOf(d), ["[far.example]", "Login: bob"])

    def test_capped(self) -> None:
        """
        An answer past the cap is cut, the connection closed, and the lines end with L{TRUNCATED}.
        """
        forwarder = Forwarder(self.reactor, {"far.example": 79}, max_bytes=20, endpoint=self.endpoint)  # type: ignore
        d = forwarder.forward(parse_query("bob@far.example"))
        [(*_, protocol, transport)] = self.endpoint.made
        protocol.dataReceived(b"x" * 15 + b"\r\n" + b"y" * 100)
        self.assertTrue(transport.disconnecting or not transport.connected)
        self.assertEqual(self.successResultOf(d)[-1], TRUNCATED)

    def test_unreachable_and_busy(self) -> None:
        """
        A host that cannot be reached gets one line, not an error; past L{constants.FORWARD_IN_FLIGHT} queries
        under way, the next is refused at once.
        """
        forwarder = Forwarder(self.reactor, {"far.example": 79}, endpoint=Endpoint(refuse=True))  # type: ignore
        answer = self.successResultOf(forwarder.forward(parse_query("bob@far.example")))
        self.assertEqual(answer, ["finger: far.example: cannot get an answer"])
        self.assertEqual(answer.outcome, "forward-failed")  # type: ignore[attr-defined]
        self.patch(constants, "FORWARD_IN_FLIGHT", 1)
        self.forwarder.forward(parse_query("bob@far.example"))
        busy = self.successResultOf(self.forwarder.forward(parse_query("bob@far.example")))
        self.assertEqual(busy, [constants.FORWARD_BUSY])

    def test_through_the_service(self) -> None:
        """
        Through the service and the responder: an allowed host is forwarded (never kept, logged with its own
        outcome), another host or two hops are refused as before.
        """
        clock = make_clock()
        service = FingerService(make_store(ALICE), clock, forwarder=self.forwarder)
        responder = Responder(service, clock)
        d = responder.respond(b"bob@far.example", "192.0.2.7")
        [(*_, protocol, transport)] = self.endpoint.made
        protocol.dataReceived(b"Login: bob\r\n")
        transport.loseConnection()
        reply = self.successResultOf(d)  # type: ignore[arg-type]
        self.assertEqual((reply.data, reply.outcome), (b"[far.example]\r\nLogin: bob\r\n", "forwarded"))
        self.assertIsNone(responder.cache.get(b"bob@far.example"))
        for line in (b"bob@near.example", b"bob@far.example@near.example"):
            refused = responder.respond(line, "192.0.2.7")
            self.assertEqual(refused.data, constants.FORWARD_DENIED.encode() + b"\r\n")  # type: ignore[union-attr]


class AnswerLinesTests(SynchronousTestCase):
    """
    L{answer_lines}.
    """

    def test_lines(self) -> None:
        """
        Bare LF and CRLF both end lines; invalid UTF-8 is replaced; control characters are removed.
        """
        self.assertEqual(answer_lines("h", b"a\nb\r\n\xff\x07c", 100), ["[h]", "a", "b", "\ufffdc"])


class ForwardOptionTests(SynchronousTestCase):
    """
    C{--forward HOST[:PORT]} and C{--exact}.
    """

    def test_parse(self) -> None:
        """
        Host, host and port, bracketed IPv6 with a port, and a bare IPv6 address; bad values are one line.
        """
        self.assertEqual(parse_forward("far.example"), ("far.example", 79))
        self.assertEqual(parse_forward("127.0.0.1:7079"), ("127.0.0.1", 7079))
        self.assertEqual(parse_forward("[::1]:7079"), ("::1", 7079))
        self.assertEqual(parse_forward("2001:db8::1"), ("2001:db8::1", 79))
        for bad in ("", ":79", "h:0", "h:x", "a b", "u@h"):
            self.assertRaises(ValueError, parse_forward, bad)

    def test_options(self) -> None:
        """
        C{--forward} is repeatable; C{--exact} is a flag.
        """
        options = Options()
        args = ["--store", "memory", "--no-ssh", "--forward", "a.example", "--forward", "b:7", "--exact"]
        options.parseOptions(args)
        self.assertEqual(options["forward"], {"a.example": 79, "b": 7})
        self.assertTrue(options["exact"])
