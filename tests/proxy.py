"""
Connections through the PROXY protocol's wrapper (C{haproxy:} endpoints), in memory.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.testing import MemoryReactor, StringTransportWithDisconnection
from twisted.protocols.haproxy import proxyEndpoint
from twisted.trial.unittest import SynchronousTestCase

#: Where every proxied connection comes from.
PROXY = IPv4Address("TCP", "10.0.0.1", 50000)


def behind_proxy(case: SynchronousTestCase, factory: IProtocolFactory) -> IProtocolFactory:
    """
    Listen with C{factory} through L{proxyEndpoint} on a memory reactor; return the wrapping factory the endpoint
    put in front of it, which builds the connections.
    """
    reactor = MemoryReactor()
    case.successResultOf(proxyEndpoint(TCP4ServerEndpoint(reactor, 79)).listen(factory))
    return reactor.tcpServers[0][1]  # type: ignore[no-any-return]


def connect_proxied(wrapping: IProtocolFactory, host: str, port: int, data: bytes) -> StringTransportWithDisconnection:
    """
    Connect from L{PROXY} and (unless refused at once) send a PROXY header naming client C{host}:C{port}, then
    C{data}; return the proxy's side of the connection.
    """
    wrapper = wrapping.buildProtocol(PROXY)
    assert wrapper is not None
    transport = StringTransportWithDisconnection(peerAddress=PROXY)
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    if transport.connected:
        wrapper.dataReceived(f"PROXY TCP4 {host} 127.0.0.1 {port} 79\r\n".encode() + data)
    return transport


__all__ = ["PROXY", "behind_proxy", "connect_proxied"]
