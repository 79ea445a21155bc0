"""
Client addresses as sshfinger logs them and counts them, the same way for finger and SSH.
"""

from __future__ import annotations

from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import IAddress

#: The peer shared by every connection without an IP address (UNIX sockets and the like).
LOCAL_PEER = "local"
#: The peer of a connection whose address could not be had.
UNKNOWN_PEER = "unknown"


def peer_key(address: IAddress | None) -> str:
    """
    Return the key under which connections from C{address} are counted (finger's per-peer limit, SSH's
    penalties): its host, L{LOCAL_PEER} for an address without one (a UNIX socket), L{UNKNOWN_PEER} for none.
    """
    if address is None:
        return UNKNOWN_PEER
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else LOCAL_PEER


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


__all__ = ["LOCAL_PEER", "UNKNOWN_PEER", "describe_peer", "peer_key"]
