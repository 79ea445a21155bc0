"""
Tests for L{sshfinger.finger.protocol}: query parsing, the finger service, and the protocol and factory over
L{StringTransport}s with a L{task.Clock}.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task, tcp
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactor, StringTransport, StringTransportWithDisconnection
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols import policies
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sshfinger.finger import constants
from sshfinger.finger import protocol as finger
from sshfinger.finger.accesslog import IQueryLog
from sshfinger.finger.constants import FORWARD_DENIED, INTERNAL_ERROR, LIST_DENIED, QUERY_TOO_LONG, TOO_MANY
from sshfinger.finger.protocol import FingerFactory, FingerProtocol, send_with_fin
from sshfinger.finger.query import Query, QueryError, escape_query, parse_query
from sshfinger.finger.render import TRUNCATED
from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account, Actor
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend
from tests.proxy import behind_proxy, connect_proxied

#: 2026-11-23 12:00 UTC.
NOW = 1795435200.0

PEER = IPv4Address("TCP", "192.0.2.7", 40000)

ALICE = Account(
    "alice",
    real_name="Ren\u00e9e Alice \u2014 Liddell",
    status="Down the rabbit hole",
    plan="Tea at four.",
    office="Room 4",
    phone="555-0100",
    keys=("ssh-ed25519 AAAASECRETKEYMATERIAL alice@home",),
    updated_at=NOW - 60,
    updated_by="dodo",
)
HATTER = Account("hatter", "The Hatter", "Tea party", hidden=True)
MALLORY = Account(
    "mallory",
    real_name="Mal\x1b]0;pwned\x07lory\x9d",
    status="\x1b[2J\x07Hi\x9b31m\x85\u202eevil",
    plan="\x1b[2Jone\r\n\x00two\x90\n\x7fthree",
    office="\x90dcs\x1b\\",
    updated_at=NOW,
    updated_by="x\x1by",
)


def make_store(*accounts: Account) -> CachedStore:
    """
    Return an opened memory store holding C{accounts}.
    """
    store = CachedStore(MemoryBackend(list(accounts)), lambda: NOW)
    store.open()
    return store


def make_clock() -> task.Clock:
    """
    Return a L{task.Clock} set to L{NOW}.
    """
    clock = task.Clock()
    clock.advance(NOW)
    return clock


class BrokenStore:
    """
    A store whose reads raise (C{peek}, C{visible_accounts}) or fail (C{list}), for internal errors.
    """

    #: See L{IUserStore.version}.
    version = 0

    def peek(self, login: str) -> Account | None:
        """
        Raise, as a buggy store would.
        """
        raise RuntimeError("peek is broken")

    def list(self, include_hidden: bool = False) -> Deferred[list[Account]]:
        """
        Return a failed L{Deferred}.
        """
        return fail(RuntimeError("list is broken"))

    def visible_accounts(self) -> Iterator[Account]:
        """
        Raise while iterating, as a buggy store would.
        """
        raise RuntimeError("visible_accounts is broken")
        yield  # pragma: no cover


class ManualService:
    """
    A service whose answers the test fires by hand.

    @ivar pending: the L{Deferred} of every query asked, in order.
    """

    def __init__(self) -> None:
        """
        Start with no query asked.
        """
        self.pending: list[Deferred[list[str]]] = []

    def answer(self, query: Query) -> Deferred[list[str]]:
        """
        Return a L{Deferred} the test fires.
        """
        d: Deferred[list[str]] = Deferred()
        self.pending.append(d)
        return d


def assert_terminal_safe(case: SynchronousTestCase, data: bytes) -> None:
    """
    Fail unless C{data} is valid UTF-8 with CRLF line endings only and no control character besides them.
    """
    text = data.decode("utf-8")
    case.assertNotIn("\r", text.replace("\r\n", ""))
    case.assertNotIn("\n", text.replace("\r\n", ""))
    case.assertEqual([byte for byte in data if byte < 0x20 and byte not in b"\r\n"], [])
    case.assertEqual([char for char in text if char == "\x7f" or "\x80" <= char <= "\x9f"], [])
    case.assertEqual([char for char in text if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069"], [])


class ParseQueryTests(SynchronousTestCase):
    """
    L{parse_query} follows RFC 1288's query grammar.
    """

    def test_valid_forms(self) -> None:
        """
        Every form of the grammar parses, with surrounding whitespace tolerated.
        """
        cases = {
            "": Query(False, None, ()),
            "   ": Query(False, None, ()),
            "alice": Query(False, "alice", ()),
            "  alice \t": Query(False, "alice", ()),
            "/W": Query(True, None, ()),
            "/w": Query(True, None, ()),
            "/W alice": Query(True, "alice", ()),
            "/W  alice": Query(True, "alice", ()),
            "/w alice": Query(True, "alice", ()),
            "/W\talice": Query(True, "alice", ()),
            "alice@host": Query(False, "alice", ("host",)),
            "alice@a@b": Query(False, "alice", ("a", "b")),
            "@host": Query(False, None, ("host",)),
            "@a@b": Query(False, None, ("a", "b")),
            "/W alice@host": Query(True, "alice", ("host",)),
            "/W @host": Query(True, None, ("host",)),
            "\x1b[2J": Query(False, "\x1b[2J", ()),
        }
        for line, expected in cases.items():
            self.assertEqual(parse_query(line), expected, line)

    def test_bad_forms(self) -> None:
        """
        Anything outside the grammar raises L{QueryError} with a one-line message.
        """
        for line in ["/X", "/x alice", "/Walice", "/W/W", "/", "alice bob", "/W alice bob", "alice@", "@",
                     "alice@@b", "a@b c"]:
            with self.assertRaises(QueryError, msg=line) as caught:
                parse_query(line)
            self.assertNotIn("\n", str(caught.exception))
            self.assertTrue(str(caught.exception))

    @settings(deadline=None)
    @given(st.text())
    def test_property_only_query_error(self, line: str) -> None:
        """
        For any text, L{parse_query} returns a L{Query} without whitespace in user or hosts, or raises
        L{QueryError}; nothing else.
        """
        try:
            query = parse_query(line)
        except QueryError:
            return
        for part in [query.user or "", *query.hosts]:
            self.assertFalse(any(char.isspace() or char == "@" for char in part))
        self.assertTrue(all(query.hosts))


class FingerServiceTests(SynchronousTestCase):
    """
    L{FingerService} answers queries from the store's memory.
    """

    def setUp(self) -> None:
        """
        A service over alice (visible) and hatter (hidden).
        """
        self.service = FingerService(make_store(ALICE, HATTER), make_clock())

    def answer(self, line: str) -> list[str]:
        """
        Return the answer to query C{line}, which must be ready at once.
        """
        return self.service.answer(parse_query(line))

    def test_user(self) -> None:
        """
        A user query renders the record; logins are case-insensitive; the outcome is C{"user"}.
        """
        answer = self.service.user("ALICE", False)
        self.assertTrue(answer[0].startswith("Login: alice"))
        self.assertIn("Updated: 2026-11-23 11:59 UTC (1 minute ago)", answer)
        self.assertEqual(answer.outcome, "user")

    def test_verbose(self) -> None:
        """
        C{/W} adds the verbose fields.
        """
        self.assertNotIn("Office: Room 4", " ".join(self.answer("alice")))
        self.assertIn("Phone: 555-0100", " ".join(self.answer("/W alice")))
        self.assertIn("Role: user", self.service.user("alice", True))

    def test_unknown_hidden_invalid_same_answer(self) -> None:
        """
        Unknown, hidden and invalid logins all get the same single line, with outcome C{"no-such-user"}.
        """
        for login in ("nobody", "hatter", "HATTER", "1bad", "x" * 40):
            answer = self.service.user(login, True)
            self.assertEqual(answer, [f"finger: {login}: no such user."])
            self.assertEqual(answer.outcome, "no-such-user")

    def test_unknown_login_sanitized(self) -> None:
        """
        A hostile login echoed back loses its control characters.
        """
        self.assertEqual(self.answer("\x1b[2J\x07"), ["finger: [2J: no such user."])

    def test_listing(self) -> None:
        """
        An empty query lists the visible accounts, hidden ones left out.
        """
        answer = self.answer("")
        self.assertEqual(len(answer), 2)
        self.assertTrue(answer[1].startswith("alice "))
        self.assertNotIn("hatter", "\n".join(answer))
        self.assertEqual(answer.outcome, "list")

    def test_listing_denied(self) -> None:
        """
        With C{allow_list} false (C{--no-list}), the list is refused with RFC 1288's text.
        """
        service = FingerService(make_store(ALICE), make_clock(), allow_list=False)
        answer = service.answer(Query())
        self.assertEqual(answer, [LIST_DENIED])
        self.assertEqual(LIST_DENIED, "Finger online user list denied")
        self.assertEqual(answer.outcome, "list-denied")

    def test_forward_denied(self) -> None:
        """
        Every forwarding query, with or without a user, is refused with RFC 1288's text.
        """
        for line in ("alice@elsewhere", "@elsewhere", "/W alice@a@b"):
            answer = self.answer(line)
            self.assertEqual(answer, ["Finger forwarding service denied"])
            self.assertEqual(answer.outcome, "forward-denied")

    def test_store_error_raises(self) -> None:
        """
        A store that raises makes the service raise (the protocol turns that into "Internal error in server").
        """
        service = FingerService(BrokenStore(), make_clock())  # type: ignore[arg-type]
        self.assertRaises(RuntimeError, service.user, "alice", False)
        self.assertRaises(RuntimeError, service.listing)


class ProtocolTestsMixin:
    """
    Helpers to connect L{FingerProtocol}s to L{StringTransportWithDisconnection}s (or real loopback sockets) and
    capture log events.
    """

    def setUp(self) -> None:
        """
        A factory over alice, hatter and mallory with a L{task.Clock}, and a list of captured log events.
        """
        self.clock = make_clock()
        self.service = FingerService(make_store(ALICE, HATTER, MALLORY), self.clock)
        self.factory = FingerFactory(self.service, self.clock)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)  # type: ignore[attr-defined]

    def connect(
        self, factory: FingerFactory | None = None, peer: Any = PEER, transport: StringTransport | None = None
    ) -> tuple[FingerProtocol, StringTransport]:
        """
        Connect a new protocol from C{peer}; the transport calls C{connectionLost} when closed.
        """
        factory = factory or self.factory
        protocol = factory.buildProtocol(peer)
        assert isinstance(protocol, FingerProtocol)
        if transport is None:
            transport = StringTransportWithDisconnection(peerAddress=peer)
            transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol, transport

    def sockets(self, *sends: bytes, close: bool = False) -> tuple[socket.socket, socket.socket, tuple[str, int]]:
        """
        Connect a real client socket on loopback and send C{sends} from it (then close it, if C{close}) before
        the server side is accepted.

        @return: the client socket, the accepted socket and the client's address.
        """
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)  # type: ignore[attr-defined]
        client = socket.create_connection(listener.getsockname())
        self.addCleanup(client.close)  # type: ignore[attr-defined]
        for data in sends:
            client.sendall(data)
        if close:
            client.close()
        sock, address = listener.accept()
        self.addCleanup(sock.close)  # type: ignore[attr-defined]
        return client, sock, address

    def query(self, *segments: bytes, factory: FingerFactory | None = None) -> bytes:
        """
        Send C{segments} on a new connection and return everything written back, checking it was closed.
        """
        protocol, transport = self.connect(factory)
        for segment in segments:
            protocol.dataReceived(segment)
        self.assertFalse(transport.connected)  # type: ignore[attr-defined]
        return transport.value()

    def outcomes(self) -> list[dict[str, Any]]:
        """
        Return the captured query events (those with an C{outcome}).
        """
        return [event for event in self.events if "outcome" in event]


class FingerProtocolTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    L{FingerProtocol} reads one query, answers it and closes.
    """

    def test_user_crlf(self) -> None:
        """
        A CRLF-terminated user query gets the record, every line ending in CRLF, and the connection closes.
        """
        answer = self.query(b"alice\r\n")
        self.assertTrue(answer.startswith(b"Login: alice"))
        self.assertIn("Name: Ren\u00e9e Alice \u2014 Liddell\r\n".encode(), answer)
        self.assertTrue(answer.endswith(b"Plan:\r\nTea at four.\r\n"))
        self.assertNotIn(b"\n", answer.replace(b"\r\n", b""))

    def test_bare_lf(self) -> None:
        """
        A bare LF ends the query as well.
        """
        self.assertEqual(self.query(b"alice\n"), self.query(b"alice\r\n"))

    def test_split_segments(self) -> None:
        """
        A query split over three segments (even between CR and LF) is answered once whole.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"/W al")
        protocol.dataReceived(b"ice\r")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.connected)
        protocol.dataReceived(b"\n")
        self.assertIn(b"Office: Room 4", transport.value())
        self.assertFalse(transport.connected)

    def test_every_query_form(self) -> None:
        """
        Each query form gets its answer over the wire.
        """
        self.assertIn(b"Phone: 555-0100", self.query(b"/W alice\r\n"))
        self.assertIn(b"Phone: 555-0100", self.query(b"/w alice\r\n"))
        self.assertIn(b"Phone: 555-0100", self.query(b"/W  alice\r\n"))
        self.assertNotIn(b"Phone:", self.query(b"alice\r\n"))
        listing = self.query(b"\r\n")
        self.assertTrue(listing.startswith(b"Login"))
        self.assertIn(b"\r\nalice ", listing)
        long_list = self.query(b"/W\r\n")  # issue 23: the long entry of each visible account
        self.assertIn(b"Login: alice", long_list)
        self.assertIn(b"Phone: 555-0100", long_list)
        for forward in (b"alice@host\r\n", b"alice@a@b\r\n", b"@host\r\n"):
            self.assertEqual(self.query(forward), FORWARD_DENIED.encode() + b"\r\n")

    def test_bad_query(self) -> None:
        """
        A malformed query gets one C{"finger: bad query: ..."} line.
        """
        for line in (b"/X\r\n", b"/Walice\r\n", b"alice bob\r\n"):
            answer = self.query(line)
            self.assertTrue(answer.startswith(b"finger: bad query: "), answer)
            self.assertEqual(answer.count(b"\r\n"), 1)

    def test_unknown_and_hidden_same(self) -> None:
        """
        An unknown and a hidden login get the same answer but for the login echoed.
        """
        self.assertEqual(self.query(b"nobody\r\n"), b"finger: nobody: no such user.\r\n")
        self.assertEqual(self.query(b"hatter\r\n"), b"finger: hatter: no such user.\r\n")

    def test_list_denied(self) -> None:
        """
        With the list disabled, an empty query gets RFC 1288's refusal.
        """
        factory = FingerFactory(FingerService(make_store(ALICE), self.clock, allow_list=False), self.clock)
        self.assertEqual(self.query(b"\r\n", factory=factory), b"Finger online user list denied\r\n")

    def test_query_limit(self) -> None:
        """
        A 512-byte query is answered; a 513-byte one is refused with C{"finger: query too long"}.
        """
        self.assertEqual(self.query(b"a" * 512 + b"\r\n"), b"finger: " + b"a" * 512 + b": no such user.\r\n")
        self.assertEqual(self.query(b"a" * 513 + b"\r\n"), QUERY_TOO_LONG.encode() + b"\r\n")
        self.assertEqual(self.outcomes()[-1]["query"], escape_query("a" * 513))
        self.assertEqual(self.query(b"a" * 512 + b"\n"), b"finger: " + b"a" * 512 + b": no such user.\r\n")

    def test_query_limit_without_newline(self) -> None:
        """
        A query is refused as soon as more than 512 bytes arrive without a newline, while 512 bytes and a CR
        still wait for the LF.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"a" * 512 + b"\r")
        self.assertTrue(transport.connected)
        protocol.dataReceived(b"\n")
        self.assertIn(b"no such user", transport.value())
        self.assertEqual(self.query(b"a" * 300, b"b" * 213), QUERY_TOO_LONG.encode() + b"\r\n")
        self.assertEqual(self.outcomes()[-1]["outcome"], "too-long")
        self.assertEqual(self.outcomes()[-1]["query"], escape_query("a" * 300 + "b" * 213))

    def test_one_query_per_connection(self) -> None:
        """
        Bytes after the first line are ignored: only one answer is written, even if more arrives later.
        """
        factory = FingerFactory(ManualService(), self.clock)  # type: ignore[arg-type]
        protocol, transport = self.connect(factory)
        protocol.dataReceived(b"alice\r\nbob\r\n")
        protocol.dataReceived(b"carol\r\n")
        service: ManualService = factory.responder.service  # type: ignore[assignment]
        self.assertEqual(len(service.pending), 1)
        service.pending[0].callback(["one"])
        self.assertEqual(transport.value(), b"one\r\n")

    def test_hostile_fields_arrive_harmless(self) -> None:
        """
        Escape sequences, BEL and C1 controls stored in every field arrive without a single control byte.
        """
        for line in (b"mallory\r\n", b"/W mallory\r\n", b"\r\n", b"\x1b[2J\x07\xc2\x9b\r\n", b"\x1b\r\n"):
            answer = self.query(line)
            assert_terminal_safe(self, answer)
        self.assertIn(b"Status: [2JHi31mevil\r\n", self.query(b"mallory\r\n"))

    def test_invalid_utf8_replaced(self) -> None:
        """
        Bytes that are not UTF-8 decode to U+FFFD instead of failing.
        """
        answer = self.query(b"\xff\xfe\r\n")
        self.assertEqual(answer, "finger: \ufffd\ufffd: no such user.\r\n".encode())

    def test_utf8_and_ascii(self) -> None:
        """
        Answers are UTF-8 by default; with C{ascii_only}, accents are dropped and dashes spelled C{"-"}.
        """
        self.assertIn("Ren\u00e9e Alice \u2014 Liddell".encode(), self.query(b"alice\r\n"))
        factory = FingerFactory(self.service, self.clock, ascii_only=True)
        answer = self.query(b"alice\r\n", factory=factory)
        self.assertIn(b"Name: Renee Alice - Liddell\r\n", answer)
        self.assertTrue(answer.isascii())

    def test_output_cap(self) -> None:
        """
        A huge plan is cut under the output cap, ending with the truncation line.
        """
        plan = "\n".join(f"line {n} of a very long plan" for n in range(20000))
        factory = FingerFactory(FingerService(make_store(Account("bigmouth", plan=plan)), self.clock), self.clock)
        answer = self.query(b"bigmouth\r\n", factory=factory)
        self.assertLessEqual(len(answer), 65536)
        self.assertGreater(len(answer), 65000)
        self.assertTrue(answer.endswith(TRUNCATED.encode() + b"\r\n"))
        small = FingerFactory(factory.responder.service, self.clock, max_output=200)
        self.assertLessEqual(len(self.query(b"bigmouth\r\n", factory=small)), 200)

    def test_idle_timeout(self) -> None:
        """
        A connection that sends no complete query is closed after the timeout, and the timeout is logged.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"ali")
        self.clock.advance(9.9)
        self.assertTrue(transport.connected)
        self.clock.advance(0.2)
        self.assertFalse(transport.connected)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.outcomes()[-1]["outcome"], "timeout")
        self.assertEqual(self.outcomes()[-1]["query"], "'ali'")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_query_log_gets_the_queries(self) -> None:
        """
        With a C{query_log} (an access log), each query goes there, with its fields and the seconds from the
        accept to the answer, and not to the global log.
        """
        received: list[tuple[Any, ...]] = []

        @implementer(IQueryLog)
        class Recorder:
            def query(self, peer: str, query: str, outcome: str, elapsed: float = 0.0) -> None:
                received.append((peer, query, outcome, elapsed))

            def flush(self) -> None:
                received.append(("flushed",))

        factory = FingerFactory(self.service, self.clock, query_log=Recorder())
        self.query(b"alice\r\n", factory=factory)
        protocol, _ = self.connect(factory)
        self.clock.advance(0.25)
        protocol.dataReceived(b"alice\r\n")
        self.assertEqual(
            received, [("192.0.2.7:40000", "'alice'", "user", 0.0), ("192.0.2.7:40000", "'alice'", "user", 0.25)]
        )
        self.assertEqual(self.outcomes(), [])
        factory.stopFactory()  # the port closes: the log writes out what waits
        self.assertEqual(received[-1], ("flushed",))

    def test_timeout_error_does_not_stop_the_sweep(self) -> None:
        """
        A connection whose timeout handling raises is logged, and the other connections still time out.
        """
        broken, _ = self.connect()
        broken.timeoutConnection = lambda: 1 / 0  # type: ignore[method-assign]
        self.clock.advance(5)
        protocol, transport = self.connect()
        self.clock.advance(5)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(transport.connected)
        self.clock.advance(5)
        self.assertFalse(transport.connected)
        self.assertEqual(len(self.factory.deadlines), 0)

    def test_timeout_not_reset_by_data(self) -> None:
        """
        Trickling bytes does not extend the deadline for the whole query.
        """
        protocol, transport = self.connect(FingerFactory(self.service, self.clock, timeout=2.0))
        for _ in range(5):
            protocol.dataReceived(b"a")
            self.clock.advance(0.5)
        self.assertFalse(transport.connected)

    def test_timeout_while_answering(self) -> None:
        """
        If the answer is not ready in time the connection closes, and the late answer is never written.
        """
        factory = FingerFactory(ManualService(), self.clock)  # type: ignore[arg-type]
        protocol, transport = self.connect(factory)
        protocol.dataReceived(b"alice\r\n")
        self.clock.advance(10)
        self.assertFalse(transport.connected)
        factory.responder.service.pending[0].callback(["late"])  # type: ignore[attr-defined]
        self.assertEqual(transport.value(), b"")
        self.assertEqual([event["outcome"] for event in self.outcomes()], ["timeout"])

    def test_late_failure_after_timeout(self) -> None:
        """
        An answer failing after the timeout closed the connection is logged as an error but writes nothing and
        logs no second outcome.
        """
        factory = FingerFactory(ManualService(), self.clock)  # type: ignore[arg-type]
        protocol, transport = self.connect(factory)
        protocol.dataReceived(b"alice\r\n")
        self.clock.advance(10)
        factory.responder.service.pending[0].errback(RuntimeError("too late"))  # type: ignore[attr-defined]
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual([event["outcome"] for event in self.outcomes()], ["timeout"])

    def test_no_write_after_connection_lost(self) -> None:
        """
        An answer arriving after the peer went away is logged but not written.
        """
        factory = FingerFactory(ManualService(), self.clock)  # type: ignore[arg-type]
        transport = StringTransport(peerAddress=PEER)
        protocol, _ = self.connect(factory, transport=transport)
        protocol.dataReceived(b"alice\r\n")
        protocol.connectionLost()
        factory.responder.service.pending[0].callback(["late"])  # type: ignore[attr-defined]
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.assertEqual([event["outcome"] for event in self.outcomes()], ["user"])

    def test_slow_reader_aborted(self) -> None:
        """
        A peer that does not read its answer within another timeout period is aborted.
        """
        transport = StringTransport(peerAddress=PEER)
        protocol, _ = self.connect(transport=transport)
        protocol.dataReceived(b"alice\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.clock.advance(10)
        self.assertTrue(transport.disconnected)

    def test_read_deadline_starts_with_answer(self) -> None:
        """
        The peer gets a full timeout period to read the answer, counted from when it was written.
        """
        transport = StringTransport(peerAddress=PEER)
        protocol, _ = self.connect(transport=transport)
        self.clock.advance(9)
        protocol.dataReceived(b"alice\r\n")
        self.clock.advance(9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(1.1)
        self.assertTrue(transport.disconnected)

    def test_internal_error(self) -> None:
        """
        A store that raises gives the peer only C{"Internal error in server"}; the traceback goes to the log.
        """
        factory = FingerFactory(FingerService(BrokenStore(), self.clock), self.clock)  # type: ignore[arg-type]
        answer = self.query(b"alice\r\n", factory=factory)
        self.assertEqual(answer, INTERNAL_ERROR.encode() + b"\r\n")
        self.assertNotIn(b"broken", answer)
        errors = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(len(errors), 1)
        self.assertEqual(str(errors[0].value), "peek is broken")
        self.assertEqual(self.outcomes()[-1]["outcome"], "error")

    def test_failed_deferred(self) -> None:
        """
        A failed L{Deferred} from the store is an internal error too.
        """
        factory = FingerFactory(FingerService(BrokenStore(), self.clock), self.clock)  # type: ignore[arg-type]
        self.assertEqual(self.query(b"\r\n", factory=factory), b"Internal error in server\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_log_event(self) -> None:
        """
        Each query is one info event with the peer, the escaped query and the outcome.
        """
        self.query(b"alice\r\n")
        self.query(b"\x1b[2J" + b"x" * 200 + b"\r\n")
        user, hostile = self.outcomes()
        self.assertEqual(user["peer"], "192.0.2.7:40000")
        self.assertEqual(user["query"], "'alice'")
        self.assertEqual(user["outcome"], "user")
        self.assertEqual(user["log_level"].name, "info")
        self.assertEqual(formatEvent(user), "finger 192.0.2.7:40000 'alice' -> user")
        self.assertTrue(hostile["query"].startswith("'\\x1b[2Jxxx"))
        self.assertLessEqual(len(hostile["query"]), 100)
        self.assertEqual(hostile["outcome"], "no-such-user")

    def test_log_outcomes(self) -> None:
        """
        Every kind of answer logs its own outcome, exactly once per connection.
        """
        self.query(b"alice\r\n")
        self.query(b"nobody\r\n")
        self.query(b"\r\n")
        self.query(b"@host\r\n")
        self.query(b"/X\r\n")
        self.query(b"a" * 600)
        denied = FingerFactory(FingerService(make_store(), self.clock, allow_list=False), self.clock)
        self.query(b"\r\n", factory=denied)
        self.assertEqual(
            [event["outcome"] for event in self.outcomes()],
            ["user", "no-such-user", "list", "forward-denied", "bad-query", "too-long", "list-denied"],
        )

    def test_peer_gone_before_query_not_logged(self) -> None:
        """
        A peer closing before sending a query leaves no query event and no deadline; the deadline check stops
        at its next round, leaving no timed call behind.
        """
        protocol, transport = self.connect()
        transport.loseConnection()
        self.assertEqual(self.outcomes(), [])
        self.assertEqual(len(self.factory.deadlines), 0)
        self.clock.advance(1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PerPeerLimitTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    L{FingerFactory} limits concurrent connections per peer host.
    """

    def test_twenty_first_refused(self) -> None:
        """
        The 21st connection from one host gets the refusal line and is closed; other hosts are unaffected; a
        closed connection frees its slot.
        """
        opened = [self.connect() for _ in range(20)]
        self.assertTrue(all(transport.connected for _, transport in opened))
        self.assertEqual(self.factory.limits.connections_from("192.0.2.7"), 20)
        _, refused = self.connect(peer=IPv4Address("TCP", "192.0.2.7", 50000))
        self.assertEqual(refused.value(), TOO_MANY.encode() + b"\r\n")
        self.assertFalse(refused.connected)
        self.assertEqual(self.factory.limits.connections_from("192.0.2.7"), 20)
        self.assertEqual(self.outcomes()[-1]["outcome"], "too-many")
        _, again = self.connect()
        self.assertFalse(again.connected)
        _, other = self.connect(peer=IPv4Address("TCP", "198.51.100.1", 40000))
        self.assertTrue(other.connected)
        opened[0][1].loseConnection()
        self.assertEqual(self.factory.limits.connections_from("192.0.2.7"), 19)
        protocol, freed = self.connect()
        self.assertTrue(freed.connected)
        protocol.dataReceived(b"alice\r\n")
        self.assertIn(b"Login: alice", freed.value())
        self.assertEqual(self.factory.limits.connections_from("192.0.2.7"), 19)

    def test_answered_connections_free_slots(self) -> None:
        """
        Connections that were answered and closed no longer count.
        """
        for _ in range(30):
            self.assertTrue(self.query(b"alice\r\n").startswith(b"Login: alice"))
        self.assertEqual(self.factory.limits.connections_from("192.0.2.7"), 0)

    def test_unix_peers_share_a_key(self) -> None:
        """
        Peers without an IP address (UNIX sockets) share one fixed key and one limit.
        """
        factory = FingerFactory(self.service, self.clock, max_per_peer=1)
        first, transport = self.connect(factory, peer=UNIXAddress(None))
        self.assertTrue(transport.connected)
        _, second = self.connect(factory, peer=UNIXAddress(b"/run/finger.sock"))
        self.assertEqual(second.value(), TOO_MANY.encode() + b"\r\n")
        first.dataReceived(b"alice\r\n")
        self.assertIn(b"Login: alice", transport.value())
        self.assertEqual(self.outcomes()[-1]["peer"], "local")


class ProxyProtocolTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Behind the PROXY protocol (C{--finger haproxy:...}) a connection's peer is the client its header names, for
    the per-peer limit and for the log, not the proxy every connection comes from.
    """

    def setUp(self) -> None:
        """
        The factory (two connections per host) listening through the PROXY protocol's endpoint.
        """
        super().setUp()
        self.factory = FingerFactory(self.service, self.clock, max_per_peer=2)
        self.wrapping = behind_proxy(self, self.factory)

    def proxied(self, client: str, data: bytes = b"ali") -> StringTransportWithDisconnection:
        """
        Connect through the proxy for C{client} (C{"host port"}) and send C{data}.
        """
        host, port = client.split()
        return connect_proxied(self.wrapping, host, int(port), data)

    def test_each_client_its_own_limit(self) -> None:
        """
        Four clients' connections through one proxy are all admitted, with a limit of two per host; a third
        connection from a client with two open is refused; the proxy itself is never counted.
        """
        opened = [self.proxied(client) for client in ("192.0.2.1 40000", "192.0.2.1 40001", "192.0.2.2 40000")]
        opened.append(self.proxied("192.0.2.3 40000"))
        self.assertTrue(all(transport.connected for transport in opened))
        self.assertEqual([self.factory.limits.connections_from(f"192.0.2.{n}") for n in (1, 2, 3)], [2, 1, 1])
        self.assertEqual(self.factory.limits.connections_from("10.0.0.1"), 0)
        refused = self.proxied("192.0.2.1 40002")
        self.assertEqual(refused.value(), TOO_MANY.encode() + b"\r\n")
        self.assertEqual(self.outcomes()[-1]["peer"], "192.0.2.1:40002")
        opened[0].loseConnection()
        self.assertEqual(self.factory.limits.connections_from("192.0.2.1"), 1)

    def test_logged_as_the_client(self) -> None:
        """
        The query is logged with the client's address and port from the header.
        """
        transport = self.proxied("192.0.2.9 40001", b"alice\r\n")
        self.assertIn(b"Login: alice", transport.value())
        self.assertEqual([(e["peer"], e["outcome"]) for e in self.outcomes()], [("192.0.2.9:40001", "user")])
        self.assertEqual(self.factory.limits.connections_from("192.0.2.9"), 0)


class EscapeQueryTests(SynchronousTestCase):
    """
    Queries as the log shows them.
    """

    def test_escape_query(self) -> None:
        """
        Queries are escaped and bounded for the log.
        """
        self.assertEqual(escape_query("a\x1b\u00e9"), "'a\\x1b\\xe9'")
        self.assertEqual(len(escape_query("x" * 500)), 100)


class WireSafetyPropertyTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    Whatever a peer sends, the answer is safe for a terminal.
    """

    @settings(deadline=None, max_examples=60)
    @given(st.binary(max_size=600))
    def test_property_any_bytes(self, data: bytes) -> None:
        """
        Any bytes followed by LF get a terminal-safe answer and a closed connection.
        """
        protocol, transport = self.connect()
        protocol.dataReceived(data + b"\n")
        self.assertFalse(transport.connected)
        assert_terminal_safe(self, transport.value())


class ReplyCacheTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    L{FingerFactory} sends a kept reply again for the same query line only while its answer holds.
    """

    def test_reused_and_still_logged(self) -> None:
        """
        The same line twice gets the very same reply object, and both queries are logged.
        """
        first = self.query(b"alice\r\n")
        reply = self.factory.responder.cache.get(b"alice")
        self.assertIsNotNone(reply)
        self.assertEqual(self.query(b"alice\n"), first)
        self.assertIs(self.factory.responder.cache.get(b"alice"), reply)
        self.assertEqual([(e["query"], e["outcome"]) for e in self.outcomes()], [("'alice'", "user")] * 2)

    def test_edit_refreshes(self) -> None:
        """
        After an edit of the account the next query shows it.
        """
        self.assertIn(b"Down the rabbit hole", self.query(b"alice\r\n"))
        self.successResultOf(self.service.store.update("alice", {"status": "Late"}, Actor("t", "cli")))
        answer = self.query(b"alice\r\n")
        self.assertIn(b"Status: Late", answer)
        self.assertNotIn(b"Down the rabbit hole", answer)

    def test_age_refreshes_each_minute(self) -> None:
        """
        The "N minutes ago" text is right after every minute boundary, and the reply is kept within a minute.
        """
        self.assertIn(b"(1 minute ago)", self.query(b"alice\r\n"))
        self.clock.advance(59.9)
        self.assertIn(b"(1 minute ago)", self.query(b"alice\r\n"))
        self.clock.advance(0.1)
        self.assertIn(b"(2 minutes ago)", self.query(b"alice\r\n"))

    def test_hidden_deleted_created(self) -> None:
        """
        Hiding or deleting an account turns its kept record into "no such user"; creating an account turns a
        kept "no such user" into its record.
        """
        store = self.service.store
        actor = Actor("t", "cli")
        self.query(b"alice\r\n")
        self.successResultOf(store.update("alice", {"hidden": True}, actor))
        self.assertEqual(self.query(b"alice\r\n"), b"finger: alice: no such user.\r\n")
        self.successResultOf(store.update("alice", {"hidden": False}, actor))
        self.assertIn(b"Down the rabbit hole", self.query(b"alice\r\n"))
        self.successResultOf(store.delete("alice", actor))
        self.assertEqual(self.query(b"alice\r\n"), b"finger: alice: no such user.\r\n")
        self.assertEqual(self.query(b"bob\r\n"), b"finger: bob: no such user.\r\n")
        self.successResultOf(store.create("bob", actor, {"status": "New here"}))
        self.assertIn(b"Status: New here", self.query(b"bob\r\n"))

    def test_constant_answers_kept(self) -> None:
        """
        An answer that depends on no account (a refused forwarding query) is kept however much time passes.
        """
        first = self.query(b"alice@elsewhere\r\n")
        self.assertEqual(first, FORWARD_DENIED.encode() + b"\r\n")
        reply = self.factory.responder.cache.get(b"alice@elsewhere")
        self.assertIsNotNone(reply)
        self.clock.advance(10 * 365 * 86400)
        self.assertIs(self.factory.responder.cache.get(b"alice@elsewhere"), reply)
        self.assertEqual(self.query(b"alice@elsewhere\r\n"), first)

    def test_not_kept(self) -> None:
        """
        Bad queries and errors are never kept.
        """
        self.query(b"/X\r\n")
        self.assertIsNone(self.factory.responder.cache.get(b"/X"))
        broken = FingerFactory(FingerService(BrokenStore(), self.clock), self.clock)  # type: ignore[arg-type]
        self.assertEqual(self.query(b"alice\r\n", factory=broken), INTERNAL_ERROR.encode() + b"\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIsNone(broken.responder.cache.get(b"alice"))

    def test_listing_kept_until_a_change(self) -> None:
        """
        The user list is kept like any other reply (issue 17 #7), however much time passes, until any account
        changes; then the next listing shows the change.
        """
        first = self.query(b"\r\n")
        reply = self.factory.responder.cache.get(b"")
        self.assertIsNotNone(reply)
        self.clock.advance(3600)
        self.assertIs(self.factory.responder.cache.get(b""), reply)
        self.assertEqual(self.query(b"\r\n"), first)
        self.successResultOf(self.service.store.update("alice", {"status": "Asleep"}, Actor("t", "cli")))
        self.assertIsNone(self.factory.responder.cache.get(b""))
        self.assertIn(b"Asleep", self.query(b"\r\n"))

    def test_store_broken_after_caching(self) -> None:
        """
        A store that changes and breaks after a reply was kept gets the query "Internal error in server", not
        the kept reply, a traceback to the peer or a dropped connection.
        """
        self.query(b"alice\r\n")

        def broken(login: str) -> None:
            raise RuntimeError("peek is broken")

        self.successResultOf(self.service.store.update("hatter", {"status": "Tea"}, Actor("t", "cli")))
        self.patch(self.service.store, "peek", broken)
        self.assertEqual(self.query(b"alice\r\n"), INTERNAL_ERROR.encode() + b"\r\n")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bounded(self) -> None:
        """
        The cache starts afresh past L{constants.CACHE_SIZE} replies or L{constants.CACHE_BYTES} bytes, so distinct
        queries cannot grow it without bound.
        """
        self.patch(constants, "CACHE_SIZE", 3)
        for n in range(7):
            self.query(f"nobody{n}\r\n".encode())
            self.assertLessEqual(len(self.factory.responder.cache), 3)
        self.assertIsNotNone(self.factory.responder.cache.get(b"nobody6"))
        self.patch(constants, "CACHE_SIZE", 1000)
        self.patch(constants, "CACHE_BYTES", 100)
        for n in range(7):
            self.query(f"nobody{n}\r\n".encode())
            self.assertLessEqual(self.factory.responder.cache.size, 100)
            self.assertIsNotNone(self.factory.responder.cache.get(f"nobody{n}".encode()))


class SendWithFinTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    L{send_with_fin}: the answer is corked so that it leaves with the FIN.
    """

    def test_answer_leaves_with_the_fin(self) -> None:
        """
        On a real TCP connection the answer is held until the connection closes: the client sees nothing while
        the protocol's transport is open, then the whole answer and the end of the stream together.
        """
        if finger.TCP_CORK is None:
            raise self.skipTest("TCP_CORK is Linux-only")  # pragma: no cover
        client, server, _ = self.sockets()
        client.setblocking(False)

        class Transport(StringTransportWithDisconnection):
            def getHandle(self) -> socket.socket:
                return server

            def write(self, data: bytes) -> None:
                server.send(data)

            def loseConnection(self) -> None:
                self.held = self.peek()
                server.close()
                super().loseConnection()

            def peek(self) -> bytes:
                try:
                    return client.recv(65536)
                except BlockingIOError:
                    return b""

        transport = Transport(peerAddress=PEER)
        protocol, _ = self.connect(transport=transport)
        transport.protocol = protocol
        protocol.dataReceived(b"alice\r\n")
        self.assertEqual(transport.held, b"")  # nothing had left before the close
        client.setblocking(True)
        client.settimeout(5)
        self.assertIn(b"Down the rabbit hole", b"".join(iter(lambda: client.recv(65536), b"")))

    def test_real_sockets(self) -> None:
        """
        On a real TCP socket the option is set; a UNIX socket (which refuses it) and a transport without a socket
        are left alone without an error.
        """
        if finger.TCP_CORK is None:
            raise self.skipTest("TCP_CORK is Linux-only")  # pragma: no cover
        _, server, _ = self.sockets()

        class Transport:
            def __init__(self, sock: socket.socket) -> None:
                self.sock = sock

            def getHandle(self) -> socket.socket:
                return self.sock

        self.assertEqual(server.getsockopt(socket.IPPROTO_TCP, finger.TCP_CORK), 0)
        send_with_fin(Transport(server))  # type: ignore[arg-type]
        self.assertEqual(server.getsockopt(socket.IPPROTO_TCP, finger.TCP_CORK), 1)
        left, right = socket.socketpair(socket.AF_UNIX)
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        send_with_fin(Transport(left))  # type: ignore[arg-type]
        send_with_fin(StringTransport())


class ReadAtOnceTests(ProtocolTestsMixin, SynchronousTestCase):
    """
    L{read_at_once}: on a real TCP transport the query that came with the connection is read and answered while
    the connection is set up, without waiting for the reactor's next turn; otherwise the reactor reads as usual.
    """

    def accept(self, *sends: bytes, close: bool = False) -> tuple[socket.socket, tcp.Server]:
        """
        Like L{sockets}, then set up the accepted socket as L{tcp.Port} does: a L{tcp.Server} over a
        L{MemoryReactor} (C{self.reactor}), its protocol's connection made.

        @return: the client socket and the server transport.
        """
        client, sock, address = self.sockets(*sends, close=close)
        self.reactor = MemoryReactor()
        protocol = self.factory.buildProtocol(IPv4Address("TCP", *address))
        transport = tcp.Server(sock, protocol, address, None, 1, self.reactor)  # type: ignore[arg-type]
        protocol.makeConnection(transport)
        return client, transport

    def finish(self, transport: tcp.Server) -> None:
        """
        Do what the reactor would for C{transport}, which is writing its answer and closing: write, and once that
        reports the connection done, call C{connectionLost}.
        """
        self.assertIn(transport, self.reactor.getWriters())
        self.assertNotIn(transport, self.reactor.getReaders())
        done = transport.doWrite()
        self.assertIsInstance(done, ConnectionDone)
        transport.connectionLost(Failure(done))

    def test_query_waiting(self) -> None:
        """
        A query already received is answered during C{makeConnection}: the answer is queued, the connection is
        closing, and the peer reads the answer once it is written.
        """
        client, transport = self.accept(b"alice\r\n")
        self.assertEqual([(e["query"], e["outcome"]) for e in self.outcomes()], [("'alice'", "user")])
        self.assertTrue(transport.disconnecting)
        self.finish(transport)
        self.assertIn(b"Status: Down the rabbit hole", b"".join(iter(lambda: client.recv(65536), b"")))

    def test_query_later(self) -> None:
        """
        With nothing received yet the connection stays with the reactor, which reads the query when it comes.
        """
        client, transport = self.accept()
        self.assertEqual(self.outcomes(), [])
        self.assertIn(transport, self.reactor.getReaders())
        client.sendall(b"alice\r\n")
        self.assertIsNone(transport.doRead())
        self.assertEqual(len(self.outcomes()), 1)
        self.finish(transport)

    def test_peer_gone(self) -> None:
        """
        A peer that closed before sending a query has its connection closed, with nothing logged.
        """
        _, transport = self.accept(close=True)
        self.assertTrue(transport.disconnecting)
        self.finish(transport)
        self.assertEqual(self.outcomes(), [])
        self.assertEqual(len(self.factory.deadlines), 0)

    def test_not_in_a_burst(self) -> None:
        """
        With more than L{constants.READ_AT_ONCE_MAX} connections open, counting the new one, its query is left for
        the reactor to read; at the limit it is read at once.
        """
        self.patch(constants, "READ_AT_ONCE_MAX", 2)
        self.connect()  # one open connection, waiting for its query
        _, transport = self.accept(b"alice\r\n")
        self.assertEqual(len(self.outcomes()), 1)
        self.finish(transport)
        self.connect()
        _, transport = self.accept(b"alice\r\n")
        self.assertEqual(len(self.outcomes()), 1)
        self.assertIn(transport, self.reactor.getReaders())
        self.assertIsNone(transport.doRead())
        self.assertEqual(len(self.outcomes()), 2)
        self.finish(transport)

    def test_wrapped_transport(self) -> None:
        """
        A protocol under a wrapping transport (here a plain L{policies.ProtocolWrapper}) is not read early, though
        the wrapper answers C{doRead} by delegation: the reactor reads for it as usual.
        """
        _, sock, address = self.sockets(b"alice\r\n")
        wrapper = policies.ProtocolWrapper(
            policies.WrappingFactory(self.factory), self.factory.buildProtocol(IPv4Address("TCP", *address))
        )
        transport = tcp.Server(sock, wrapper, address, None, 1, MemoryReactor())  # type: ignore[arg-type]
        wrapper.makeConnection(transport)
        self.assertEqual(self.outcomes(), [])
        self.assertIsNone(transport.doRead())
        self.assertEqual([e["outcome"] for e in self.outcomes()], ["user"])


class ListingLimitTests(SynchronousTestCase):
    """
    The empty query on a large store.
    """

    def test_listing_is_bounded(self) -> None:
        """
        A store larger than L{LIST_MAX} lists the first accounts in order and says there are more; hidden
        accounts are skipped; a new account shows in the next listing.
        """
        from sshfinger.finger.constants import LIST_MAX

        clock = task.Clock()
        accounts = [Account(f"user{n:05d}", hidden=n == 0) for n in range(LIST_MAX + 50)]
        store = CachedStore(MemoryBackend(accounts), clock.seconds)
        store.open()
        service = FingerService(store, clock)
        lines = service.listing()
        self.assertEqual(len(lines), 1 + LIST_MAX + 1)
        self.assertTrue(lines[1].startswith("user00001"))
        self.assertIn("more accounts than the", lines[-1])
        self.successResultOf(store.create("aaron", Actor("t", "cli")))
        self.successResultOf(store.delete("user00001", Actor("t", "cli")))
        lines = service.listing()
        self.assertTrue(lines[1].startswith("aaron"))
        self.assertTrue(lines[2].startswith("user00002"))
