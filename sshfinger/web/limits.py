"""
The web face's limits, all in one place, and the twisted.web site that enforces them.

L{WebSite} builds L{LimitedChannel}s: shorter request and header lines than twisted.web's defaults, fewer
headers, a small body cap (the face is read-only), a deadline for a request's headers to arrive (an idle timeout
alone lets a client drip one byte at a time for ever; one timer per connection, re-armed as it fires), caps on
connections per address and in all, and a per-address request rate.  Every response carries the security
headers of L{SECURITY_HEADERS}; tracebacks never reach a client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.http_headers import Headers
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

#: Most accounts the list page and C{/api/users} show (in login order; the rest are reached by login).
LIST_LIMIT = 1000

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
)


_SECURITY_BLOCK = b"".join(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS) + b"\r\n"


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
    A request refused (429) when its address is over the rate.

    @ivar raw_head: header lines (each ending in CRLF) a resource wants sent as they are: cheaper than setting
        them one by one in C{responseHeaders}, for the headers of a cached body.
    """

    raw_head = b""

    def write(self, data: bytes) -> None:
        """
        Hand L{raw_head} to the channel with the response's head, then write as usual.
        """
        if not self.startedWriting and self.raw_head:
            self.channel.head_extra = self.raw_head  # type: ignore[attr-defined]
        super().write(data)

    def process(self) -> None:
        """
        Apply the rate limit, then render as usual.
        """
        site = self.channel.site  # type: ignore[attr-defined]
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
    _head_started: float | None = None
    #: Header lines the request being answered adds (L{LimitedRequest.raw_head}), sent once and cleared.
    head_extra = b""
    _refused = False

    def connectionMade(self) -> None:
        """
        Start the connection's one header-deadline timer (re-armed as it fires, not per request).
        """
        super().connectionMade()
        self._deadline = self.site.clock.callLater(HEADER_DEADLINE, self._check_head)  # type: ignore[attr-defined]

    def lineReceived(self, line: bytes) -> None:
        """
        Note when a request's head starts, then parse as usual.
        """
        if self._head_started is None:
            self._head_started = self.site.clock.seconds()  # type: ignore[attr-defined]
        super().lineReceived(line)

    def _check_head(self) -> None:
        clock = self.site.clock  # type: ignore[attr-defined]
        started = self._head_started
        if started is not None and clock.seconds() - started >= HEADER_DEADLINE:
            self._deadline = None
            self.refuse(b"408 Request Timeout")
            return
        wait = HEADER_DEADLINE if started is None else started + HEADER_DEADLINE - clock.seconds()
        self._deadline = clock.callLater(wait, self._check_head)

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        """
        Write a response head as L{http.HTTPChannel} does, with L{SECURITY_HEADERS} appended as one block
        (cheaper than setting them through each request's header map).
        """
        if not isinstance(headers, Headers):
            super().writeHeaders(version, code, reason, [*headers, *SECURITY_HEADERS])
            return
        sequence = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                sequence.extend((name, b": ", value, b"\r\n"))
        if self.head_extra:
            sequence.append(self.head_extra)
            self.head_extra = b""
        sequence.append(_SECURITY_BLOCK)
        self.transport.writeSequence(sequence)  # type: ignore[union-attr]

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A request or header line over L{MAX_LINE}: answer 431 and close (LineReceiver would just close).
        """
        self.refuse(b"431 Request Header Fields Too Large")

    def allHeadersReceived(self) -> None:
        """
        The head is complete; refuse a request announcing a body larger than L{MAX_BODY}.
        """
        self._head_started = None
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

    def log(self, request: server.Request) -> None:  # type: ignore[override]
        """
        Count the finished response by status (twisted.web calls this once per response).
        """
        self.on_response(int(request.code))
