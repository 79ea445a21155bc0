"""
Tests for L{sshfinger.model.peers}: how client addresses are keyed and logged.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.peers import LOCAL_PEER, UNKNOWN_PEER, describe_peer, host_key, peer_key

#: An IPv4 client.
PEER = IPv4Address("TCP", "192.0.2.7", 40000)
#: An IPv6 client.
PEER6 = IPv6Address("TCP", "2001:db8::1", 40000)


class PeerKeyTests(SynchronousTestCase):
    """
    L{peer_key}.
    """

    def test_host(self) -> None:
        """
        IPv4 peers are keyed by their bare host whatever their port; IPv6 peers by their /64 by default.
        """
        self.assertEqual(peer_key(PEER), "192.0.2.7")
        self.assertEqual(peer_key(IPv4Address("TCP", "192.0.2.7", 1)), "192.0.2.7")
        self.assertEqual(peer_key(PEER6), "2001:db8::/64")

    def test_ipv6_prefix(self) -> None:
        """
        Two hosts of one IPv6 /64 share a key, hosts of two /64s do not; the prefix length can be set, /128
        keys each host alone; an IPv4-mapped IPv6 peer is keyed as its IPv4 host.
        """
        one = peer_key(IPv6Address("TCP", "2001:db8:1:2::1", 1))
        self.assertEqual(one, peer_key(IPv6Address("TCP", "2001:db8:1:2:ffff::9", 2)))
        self.assertNotEqual(one, peer_key(IPv6Address("TCP", "2001:db8:1:3::1", 1)))
        self.assertEqual(peer_key(IPv6Address("TCP", "2001:db8:1:2::1", 1), 48), "2001:db8:1::/48")
        self.assertEqual(peer_key(PEER6, 128), "2001:db8::1")
        self.assertEqual(peer_key(IPv6Address("TCP", "::ffff:192.0.2.7", 1)), "192.0.2.7")
        self.assertEqual(host_key("not an address"), "not an address")

    def test_no_host(self) -> None:
        """
        Every UNIX-socket peer shares one key; an address that could not be had gets another.
        """
        self.assertEqual(peer_key(UNIXAddress(None)), LOCAL_PEER)
        self.assertEqual(peer_key(UNIXAddress(b"/tmp/x")), LOCAL_PEER)
        self.assertEqual(peer_key(None), UNKNOWN_PEER)


class DescribePeerTests(SynchronousTestCase):
    """
    L{describe_peer}.
    """

    def test_ip(self) -> None:
        """
        IP peers are described as host:port, with IPv6 hosts in brackets so that the port stands apart.
        """
        self.assertEqual(describe_peer(PEER), "192.0.2.7:40000")
        self.assertEqual(describe_peer(PEER6), "[2001:db8::1]:40000")

    def test_no_host(self) -> None:
        """
        A UNIX-socket peer is L{LOCAL_PEER}; an address that could not be had is L{UNKNOWN_PEER}.
        """
        self.assertEqual(describe_peer(UNIXAddress(None)), "local")
        self.assertEqual(describe_peer(None), "unknown")
