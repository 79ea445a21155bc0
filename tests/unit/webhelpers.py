"""
Support for the web face's unit tests: a memory store with hostile and hidden accounts, the site over a
L{MemoryReactorClock}, and raw HTTP exchanges through a L{StringTransport}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.account import Account
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend
from sshfinger.web.events import EventHub
from sshfinger.web.limits import WebSite
from sshfinger.web.metrics import Metrics
from sshfinger.web.service import metrics_root, web_root

HOST = "example.org"
NOW = 1_800_000_000.0
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'

ACCOUNTS = [
    Account("alice", "Alice Liddell", "Down the rabbit hole", "Follow the White Rabbit.", "B12", "555-0100",
            updated_at=NOW - 300, updated_by="admin", keys=("ssh-ed25519 AAAA alice",)),
    Account("mallory", BREAKOUT, SCRIPT, f"{SCRIPT}\n{BREAKOUT}\n\x1b[2Jcleared", updated_at=NOW - 60),
    Account("secret", "Hidden Person", "hidden status", hidden=True, updated_at=NOW - 10),
    Account("root", "Administrator", "Keeping the lights on", role="admin", updated_at=NOW - 20),
]  # fmt: skip


@dataclass
class Response:
    """
    One parsed HTTP/1.1 response.
    """

    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes = field(repr=False, default=b"")

    def header(self, name: str) -> str | None:
        """
        A header's value (name in any case), or L{None}.
        """
        return self.headers.get(name.lower())


def parse_response(raw: bytes) -> Response:
    """
    Parse the first response in C{raw} (Content-Length or chunked body).
    """
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = rest[: int(headers["content-length"])]
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
    else:
        body = rest
    return Response(status, headers, body, raw)


class WebTestCase(SynchronousTestCase):
    """
    The web face over a memory store, on a fake reactor.
    """

    def setUp(self) -> None:
        """
        Build the store, the hub, the metrics and both sites.
        """
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.store = CachedStore(MemoryBackend(list(ACCOUNTS)), self.reactor.seconds)
        self.store.open()
        self.metrics = Metrics(self.reactor)
        self.hub = EventHub(self.store, self.reactor)
        self.hub.on_count = self.metrics.sse_subscribers.set
        self.hub.start()
        self.addCleanup(self.hub.stop)
        self.site = WebSite(web_root(self.store, HOST, self.reactor, self.hub, self.metrics), self.reactor)
        self.site.on_response = self.metrics.response
        self.metrics_site = WebSite(metrics_root(self.store, self.reactor, self.metrics), self.reactor)
        self.port = 40000

    def connect(self, host: str = "192.0.2.1", site: WebSite | None = None) -> tuple[object, StringTransport]:
        """
        Open a connection from C{host}; return the channel (or L{None} if refused) and its transport.
        """
        self.port += 1
        address = IPv4Address("TCP", host, self.port)
        channel = (site or self.site).buildProtocol(address)
        transport = StringTransport(peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 8079))
        if channel is not None:
            channel.makeConnection(transport)
        return channel, transport

    def exchange(self, raw: bytes, host: str = "192.0.2.1", site: WebSite | None = None) -> Response:
        """
        Send C{raw} on a new connection and parse what comes back.
        """
        channel, transport = self.connect(host, site)
        assert channel is not None
        channel.dataReceived(raw)  # type: ignore[attr-defined]
        if transport.disconnecting:
            channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]
        return parse_response(transport.value())

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET", site: WebSite | None = None
    ) -> Response:
        """
        Make one request with C{Connection: close}.
        """
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        return self.exchange(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"), site=site)
