"""
Client addresses as sshfinger logs them and counts them, the same way for finger and SSH.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import IAddress

#: The peer shared by every connection without an IP address (UNIX sockets and the like).
LOCAL_PEER = "local"
#: The peer of a connection whose address could not be had.
UNKNOWN_PEER = "unknown"
#: IPv6 peers are grouped by this prefix length by default: a /64 is what one customer gets.
IPV6_PREFIX = 64


def peer_key(address: IAddress | None, ipv6_prefix: int = IPV6_PREFIX) -> str:
    """
    Return the key under which connections from C{address} are counted (finger's per-peer limits, SSH's
    admission and penalties): its host for IPv4, its C{/ipv6_prefix} network for IPv6 (one attacker holds a
    whole /64, so keying on the /128 would make it millions of peers), L{LOCAL_PEER} for an address without a
    host (a UNIX socket), L{UNKNOWN_PEER} for none.
    """
    if address is None:
        return UNKNOWN_PEER
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return LOCAL_PEER
    return host_key(host, ipv6_prefix)


def host_key(host: str, ipv6_prefix: int = IPV6_PREFIX) -> str:
    """
    Return the counting key of one host address (see L{peer_key}): C{"2001:db8:1:2::/64"} for an IPv6 host, an
    IPv4 host (also an IPv4-mapped IPv6 one) as itself, anything that is not an address unchanged.
    """
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ipv6_prefix >= 128:
            return str(ip)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return host


def describe_peer(address: IAddress | None) -> str:
    """
    Return C{address} as log text: C{"192.0.2.7:40000"}, C{"[2001:db8::1]:40000"}, L{LOCAL_PEER} or (for
    L{None}) L{UNKNOWN_PEER}.
    """
    if address is None:
        return UNKNOWN_PEER
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not isinstance(host, str):
        return LOCAL_PEER
    if isinstance(address, IPv6Address):
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


__all__ = ["IPV6_PREFIX", "LOCAL_PEER", "UNKNOWN_PEER", "describe_peer", "host_key", "peer_key"]
