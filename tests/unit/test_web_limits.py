"""
The web face's limits against hostile clients: line, header and body sizes, slow heads, request rates,
connections per address, and no traceback to a client.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from sshfinger.web import limits
from tests.unit.webhelpers import HOST, WebTestCase, parse_response


class LimitTests(WebTestCase):
    """
    L{sshfinger.web.limits.WebSite} and its channel.
    """

    def test_long_request_line(self) -> None:
        """
        A request line over L{limits.MAX_LINE} gets 431 and the connection is closed.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET /" + b"a" * limits.MAX_LINE + b" HTTP/1.1\r\n")  # type: ignore[attr-defined]
        self.assertEqual(parse_response(transport.value()).status, 431)
        self.assertTrue(transport.disconnecting)

    def test_too_many_headers(self) -> None:
        """
        More than L{limits.MAX_HEADERS} header lines get 400.
        """
        headers = "".join(f"X-{i}: y\r\n" for i in range(limits.MAX_HEADERS + 1))
        response = self.exchange(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n".encode())
        self.assertEqual(response.status, 400)

    def test_body_too_large(self) -> None:
        """
        A body announced larger than L{limits.MAX_BODY}, or a chunked one growing past it, gets 413 and a close.
        """
        channel, transport = self.connect()
        channel.dataReceived(  # type: ignore[attr-defined]
            f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {limits.MAX_BODY + 1}\r\n\r\n".encode()
        )
        self.assertEqual(parse_response(transport.value()).status, 413)
        self.assertTrue(transport.disconnecting)
        channel, transport = self.connect()
        chunk = b"%x\r\n%s\r\n" % (limits.MAX_BODY, b"x" * limits.MAX_BODY)
        channel.dataReceived(  # type: ignore[attr-defined]
            f"POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunk * 2
        )
        self.assertEqual(parse_response(transport.value()).status, 413)

    def test_slow_head_timed_out(self) -> None:
        """
        A client that sends a request line and then one header byte now and then is answered 408 and closed
        after L{limits.HEADER_DEADLINE} seconds, though it was never idle.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\n")  # type: ignore[attr-defined]
        for _ in range(int(limits.HEADER_DEADLINE)):
            self.reactor.advance(1)
            channel.dataReceived(b"X")  # type: ignore[attr-defined]
            if transport.disconnecting:
                break
        self.reactor.advance(1)
        self.assertEqual(parse_response(transport.value()).status, 408)
        self.assertTrue(transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """
        A connection that sends nothing is closed after L{limits.IDLE_TIMEOUT} seconds.
        """
        _, transport = self.connect()
        self.reactor.advance(limits.IDLE_TIMEOUT + 1)
        self.assertTrue(transport.disconnecting)

    def test_rate_limit(self) -> None:
        """
        An address over its burst gets 429 with C{Retry-After}; another address is served; the first is served
        again once its bucket refills.
        """
        statuses = []
        for _ in range(int(limits.RATE_BURST) + 5):
            statuses.append(self.get("/healthz").status)
        self.assertEqual(statuses[: int(limits.RATE_BURST)], [200] * int(limits.RATE_BURST))
        refused = self.get("/healthz")
        self.assertEqual(refused.status, 429)
        self.assertEqual(refused.header("retry-after"), "1")
        self.assertEqual(self.exchange(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", "192.0.2.99").status, 200)
        self.reactor.advance(1)
        self.assertEqual(self.get("/healthz").status, 200)

    def test_connections_per_address(self) -> None:
        """
        Past L{limits.MAX_PER_ADDRESS} open connections from one address, more are refused; one closing makes
        room; other addresses are unaffected.
        """
        opened = [self.connect() for _ in range(limits.MAX_PER_ADDRESS)]
        self.assertTrue(all(channel is not None for channel, _ in opened))
        self.assertIsNone(self.connect()[0])
        self.assertIsNotNone(self.connect("192.0.2.2")[0])
        channel, transport = opened[0]
        channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]
        self.assertIsNotNone(self.connect()[0])

    def test_no_traceback(self) -> None:
        """
        A resource that raises gets a 500 without the traceback or the exception's text.
        """

        class Broken(Resource):
            isLeaf = True

            def render_GET(self, request: object) -> bytes:
                raise RuntimeError("secret internals")

        self.site.resource.putChild(b"broken", Broken())
        response = self.get("/broken")
        self.assertEqual(response.status, 500)
        self.assertNotIn(b"secret internals", response.raw)
        self.assertNotIn(b"Traceback", response.raw)
        self.flushLoggedErrors(RuntimeError)


class TokenBucketTests(WebTestCase):
    """
    L{limits.TokenBuckets}.
    """

    def test_refill_and_forget(self) -> None:
        """
        A bucket refills at the rate; full buckets are forgotten at the next sweep.
        """
        buckets = limits.TokenBuckets(self.reactor, rate=2, burst=2)
        self.assertEqual([buckets.allow("a") for _ in range(3)], [True, True, False])
        self.reactor.advance(0.5)
        self.assertEqual([buckets.allow("a") for _ in range(2)], [True, False])
        self.reactor.advance(120)
        buckets.allow("b")
        self.assertEqual(set(buckets._buckets), {"b"})
