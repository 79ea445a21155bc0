"""
Tests for L{sshfinger.model.keyoptions} (C{authorized_keys} options) and their enforcement by
L{sshfinger.ssh.checkers.StoreKeysDB.refusal}.
"""

from __future__ import annotations

import calendar

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.account import Account
from sshfinger.model.keyoptions import parse_options, source_allowed, split_options
from sshfinger.ssh.checkers import StoreKeysDB
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend
from tests.unit.test_sshsig import ECDSA, ED25519, line_of

JAN_2030 = float(calendar.timegm((2030, 1, 1, 0, 0, 0, 0, 0, 0)))


class OptionTests(SynchronousTestCase):
    """
    Reading and checking options.
    """

    def test_split(self) -> None:
        """
        Options are split off the key, quoted values may hold commas, spaces and escaped quotes.
        """
        options, rest = split_options('from="10.0.0.1,!10.0.0.2",no-pty,x="a \\"b\\"" ssh-ed25519 AAAA c')
        self.assertEqual(options, [("from", "10.0.0.1,!10.0.0.2"), ("no-pty", None), ("x", 'a "b"')])
        self.assertEqual(rest, "ssh-ed25519 AAAA c")
        for bad in ('from="10.0.0.1 ssh-ed25519 AAAA', "from=10.0.0.1 ssh-ed25519 AAAA", ",x ssh-ed25519 A"):
            self.assertRaises(ValueError, split_options, bad)

    def test_unsupported_named(self) -> None:
        """
        An option other than C{from} and C{expiry-time} is refused with a line naming it.
        """
        error = self.assertRaises(ValueError, parse_options, [("permitopen", "host:22")])
        self.assertIn("'permitopen' is not supported", str(error))

    def test_from_patterns(self) -> None:
        """
        C{from} patterns match as sshd's: exact, wildcard, network, and a negation that refuses.
        """
        self.assertTrue(source_allowed(("127.0.0.2",), "127.0.0.2"))
        self.assertFalse(source_allowed(("127.0.0.2",), "127.0.0.1"))
        self.assertTrue(source_allowed(("10.1.*",), "10.1.2.3"))
        self.assertTrue(source_allowed(("192.168.0.0/16",), "192.168.4.5"))
        self.assertFalse(source_allowed(("192.168.0.0/16",), "2001:db8::1"))
        self.assertFalse(source_allowed(("!10.0.0.5", "10.0.0.*"), "10.0.0.5"))
        self.assertTrue(source_allowed(("!10.0.0.5", "10.0.0.*"), "10.0.0.6"))
        self.assertRaises(ValueError, parse_options, [("from", "10.0.0.0/33")])

    def test_expiry(self) -> None:
        """
        C{expiry-time} refuses from its moment on; a malformed one is refused when the key is stored.
        """
        options = parse_options([("expiry-time", "20300101Z")])
        self.assertIsNone(options.refusal("10.0.0.1", JAN_2030 - 1))
        self.assertIn("expired", options.refusal("10.0.0.1", JAN_2030) or "")
        self.assertEqual(parse_options([("expiry-time", "203001010830Z")]).expires, JAN_2030 + 8.5 * 3600)
        for bad in ("2030", "20301301", "tomorrow"):
            self.assertRaises(ValueError, parse_options, [("expiry-time", bad)])


class RefusalTests(SynchronousTestCase):
    """
    L{StoreKeysDB.refusal}: the options of the account's line holding the offered key.
    """

    def setUp(self) -> None:
        """
        Alice has an ed25519 key limited to 127.0.0.2 and an expired ECDSA key.
        """
        lines = ('from="127.0.0.2" ' + line_of(ED25519), 'expiry-time="20200101" ' + line_of(ECDSA))
        store = CachedStore(MemoryBackend([Account("alice", keys=lines)]), lambda: 0.0)
        store.open()
        self.keys = StoreKeysDB(store)

    def test_from(self) -> None:
        """
        The limited key logs in from 127.0.0.2 and is refused from 127.0.0.1, naming the address.
        """
        blob = ED25519.public().blob()
        self.assertIsNone(self.keys.refusal(b"alice", blob, IPv4Address("TCP", "127.0.0.2", 5000), JAN_2030))
        reason = self.keys.refusal(b"alice", blob, IPv4Address("TCP", "127.0.0.1", 5000), JAN_2030)
        self.assertEqual(reason, "the key is not allowed from 127.0.0.1 (from=)")
        self.assertEqual(len(list(self.keys.getAuthorizedKeys(b"alice"))), 2)

    def test_expired(self) -> None:
        """
        The expired key is refused; an unknown key or login is left to the checker.
        """
        address = IPv4Address("TCP", "127.0.0.2", 5000)
        self.assertIn("expired", self.keys.refusal(b"alice", ECDSA.public().blob(), address, JAN_2030) or "")
        self.assertIsNone(self.keys.refusal(b"alice", b"other", address, JAN_2030))
        self.assertIsNone(self.keys.refusal(b"nobody", b"other", address, JAN_2030))
