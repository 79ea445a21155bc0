"""
The web face's limits, all in one place, and the twisted.web site that enforces them.

L{WebSite} builds L{LimitedChannel}s: shorter request and header lines than twisted.web's defaults, fewer
headers, a small body cap (the face is read-only), a deadline for a request's headers to arrive (an idle timeout
alone lets a client drip one byte at a time for ever), caps on connections per address and in all, and a
per-address request rate.  Every response carries the security headers of L{SECURITY_HEADERS}; tracebacks never
reach a client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import IResource

# Connections and requests.
#: Longest request line or header line, in bytes (twisted.web's default is 16 KiB).
MAX_LINE = 4096
#: Most header lines in one request, and most bytes of them together.
MAX_HEADERS = 50
MAX_HEADER_BYTES = 16384
#: Largest request body accepted (the face is read-only: GET, HEAD and OPTIONS have none).
MAX_BODY = 1024
#: Seconds a client has to send a whole request head, once it sent its first line.
HEADER_DEADLINE = 10.0
#: Seconds a connection may stay idle (no bytes either way) before it is closed.
IDLE_TIMEOUT = 30.0
#: Most open connections from one address, and in all.
MAX_PER_ADDRESS = 32
MAX_CONNECTIONS = 4096
#: Requests one address may make per second, sustained, and in a burst (C{--web-rate} sets both, the burst
#: twice the rate).
RATE_PER_SECOND = 200.0
RATE_BURST = 2 * RATE_PER_SECOND

# Server-Sent Events.
#: Most open event streams in all and per address.
MAX_SUBSCRIBERS = 2000
MAX_SUBSCRIBERS_PER_ADDRESS = 8
#: Seconds between two heartbeat comments on every event stream.
HEARTBEAT = 15.0
#: How many seconds the browser waits before reconnecting a lost stream (sent as C{retry:}).
RECONNECT_MS = 2000

# Health.
#: Longest store round trip (seconds) and the largest change-feed lag for C{/readyz} to say ready.
READY_TIMEOUT = 2.0
READY_MAX_LAG = 5.0
#: Seconds a high change-feed lag keeps C{/readyz} failing after it was seen.
LAG_MEMORY = 60.0
#: Seconds between two reactor lag measurements.
LAG_INTERVAL = 1.0

#: The status of a request over the rate (not in twisted.web.http's names).
TOO_MANY_REQUESTS = 429

#: Headers sent with every response.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"Content-Security-Policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
    (b"X-Frame-Options", b"DENY"),
)


def address_key(address: IAddress) -> str:
    """
    The key an address is counted under: its host for IP addresses, the whole address otherwise (UNIX sockets).
    """
    return str(getattr(address, "host", address))


class TokenBuckets:
    """
    One token bucket per key: L{allow} says whether one more request fits the rate.  Full buckets are forgotten
    on the next sweep, so memory follows the number of recently busy addresses.
    """

    def __init__(self, clock: IReactorTime, rate: float = RATE_PER_SECOND, burst: float = RATE_BURST) -> None:
        """
        @param clock: gives the time.
        @param rate: tokens added per second.
        @param burst: a bucket's size.
        """
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._last_sweep = clock.seconds()

    def allow(self, key: str) -> bool:
        """
        Take one token from C{key}'s bucket; return L{False} when it is empty.
        """
        now = self.clock.seconds()
        if now - self._last_sweep > 60:
            self._sweep(now)
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


class LimitedRequest(server.Request):
    """
    A request that carries the security headers and is refused (429) when its address is over the rate.
    """

    def process(self) -> None:
        """
        Set the default headers, apply the rate limit, then render as usual.
        """
        for name, value in SECURITY_HEADERS:
            self.setHeader(name, value)
        site = self.channel.site  # type: ignore[attr-defined]
        site.count_request()
        if site.buckets is not None and not site.buckets.allow(address_key(self.getClientAddress())):
            self.setResponseCode(TOO_MANY_REQUESTS)
            self.setHeader(b"Retry-After", b"1")
            self.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            self.setHeader(b"Connection", b"close")
            self.write(b"too many requests\n")
            self.finish()
            return
        super().process()

    _body_seen = 0

    def handleContentChunk(self, data: bytes) -> None:
        """
        Count body bytes (a chunked body announces no length) and refuse past L{MAX_BODY}.
        """
        self._body_seen += len(data)
        if self._body_seen > MAX_BODY:
            self.channel.refuse(b"413 Content Too Large")  # type: ignore[attr-defined]
            return
        super().handleContentChunk(data)


class LimitedChannel(http.HTTPChannel):
    """
    An HTTP channel with tighter limits than twisted.web's (see the module constants).
    """

    MAX_LENGTH = MAX_LINE
    maxHeaders = MAX_HEADERS
    totalHeadersSize = MAX_HEADER_BYTES

    _deadline: IDelayedCall | None = None
    _refused = False

    def lineReceived(self, line: bytes) -> None:
        """
        Start the header deadline at a request's first line, then parse as usual.
        """
        if self._deadline is None and not self._refused:
            self._deadline = self.site.clock.callLater(  # type: ignore[attr-defined]
                HEADER_DEADLINE, self._too_slow
            )
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A request or header line over L{MAX_LINE}: answer 431 and close (LineReceiver would just close).
        """
        self.refuse(b"431 Request Header Fields Too Large")

    def allHeadersReceived(self) -> None:
        """
        Stop the header deadline; refuse a request announcing a body larger than L{MAX_BODY}.
        """
        self._cancel_deadline()
        if self.length is not None and self.length > MAX_BODY:
            self.refuse(b"413 Content Too Large")
            return
        super().allHeadersReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Forget the connection in the site's counts.
        """
        self._cancel_deadline()
        self.site.connection_closed(self)  # type: ignore[attr-defined]
        super().connectionLost(reason)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.refuse(b"408 Request Timeout")

    def refuse(self, status: bytes) -> None:
        """
        Answer C{status} with no body and close, ignoring whatever else the client sends.
        """
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.setRawMode()  # ignore whatever else arrives
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        self.transport.loseConnection()  # type: ignore[union-attr]

    def rawDataReceived(self, data: bytes) -> None:
        """
        After a refusal, drop what arrives; otherwise parse the body as usual.
        """
        if self._refused:
            return
        super().rawDataReceived(data)


class WebSite(server.Site):
    """
    The web face's site: L{LimitedChannel}s and L{LimitedRequest}s, counted per address and in all, with no
    tracebacks shown and no per-request log line (requests are counted in the metrics instead).

    @ivar on_request: called with no argument for every request (metrics); by default nothing.
    @ivar on_response: called with the status code of every finished response (metrics).
    """

    protocol = LimitedChannel  # type: ignore[assignment]  # plain HTTP/1.1: no HTTP/2 upgrade
    requestFactory = LimitedRequest
    displayTracebacks = False

    def __init__(self, resource: IResource, clock: IReactorTime, rate: float | None = None) -> None:
        """
        @param resource: the root resource.
        @param clock: the reactor, for timeouts and rates.
        @param rate: requests per second one address may make (bursts of twice that; default
            L{RATE_PER_SECOND}); C{0} for no limit.
        """
        super().__init__(resource, requestFactory=LimitedRequest, timeout=IDLE_TIMEOUT, reactor=clock)
        self.clock = clock
        rate = RATE_PER_SECOND if rate is None else rate
        self.buckets: TokenBuckets | None = TokenBuckets(clock, rate, 2 * rate) if rate > 0 else None
        self.per_address: dict[str, int] = {}
        self.open_connections = 0
        self.on_request: Callable[[], None] = lambda: None
        self.on_response: Callable[[int], None] = lambda code: None

    def buildProtocol(self, addr: IAddress | None) -> Any:
        """
        Refuse (return L{None}: the connection is closed at once) past L{MAX_PER_ADDRESS} or L{MAX_CONNECTIONS}.
        """
        key = address_key(addr) if addr is not None else ""
        if self.open_connections >= MAX_CONNECTIONS or self.per_address.get(key, 0) >= MAX_PER_ADDRESS:
            return None
        channel = super().buildProtocol(addr)
        if channel is not None:
            channel._address_key = key
            self.per_address[key] = self.per_address.get(key, 0) + 1
            self.open_connections += 1
        return channel

    def connection_closed(self, channel: LimitedChannel) -> None:
        """
        Forget a closed channel in the counts.
        """
        key = getattr(channel, "_address_key", None)
        if key is None:
            return
        channel._address_key = None  # type: ignore[attr-defined]
        self.open_connections -= 1
        left = self.per_address.get(key, 1) - 1
        if left > 0:
            self.per_address[key] = left
        else:
            self.per_address.pop(key, None)

    def count_request(self) -> None:
        """
        Tell L{on_request} of a request.
        """
        self.on_request()

    def log(self, request: server.Request) -> None:  # type: ignore[override]
        """
        Count the finished response by status (twisted.web calls this once per response).
        """
        self.on_response(int(request.code))
