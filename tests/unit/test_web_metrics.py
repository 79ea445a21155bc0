"""
Metrics and health: C{/metrics} parses with prometheus_client's own parser and moves with finger queries, SSH
logins, web requests, streams and the change feed; C{/healthz} and C{/readyz}; the C{--web}/C{--metrics}
options.
"""

from __future__ import annotations

import gc

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred
from twisted.logger import Logger, globalLogPublisher
from twisted.python import usage

from sshfinger import tap
from sshfinger.finger.accesslog import AccessLog, BatchedEventLog
from sshfinger.model.account import Actor, Change
from sshfinger.web import limits
from sshfinger.web.metrics import readiness
from sshfinger.web.service import WebFaceService
from tests.unit.webhelpers import HOST, WebTestCase


class MetricsTests(WebTestCase):
    """
    L{sshfinger.web.metrics.Metrics} behind C{/metrics}.
    """

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """
        Fetch C{/metrics} from the metrics site and parse it with prometheus_client's parser.
        """
        response = self.get("/metrics", site=self.metrics_site)
        self.assertEqual(response.status, 200)
        self.assertTrue((response.header("content-type") or "").startswith("text/plain; version="))
        samples = {}
        for family in text_string_to_metric_families(response.body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def test_finger_query_event_counted(self) -> None:
        """
        A finger query's log event (the fields L{sshfinger.finger.accesslog.EventQueryLog} logs) moves the
        counter of its outcome, and its latency when the event has one.
        """
        observer = self.metrics.log_observer
        log = Logger(observer=observer)
        before = self.scrape().get(("sshfinger_finger_queries_total", (("outcome", "user"),)), 0.0)
        log.info("finger {peer} {query} -> {outcome}", peer="192.0.2.1:4000", query="'alice'", outcome="user")
        log.info("finger {peer} {query} -> {outcome}", peer="192.0.2.1:4000", query="''", outcome="list",
                 elapsed=0.002)  # fmt: skip
        samples = self.scrape()
        self.assertEqual(samples[("sshfinger_finger_queries_total", (("outcome", "user"),))], before + 1)
        self.assertEqual(samples[("sshfinger_finger_queries_total", (("outcome", "list"),))], 1)
        self.assertEqual(samples[("sshfinger_finger_query_seconds_count", ())], 1)

    def test_access_log_observer(self) -> None:
        """
        With C{--access-log}, queries reach the metrics through the access log's observers.
        """
        access_log = AccessLog(self.mktemp(), self.reactor)
        access_log.observers.append(self.metrics.query_observer)
        access_log.query("192.0.2.1:4000", "'alice'", "no-such-user")
        self.assertEqual(self.scrape()[("sshfinger_finger_queries_total", (("outcome", "no-such-user"),))], 1)

    def test_batched_event_log_observer(self) -> None:
        """
        Without C{--access-log}, queries are batched into the main log (one event per reactor turn): they reach
        the metrics through that query log's observers, each query once.
        """
        query_log = BatchedEventLog(self.reactor)
        query_log.observers.append(self.metrics.query_observer)
        query_log.query("192.0.2.1:4000", "'alice'", "user", 0.002)
        query_log.query("192.0.2.1:4001", "'bob'", "user", 0.004)
        query_log.flush()
        samples = self.scrape()
        self.assertEqual(samples[("sshfinger_finger_queries_total", (("outcome", "user"),))], 2)
        self.assertEqual(samples[("sshfinger_finger_query_seconds_count", ())], 2)
        self.assertAlmostEqual(samples[("sshfinger_finger_query_seconds_sum", ())], 0.006)

    def test_ssh_logins_counted(self) -> None:
        """
        SSH login events count by method and result; unrelated events with an outcome are ignored.
        """
        log = Logger(observer=self.metrics.log_observer)
        log.info("SSH login accepted", outcome="accepted", method="publickey", login="alice", peer="x")
        log.info("SSH login refused", outcome="refused", method="password", login="alice", peer="x")
        log.info("something else", outcome="accepted")
        samples = self.scrape()
        self.assertEqual(samples[("sshfinger_ssh_logins_total", (("method", "publickey"), ("result", "accepted")))], 1)
        self.assertEqual(samples[("sshfinger_ssh_logins_total", (("method", "password"), ("result", "refused")))], 1)

    def test_open_ssh_connections(self) -> None:
        """
        An accepted login's transport counts as open until that transport logs C{"connection lost"}; a refused
        login does not count; a transport that is gone without the event stops counting.
        """

        class Transport:
            log = Logger()

            def lost(self) -> None:
                self.log.info("connection lost")

        class Auth:
            log = Logger()

            def __init__(self, transport: Transport) -> None:
                self.transport = transport

            def login(self, outcome: str) -> None:
                self.log.info("SSH login", outcome=outcome, method="password", login="alice", peer="x")

        globalLogPublisher.addObserver(self.metrics.log_observer)
        self.addCleanup(globalLogPublisher.removeObserver, self.metrics.log_observer)
        one, two, three = Transport(), Transport(), Transport()
        Auth(one).login("accepted")
        Auth(two).login("accepted")
        Auth(three).login("refused")
        self.assertEqual(self.scrape()[("sshfinger_ssh_open_connections", ())], 2)
        one.lost()
        self.assertEqual(self.scrape()[("sshfinger_ssh_open_connections", ())], 1)
        del two
        gc.collect()
        self.assertEqual(self.scrape()[("sshfinger_ssh_open_connections", ())], 0)

    def test_web_requests_and_streams(self) -> None:
        """
        Web responses count by status; open streams are a gauge.
        """
        self.get("/")
        self.get("/~nobody")
        channel, _ = self.connect()
        channel.dataReceived(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())  # type: ignore[attr-defined]
        samples = self.scrape()
        self.assertEqual(samples[("sshfinger_web_requests_total", (("code", "200"),))], 1)
        self.assertEqual(samples[("sshfinger_web_requests_total", (("code", "404"),))], 1)
        self.assertEqual(samples[("sshfinger_sse_subscribers", ())], 1)

    def test_feed_lag_and_reactor_lag(self) -> None:
        """
        An applied change observes its lag; the reactor lag is how late the 1 s timer fired.
        """
        self.store.subscribe(self.metrics.change_applied)
        self.metrics.start()
        self.addCleanup(self.metrics.stop)
        self.successResultOf(self.store.update("alice", {"status": "x"}, Actor("root", "cli")))
        self.reactor.advance(limits.LAG_INTERVAL + 0.25)
        samples = self.scrape()
        self.assertEqual(samples[("sshfinger_change_feed_lag_seconds_count", ())], 1)
        self.assertAlmostEqual(samples[("sshfinger_reactor_lag_seconds", ())], 0.25)


class HealthTests(WebTestCase):
    """
    C{/healthz} and C{/readyz} on both sites.
    """

    def test_healthz(self) -> None:
        """
        C{/healthz} answers 200 on the web and the metrics endpoint.
        """
        for site in (self.site, self.metrics_site):
            response = self.get("/healthz", site=site)
            self.assertEqual((response.status, response.body), (200, b"ok\n"))

    def test_ready(self) -> None:
        """
        C{/readyz} answers 200 when the store answers.
        """
        for site in (self.site, self.metrics_site):
            self.assertEqual(self.get("/readyz", site=site).status, 200)

    def test_store_stuck(self) -> None:
        """
        A store whose writer queue does not answer within L{limits.READY_TIMEOUT} makes C{/readyz} say 503.
        """

        class Stuck:
            def flush(self) -> Deferred[None]:
                return Deferred()

        check = readiness(Stuck(), self.metrics, self.reactor)
        d = check()
        self.reactor.advance(limits.READY_TIMEOUT + 0.1)
        ready, reason = self.successResultOf(d)
        self.assertFalse(ready)
        self.assertIn("store unreachable", reason)

    def test_lagging_feed(self) -> None:
        """
        A change applied more than L{limits.READY_MAX_LAG} seconds after its commit makes C{/readyz} say 503
        for L{limits.LAG_MEMORY} seconds.
        """
        self.metrics.change_applied(Change(self.reactor.seconds() - 30, Actor("x", "cli"), "alice", "update"))
        response = self.get("/readyz")
        self.assertEqual(response.status, 503)
        self.assertIn(b"lag", response.body)
        self.reactor.advance(limits.LAG_MEMORY + 1)
        self.assertEqual(self.get("/readyz", site=self.metrics_site).status, 200)


class OptionTests(WebTestCase):
    """
    C{--web} and C{--metrics} in C{twistd sshfinger}.
    """

    def test_off_by_default(self) -> None:
        """
        Without the options there is no web face.
        """
        service = tap.makeService({"store": "memory", "no-ssh": True, "finger": "tcp:0"}, self.reactor)
        self.assertFalse([s for s in service if isinstance(s, WebFaceService)])

    def test_built_with_options(self) -> None:
        """
        With C{--web} and C{--metrics}, the web face has both endpoints.
        """
        options = tap.Options()
        options.parseOptions(["--store", "memory", "--no-ssh", "--finger", "tcp:0", "--web", "tcp:0",
                              "--metrics", "tcp:0", "--hostname", HOST])  # fmt: skip
        service = tap.makeService(options, self.reactor)
        [web] = [s for s in service if isinstance(s, WebFaceService)]
        self.assertEqual(sorted(s.name for s in web), ["metrics", "web"])

    def test_web_rate(self) -> None:
        """
        C{--web-rate 0} turns the per-address limit off; a negative or non-numeric rate is refused in one line.
        """
        options = tap.Options()
        options.parseOptions(["--store", "memory", "--no-ssh", "--web", "tcp:0", "--web-rate", "0"])
        self.assertEqual(options["web-rate"], 0)
        service = tap.makeService(options, self.reactor)
        [web] = [s for s in service if isinstance(s, WebFaceService)]
        self.assertIsNone(web.getServiceNamed("web").factory.buckets)  # type: ignore[attr-defined]
        for bad in ("-1", "fast", "nan"):
            with self.assertRaises(usage.UsageError) as caught:
                tap.Options().parseOptions(["--store", "memory", "--no-ssh", "--web-rate", bad])
            self.assertIn("--web-rate", str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_bad_endpoint_one_line(self) -> None:
        """
        A bad C{--web} endpoint is refused with one line naming the option.
        """
        with self.assertRaises(usage.UsageError) as caught:
            tap.Options().parseOptions(["--store", "memory", "--no-ssh", "--web", "nonsense:8079"])
        self.assertTrue(str(caught.exception).startswith("--web: invalid endpoint"))
        self.assertNotIn("\n", str(caught.exception))
