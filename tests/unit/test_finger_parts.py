"""
Tests for the finger server's parts on their own: L{ConnectionLimits}, L{ListingLimiter}, L{Deadlines},
L{ReplyCache}, L{Responder}; and how the factory uses them against floods (issue 17 #2 and #7).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sshfinger.finger import constants
from sshfinger.finger.cache import Reply, ReplyCache
from sshfinger.finger.deadlines import Deadlines
from sshfinger.finger.limits import ConnectionLimits, ListingLimiter, PeerKeys
from sshfinger.finger.onaccept import AnsweringEndpoint
from sshfinger.finger.protocol import FingerFactory, FingerProtocol
from sshfinger.finger.respond import Responder
from sshfinger.finger.service import Answer, FingerService, IFingerService
from sshfinger.model.account import Actor
from sshfinger.model.peers import peer_key
from sshfinger.tap import Options, makeService
from tests.unit.test_finger import ALICE, HATTER, make_clock, make_store


class ConnectionLimitsTests(SynchronousTestCase):
    """
    L{ConnectionLimits} counts per key and in all.
    """

    def test_per_peer_and_total(self) -> None:
        """
        A key at its limit is refused; the total counts every admitted connection, and passes its maximum only
        when told (the caller makes room); releasing frees both counts, and an unknown key changes nothing.
        """
        limits = ConnectionLimits(max_per_peer=2, max_total=3)
        self.assertEqual([limits.admit("a"), limits.admit("a"), limits.admit("a")], [True, True, False])
        self.assertEqual((limits.connections_from("a"), limits.total, limits.over_total()), (2, 2, False))
        self.assertTrue(limits.admit("b") and limits.admit("c"))
        self.assertTrue(limits.over_total())
        limits.release("a")
        limits.release("nobody")
        self.assertEqual((limits.connections_from("a"), limits.total, limits.over_total()), (1, 3, False))


class PeerKeysTests(SynchronousTestCase):
    """
    L{PeerKeys} gives what L{peer_key} gives, remembering IPv6 networks in bounded memory.
    """

    def test_same_as_peer_key(self) -> None:
        """
        IPv4, IPv6 (by /64 or another prefix), IPv4-mapped IPv6, UNIX and missing addresses get L{peer_key}'s key,
        asked once or many times, however many hosts were asked before.
        """
        self.patch(constants, "PEER_KEYS_MAX", 3)
        addresses = [
            IPv4Address("TCP", "192.0.2.7", 1),
            IPv6Address("TCP", "2001:db8:1:2::7", 1),
            IPv6Address("TCP", "2001:db8:1:3::7", 1),
            IPv6Address("TCP", "::ffff:192.0.2.9", 1),
            IPv6Address("TCP", "fe80::1%eth0", 1),
            UNIXAddress(b"/run/finger.sock"),
            None,
        ]
        for prefix in (64, 48, 128):
            keys = PeerKeys(prefix)
            for _ in range(3):
                self.assertEqual([keys(a) for a in addresses], [peer_key(a, prefix) for a in addresses])


class ListingLimiterTests(SynchronousTestCase):
    """
    L{ListingLimiter}: a token bucket per key.
    """

    def test_burst_then_rate(self) -> None:
        """
        A key gets its burst at once, then C{rate} a second; other keys are unaffected.
        """
        clock = task.Clock()
        limiter = ListingLimiter(clock, rate=2.0, burst=3.0)
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])
        self.assertTrue(limiter.allow("b"))
        clock.advance(0.5)
        self.assertEqual([limiter.allow("a"), limiter.allow("a")], [True, False])
        clock.advance(100)
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])

    def test_bounded_memory(self) -> None:
        """
        Past L{constants.LIST_PEERS_MAX} keys, those whose budget refilled are forgotten.
        """
        self.patch(constants, "LIST_PEERS_MAX", 10)
        clock = task.Clock()
        limiter = ListingLimiter(clock)
        for n in range(10):
            limiter.allow(f"old{n}")
        clock.advance(3600)
        for n in range(50):
            self.assertTrue(limiter.allow(f"new{n}"))
        self.assertLessEqual(len(limiter), 10)


class Item:
    """
    Something with a deadline, recording its timeouts.
    """

    deadline = 0.0

    def __init__(self) -> None:
        self.timeouts = 0

    def timeoutConnection(self) -> None:
        """
        Count the call.
        """
        self.timeouts += 1


class DeadlinesTests(SynchronousTestCase):
    """
    L{Deadlines}: one timer for every watched connection.
    """

    def test_timeout_and_order(self) -> None:
        """
        A watched item is timed out after C{timeout} (plus at most the sweep interval), once; watching again
        restarts its deadline (it stays the oldest); the timer stops when nothing is watched.
        """
        clock = task.Clock()
        deadlines = Deadlines(clock, 4.0)
        first, second = Item(), Item()
        deadlines.watch(first)
        deadlines.watch(second)
        self.assertIs(deadlines.oldest(), first)
        self.assertIs(deadlines.oldest(but=first), second)
        clock.advance(2)
        deadlines.watch(first)
        self.assertIs(deadlines.oldest(), first)
        clock.advance(2)
        self.assertEqual((first.timeouts, second.timeouts, len(deadlines)), (0, 1, 1))
        clock.advance(2)
        self.assertEqual((first.timeouts, second.timeouts, len(deadlines)), (1, 1, 0))
        clock.advance(1)
        self.assertEqual(clock.getDelayedCalls(), [])


class ReplyCacheTests(SynchronousTestCase):
    """
    L{ReplyCache} on its own.
    """

    def test_holds_while_current(self) -> None:
        """
        A reply is returned while its answer is current, never without an answer, and not once it is stale.
        """
        current = {"yes": True}
        cache = ReplyCache(lambda answer, now: current["yes"], task.Clock())
        reply = Reply(b"x\r\n", "user", "'x'", Answer(["x"], "user"))
        cache.put(b"x", reply)
        cache.put(b"y", Reply(b"y\r\n", "bad-query", "'y'"))
        self.assertIs(cache.get(b"x"), reply)
        self.assertIsNone(cache.get(b"y"))
        self.assertEqual((len(cache), cache.size), (1, 3))
        current["yes"] = False
        self.assertIsNone(cache.get(b"x"))


class ResponderTests(SynchronousTestCase):
    """
    L{Responder.respond}: the pure path from a line to its reply.
    """

    def setUp(self) -> None:
        """
        A responder over alice and hatter.
        """
        self.clock = make_clock()
        self.service = FingerService(make_store(ALICE, HATTER), self.clock)
        self.responder = Responder(self.service, self.clock)

    def test_reply(self) -> None:
        """
        A line gets its encoded reply with the outcome and the escaped query; the same line again gets the same
        reply object.
        """
        reply = self.responder.respond(b"alice", "192.0.2.7")
        assert isinstance(reply, Reply)
        self.assertIn(b"Login: alice", reply.data)
        self.assertEqual((reply.outcome, reply.query), ("user", "'alice'"))
        self.assertIs(self.responder.respond(b"alice", "192.0.2.7"), reply)

    def reply(self, line: bytes, peer: str) -> Reply:
        """
        Return the reply to C{line} from C{peer}, waiting on the clock for one that comes later.
        """
        result = self.responder.respond(line, peer)
        if isinstance(result, Reply):
            return result
        self.assertNoResult(result)
        self.clock.advance(constants.LIST_PENALTY)
        return self.successResultOf(result)

    def test_listings_rate_limited_per_peer(self) -> None:
        """
        Listing queries (the empty query, C{/W} alone), kept or not, spend their peer's budget: past it the peer
        gets a one-line refusal after L{constants.LIST_PENALTY} seconds, while other peers and user queries are
        served at once.
        """
        burst = int(constants.LIST_BURST)
        results = [self.responder.respond(line, "a") for line in [b"", b"/W"] * burst]
        self.assertEqual([r.outcome for r in results[:burst]], ["list", "long-list"] * (burst // 2))  # type: ignore[union-attr]
        later = results[burst:]
        self.assertTrue(all(isinstance(r, Deferred) for r in later))
        self.assertIsInstance(self.responder.respond(b"", "b"), Reply)
        self.assertEqual(self.responder.respond(b"alice", "a").outcome, "user")  # type: ignore[union-attr]
        self.assertNoResult(later[0])  # type: ignore[arg-type]
        self.clock.advance(constants.LIST_PENALTY)
        refused = {self.successResultOf(r).data for r in later}  # type: ignore[arg-type]
        self.assertEqual(refused, {constants.TOO_MANY_LISTINGS.encode() + b"\r\n"})
        self.assertEqual(self.reply(b"", "a").outcome, "list")

    def test_listing_denied_not_limited(self) -> None:
        """
        With listing refused (C{--no-list}) the refusal is not rate-limited: it costs nothing.
        """
        responder = Responder(FingerService(make_store(ALICE), self.clock, allow_list=False), self.clock)
        outcomes = {responder.respond(b"", "a").outcome for _ in range(50)}  # type: ignore[union-attr]
        self.assertEqual(outcomes, {"list-denied"})

    def test_deferred(self) -> None:
        """
        A service answering later gives a L{Deferred} firing with the reply; a failure becomes the internal error.
        """

        class Later:
            allow_list = True

            def __init__(self) -> None:
                self.pending: list[Deferred[list[str]]] = []

            def answer(self, query: Any) -> Deferred[list[str]]:
                self.pending.append(Deferred())
                return self.pending[-1]

        later = Later()
        responder = Responder(later, self.clock)  # type: ignore[arg-type]
        first, second = responder.respond(b"alice", "a"), responder.respond(b"bob", "a")
        later.pending[0].callback(["hi"])
        later.pending[1].errback(RuntimeError("boom"))
        self.assertEqual(self.successResultOf(first).data, b"hi\r\n")  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(second).outcome, "error")  # type: ignore[arg-type]
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_provides_interface(self) -> None:
        """
        L{FingerService} provides L{IFingerService}, the seam front ends adapt.
        """
        verifyObject(IFingerService, self.service)


class FactoryFloodTests(SynchronousTestCase):
    """
    The factory against floods: idle connections from many addresses, IPv6 networks.
    """

    def setUp(self) -> None:
        """
        A factory with small limits (3 per peer, 10 in all).
        """
        self.clock = make_clock()
        self.service = FingerService(make_store(ALICE), self.clock)
        self.factory = FingerFactory(self.service, self.clock, max_per_peer=3, max_connections=10)

    def connect(self, address: Any) -> tuple[FingerProtocol, StringTransportWithDisconnection]:
        """
        Connect a protocol from C{address}.
        """
        protocol = self.factory.buildProtocol(address)
        transport = StringTransportWithDisconnection(peerAddress=address)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol, transport

    def test_total_cap_closes_the_oldest(self) -> None:
        """
        Past the total cap, each new connection closes the oldest open one, so idle connections from many
        addresses never hold more than the cap, and a legit query made meanwhile is answered.
        """
        idle = [self.connect(IPv4Address("TCP", f"192.0.2.{n // 3}", 40000 + n)) for n in range(30)]
        self.assertEqual(sum(transport.connected for _, transport in idle), 10)
        self.assertEqual(self.factory.limits.total, 10)
        protocol, transport = self.connect(IPv4Address("TCP", "198.51.100.1", 40000))
        protocol.dataReceived(b"alice\r\n")
        self.assertIn(b"Login: alice", transport.value())
        self.assertLessEqual(self.factory.limits.total, 10)

    def test_ipv6_network_is_one_peer(self) -> None:
        """
        IPv6 peers in one /64 share one limit (another /64 does not); with C{ipv6_prefix=128} each host is
        its own peer.
        """
        refused = [self.connect(IPv6Address("TCP", f"2001:db8:0:1::{n:x}", 40000))[1] for n in range(1, 5)]
        self.assertEqual([t.connected for t in refused], [True, True, True, False])
        self.assertTrue(self.connect(IPv6Address("TCP", "2001:db8:0:2::1", 40000))[1].connected)
        self.factory = FingerFactory(self.service, self.clock, max_per_peer=3, ipv6_prefix=128)
        hosts = [self.connect(IPv6Address("TCP", f"2001:db8:0:1::{n:x}", 40000))[1] for n in range(1, 5)]
        self.assertTrue(all(t.connected for t in hosts))


class OptionsTests(SynchronousTestCase):
    """
    The finger options of C{twistd sshfinger}.
    """

    def parse(self, *args: str) -> Options:
        """
        Parse C{args} for a finger-only server on a memory store.
        """
        options = Options()
        options.parseOptions(["--store", "memory", "--no-ssh", *args])
        return options

    def test_values(self) -> None:
        """
        The defaults, and the values given.
        """
        options = self.parse()
        self.assertEqual((options["max-finger-connections"], options["ipv6-prefix"]), (512, 64))
        self.assertFalse(options["no-answer-on-accept"])
        options = self.parse("--max-finger-connections", "100", "--ipv6-prefix", "48", "--no-answer-on-accept")
        self.assertEqual((options["max-finger-connections"], options["ipv6-prefix"]), (100, 48))

    def test_bad_values(self) -> None:
        """
        A bad value is one usage error naming the option.
        """
        for args, expected in [
            (["--max-finger-connections", "0"], "--max-finger-connections must be greater than zero"),
            (["--ipv6-prefix", "129"], "--ipv6-prefix must be between 1 and 128"),
            (["--ipv6-prefix", "x"], "--ipv6-prefix takes a prefix length"),
        ]:
            with self.assertRaises(Exception) as caught:
                self.parse(*args)
            self.assertIn(expected, str(caught.exception))

    def test_no_answer_on_accept(self) -> None:
        """
        C{--no-answer-on-accept} leaves the finger endpoint as it is; by default it is wrapped.
        """
        for args, wrapped in [((), True), (("--no-answer-on-accept",), False)]:
            top = makeService(self.parse(*args), MemoryReactorClock())
            endpoint = top.getServiceNamed("finger").endpoint  # type: ignore[attr-defined]
            self.assertEqual(isinstance(endpoint, AnsweringEndpoint), wrapped)


class StoreChangeTests(SynchronousTestCase):
    """
    The kept listing and the store's version.
    """

    def test_listing_follows_the_store(self) -> None:
        """
        A kept listing is dropped as soon as an account is created.
        """
        clock = make_clock()
        store = make_store(ALICE)
        responder = Responder(FingerService(store, clock), clock)
        first = responder.respond(b"", "a")
        self.assertIs(responder.respond(b"", "b"), first)
        self.successResultOf(store.create("bob", Actor("t", "cli")))
        self.assertIn(b"bob", responder.respond(b"", "a").data)  # type: ignore[union-attr]
