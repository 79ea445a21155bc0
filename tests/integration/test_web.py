"""
The web face of the installed C{twistd sshfinger}: raw HTTP against a real server, a real browser following
live updates while a real C{ssh} client edits a status, and C{/metrics} moving with a real finger query.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import time

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, free_port, run_tool
from tests.sshclient import setup_site, ssh_run
from tests.webdriver import Browser

HOST = "example.org"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """
    Wait until C{port} on 127.0.0.1 accepts connections.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port}") from None
            time.sleep(0.05)


def raw_http(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """
    Send raw bytes to C{port} and return everything the server sends before it closes.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


class WebServerTestCase(SynchronousTestCase):
    """
    A real server with SSH (password logins for admin, alice and bob), the web face and metrics.
    """

    def setUp(self) -> None:
        """
        Create the site with the installed tool and start the server.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = setup_site(self, self.directory)
        self.web_port, self.metrics_port = free_port(), free_port()
        args = ["--store", self.store, "--auth", "file:passwd", "--admin", "admin", "--hostname", HOST,
                "--web", f"tcp:{self.web_port}:interface=127.0.0.1",
                "--metrics", f"tcp:{self.metrics_port}:interface=127.0.0.1"]  # fmt: skip
        self.server = ServerProcess(self, self.directory, args, ssh=True).start()
        wait_for_port(self.web_port)
        wait_for_port(self.metrics_port)

    def request(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET", port: int | None = None
    ) -> http.client.HTTPResponse:
        """
        Make one request with C{http.client}; the response is read.
        """
        connection = http.client.HTTPConnection("127.0.0.1", port or self.web_port, timeout=10)
        self.addCleanup(connection.close)
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        return response

    def ssh(self, login: str, *command: str) -> None:
        """
        Run one shell command over a real SSH login; it must succeed.
        """
        result = ssh_run(self.server, login, list(command))
        self.assertEqual(result.returncode, 0, result.stderr + self.server.log())


class RawHTTPTests(WebServerTestCase):
    """
    Raw HTTP against the installed server.
    """

    def test_pages_api_webfinger(self) -> None:
        """
        Status codes, headers, CORS, the rel filter, 304s, escaping of a hostile status set over SSH, a hidden
        account absent from pages, JSON, WebFinger and events, and events for edits over SSH and from another
        process.
        """
        self.ssh("alice", "set", "alice", "fediverse", "https://mastodon.example/@alice")
        self.ssh("alice", "status", shlex.quote(HOSTILE))
        self.ssh("admin", "hide", "bob")

        events = socket.create_connection(("127.0.0.1", self.web_port), timeout=5)
        self.addCleanup(events.close)
        events.sendall(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())

        page = self.request("/")
        self.assertEqual(page.status, 200)
        self.assertIn("default-src 'none'", page.getheader("Content-Security-Policy") or "")
        self.assertEqual(page.getheader("X-Content-Type-Options"), "nosniff")
        self.assertIsNotNone(page.getheader("Referrer-Policy"))
        self.assertIn(b"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img", page.body)  # type: ignore[attr-defined]
        self.assertNotIn(b"<script>alert", page.body)  # type: ignore[attr-defined]
        self.assertNotIn(b"<img", page.body)  # type: ignore[attr-defined]
        self.assertNotIn(b"bob", page.body)  # type: ignore[attr-defined]

        alice = self.request("/api/users/alice")
        self.assertEqual(alice.status, 200)
        self.assertEqual(json.loads(alice.body)["status"], HOSTILE)  # type: ignore[attr-defined]
        etag = alice.getheader("ETag")
        self.assertEqual(self.request("/api/users/alice", {"If-None-Match": etag or ""}).status, 304)
        modified = alice.getheader("Last-Modified") or ""
        self.assertEqual(self.request("/api/users/alice", {"If-Modified-Since": modified}).status, 304)
        for path in ("/api/users/bob", "/~bob", "/~nobody", "/api/users/nobody"):
            self.assertEqual(self.request(path).status, 404, path)
        self.assertNotIn(b'"bob"', self.request("/api/users").body)  # type: ignore[attr-defined]

        wf = self.request(f"/.well-known/webfinger?resource=acct:alice@{HOST}&rel=self")
        self.assertEqual(wf.status, 200)
        self.assertEqual(wf.getheader("Content-Type"), "application/jrd+json")
        self.assertEqual(wf.getheader("Access-Control-Allow-Origin"), "*")
        jrd = json.loads(wf.body)  # type: ignore[attr-defined]
        self.assertEqual(jrd["aliases"], ["https://mastodon.example/@alice"])
        self.assertEqual([link["rel"] for link in jrd["links"]], ["self"])
        for query, status in [("", 400), ("resource=alice", 400), (f"resource=acct:bob@{HOST}", 404),
                              (f"resource=acct:nobody@{HOST}", 404), ("resource=acct:alice@other.example", 404)]:  # fmt: skip
            self.assertEqual(self.request(f"/.well-known/webfinger?{query}").status, status, query)
        self.assertEqual(self.request("/", method="POST").status, 405)
        self.assertEqual(self.request("/.well-known/webfinger", method="OPTIONS").status, 204)

        self.ssh("admin", "set", "bob", "status", "secret plans")
        self.ssh("admin", "set", "alice", "status", "visible edit")
        received = b""
        deadline = time.monotonic() + 5
        while b"visible edit" not in received and time.monotonic() < deadline:
            received += events.recv(65536)
        self.assertIn(b"visible edit", received)
        self.assertNotIn(b"secret plans", received)
        self.assertNotIn(b"bob", received)

        # A change committed by another process (the offline tool) reaches the stream too.
        result = run_tool("set", "alice", "status", "from another process", "--store", self.store)
        self.assertEqual(result.returncode, 0, result.stderr)
        deadline = time.monotonic() + 5
        while b"from another process" not in received and time.monotonic() < deadline:
            received += events.recv(65536)
        self.assertIn(b"from another process", received)

    def test_limits(self) -> None:
        """
        Over-long request lines get 431, big bodies 413, a slow head is cut, and nothing shows a traceback.
        """
        answer = raw_http(self.web_port, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:80])
        answer = raw_http(self.web_port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:80])
        answer = raw_http(self.web_port, b"GET /%ff%fe/../\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertNotIn(b"Traceback", answer)
        with socket.create_connection(("127.0.0.1", self.web_port), timeout=20) as s:
            s.sendall(b"GET / HTTP/1.1\r\n")
            started = time.monotonic()
            closed = False
            while time.monotonic() - started < 15:
                try:
                    s.sendall(b"X")
                    s.settimeout(1)
                    data = s.recv(65536)
                    if data.startswith(b"HTTP/1.1 408") or not data:
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
            self.assertTrue(closed, "a client dripping its headers was not cut off")
        self.assertNotIn("Traceback", self.server.log())


class MetricsTests(WebServerTestCase):
    """
    C{/metrics}, C{/healthz} and C{/readyz} on the metrics endpoint.
    """

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """
        Scrape and parse C{/metrics} with prometheus_client's parser.
        """
        response = self.request("/metrics", port=self.metrics_port)
        self.assertEqual(response.status, 200)
        found = {}
        for family in text_string_to_metric_families(response.body.decode()):  # type: ignore[attr-defined]
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found

    def test_finger_query_moves_counter(self) -> None:
        """
        A real finger query moves its outcome's counter; an SSH login moves the login counter; health checks
        answer on both endpoints.
        """
        key = ("sshfinger_finger_queries_total", (("outcome", "user"),))
        before = self.samples().get(key, 0.0)
        self.assertIn(b"Alice", self.server.finger(b"alice\r\n"))
        self.assertEqual(self.samples()[key], before + 1)
        self.ssh("alice", "whoami")
        self.assertGreaterEqual(
            self.samples()[("sshfinger_ssh_logins_total", (("method", "password"), ("result", "accepted")))], 1
        )
        for port in (self.web_port, self.metrics_port):
            self.assertEqual(self.request("/healthz", port=port).status, 200)
            self.assertEqual(self.request("/readyz", port=port).status, 200)
        self.assertEqual(self.request("/metrics").status, 404)  # not on the public endpoint


class BrowserTests(WebServerTestCase):
    """
    A real headless chromium on C{/}.
    """

    def test_live_update(self) -> None:
        """
        The page shows a status edited over SSH within a second without a reload; a screenshot is saved in the
        trial temp directory.
        """
        browser = Browser(self)
        browser.get(f"http://127.0.0.1:{self.web_port}/")
        browser.wait_for("document.querySelector('#live.on')", timeout=10)
        browser.script("window.notReloaded = true;")
        self.ssh("alice", "status", "Painting the roses red")
        waited = browser.wait_for(
            "[...document.querySelectorAll('#users tr[data-login=alice] td.status')]"
            ".some(td => td.textContent === 'Painting the roses red')",
            timeout=1.0,
        )
        self.assertTrue(browser.script("return window.notReloaded === true;"))
        self.assertLess(waited, 1.0)
        path = os.path.abspath("web-live.png")
        png = browser.screenshot(path)
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertTrue(os.path.getsize(path) > 1000)
