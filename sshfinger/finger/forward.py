"""
One-hop finger forwarding (C{user@host}) to the hosts an operator names with C{--forward HOST}, built as the
Twisted finger tutorial's client: a L{ClientFactory} connected through an endpoint, never a blocking socket.

Each forwarded query has a connect timeout and a read timeout, its answer is capped in size and every line is
sanitised like local text, and it is logged.  A host not named is refused as before, and so is a query with
more than one hop (C{user@a@b}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.finger import constants
from sshfinger.finger.query import Query, escape_query
from sshfinger.finger.render import TRUNCATED, sanitize
from sshfinger.finger.service import Answer, IForwarder


class ForwardProtocol(Protocol):
    """
    Send one query line, read the answer until the server closes (or the cap is passed).
    """

    factory: ForwardFactory

    def connectionMade(self) -> None:
        """
        Send the query.
        """
        self.transport.write(self.factory.line)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        """
        Keep C{data}, up to one byte past the cap; then close.
        """
        if self.factory.received(data):
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The answer is complete (or the connection failed).
        """
        self.factory.finished()


class ForwardFactory(ClientFactory[ForwardProtocol]):
    """
    One forwarded query: the line to send and the bytes received.

    @ivar line: the query line sent, with CRLF.
    @ivar max_bytes: bytes of answer kept.
    @ivar done: fires with the bytes received once the connection closes.
    """

    protocol = ForwardProtocol

    def __init__(self, line: bytes, max_bytes: int) -> None:
        self.line, self.max_bytes = line, max_bytes
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: Deferred[bytes] = Deferred()

    def received(self, data: bytes) -> bool:
        """
        Keep C{data}; return whether the cap has been passed.
        """
        room = self.max_bytes + 1 - self.size
        self.chunks.append(data[:room])
        self.size += min(len(data), room)
        return self.size > self.max_bytes

    def finished(self) -> None:
        """
        Fire L{done} with what was received (once).
        """
        if not self.done.called:
            self.done.callback(b"".join(self.chunks))


def answer_lines(host: str, data: bytes, max_bytes: int) -> list[str]:
    """
    A remote answer as local lines: C{"[HOST]"}, then the lines decoded (UTF-8, errors replaced), sanitised, and
    cut at C{max_bytes} with L{TRUNCATED}.
    """
    cut = len(data) > max_bytes
    text = data[:max_bytes].decode("utf-8", errors="replace")
    lines = [f"[{sanitize(host)}]"] + [sanitize(line.rstrip("\r")) for line in text.split("\n")]
    if lines[-1] == "" and not cut:
        lines.pop()
    if cut:
        lines.append(TRUNCATED)
    return lines


def parse_forward(target: str) -> tuple[str, int]:
    """
    Split a C{--forward} value into host and port: C{HOST}, C{HOST:PORT}, C{[IPV6]:PORT} or a bare IPv6 address.

    @raise ValueError: with one line, for an empty host or a bad port.
    """
    host, port = target, "79"
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest.removeprefix(":") or "79"
    elif target.count(":") == 1:
        host, port = target.split(":")
    if not host or any(char.isspace() or char in "@/" for char in host):
        raise ValueError(f"bad host in {target!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {target!r}")
    return host, int(port)


@implementer(IForwarder)
class Forwarder:
    """
    Forwards queries to the hosts it was given, at most L{constants.FORWARD_IN_FLIGHT} at once.

    @ivar hosts: allowed host names (case-folded) and the port of each.
    """

    log = Logger(namespace="sshfinger.finger")

    def __init__(
        self,
        reactor: IReactorTCP,
        hosts: Mapping[str, int],
        connect_timeout: float = constants.FORWARD_CONNECT_TIMEOUT,
        read_timeout: float = constants.FORWARD_READ_TIMEOUT,
        max_bytes: int = constants.FORWARD_MAX_BYTES,
        endpoint: Callable[[str, int, float], IStreamClientEndpoint] | None = None,
    ) -> None:
        """
        @param endpoint: makes the endpoint to a host and port with a connect timeout (default:
            L{HostnameEndpoint} on C{reactor}).
        """
        self.reactor = reactor
        self.endpoint = endpoint or (lambda host, port, timeout: HostnameEndpoint(reactor, host, port, timeout))
        self.hosts = {host.casefold(): port for host, port in hosts.items()}
        self.connect_timeout, self.read_timeout, self.max_bytes = connect_timeout, read_timeout, max_bytes
        self.in_flight = 0

    def allows(self, host: str) -> bool:
        """
        See L{IForwarder.allows}.
        """
        return host.casefold() in self.hosts

    def forward(self, query: Query) -> Deferred[list[str]]:
        """
        See L{IForwarder.forward}.
        """
        host = query.hosts[0]
        user = query.user or ""
        shown = escape_query(f"{user}@{host}")
        if self.in_flight >= constants.FORWARD_IN_FLIGHT:
            self.log.info("finger forward {query}: busy", query=shown)
            return succeed(Answer([constants.FORWARD_BUSY], "forward-busy", expires=0.0))
        self.in_flight += 1
        line = (("/W " if query.verbose else "") + user).encode("utf-8") + b"\r\n"
        factory = ForwardFactory(line, self.max_bytes)
        endpoint = self.endpoint(host, self.hosts[host.casefold()], self.connect_timeout)
        clock: IReactorTime = self.reactor  # type: ignore[assignment]
        timer: list[IDelayedCall] = []

        def connected(protocol: ForwardProtocol) -> Deferred[bytes]:
            timer.append(clock.callLater(self.read_timeout, protocol.transport.abortConnection))  # type: ignore
            return factory.done

        def answered(data: bytes) -> Answer:
            self.log.info("finger forward {query}: {size} bytes", query=shown, size=len(data))
            return Answer(answer_lines(host, data, self.max_bytes), "forwarded", expires=0.0)

        def failed(failure: Failure) -> Answer:
            self.log.info("finger forward {query}: failed: {error}", query=shown, error=failure.getErrorMessage())
            return Answer([f"finger: {sanitize(host)}: cannot get an answer"], "forward-failed", expires=0.0)

        def finish(answer: Answer) -> Answer:
            self.in_flight -= 1
            if timer and timer[0].active():
                timer[0].cancel()
            return answer

        d: Deferred[ForwardProtocol] = endpoint.connect(factory)  # type: ignore[assignment]
        return d.addCallback(connected).addCallbacks(answered, failed).addBoth(finish)  # type: ignore[return-value]


__all__ = ["ForwardFactory", "ForwardProtocol", "Forwarder", "answer_lines", "parse_forward"]
