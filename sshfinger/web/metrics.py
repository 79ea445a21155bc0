"""
Prometheus metrics, gathered without reaching into the other packages: the finger server's query log hands each
query to its observers (L{Metrics.query_observer}), a twisted.logger observer turns the SSH login events into
counters, the store's subscription gives the change-feed lag, and a timer measures the reactor's lag.

    - C{sshfinger_finger_queries_total{outcome}}; C{sshfinger_finger_query_seconds}, from the accept to the
      answer;
    - C{sshfinger_ssh_logins_total{method,result}}; C{sshfinger_ssh_open_connections} (logged in, not yet
      closed);
    - C{sshfinger_store_roundtrip_seconds}: the last store round trip (the writer queue, measured by C{/readyz});
    - C{sshfinger_change_feed_lag_seconds}: from a change's commit stamp to this process applying it;
    - C{sshfinger_web_requests_total{code}}, C{sshfinger_sse_subscribers};
    - C{sshfinger_reactor_lag_seconds}: how late a timer due every L{LAG_INTERVAL} seconds fires.

Whether the queries go to C{--access-log FILE} or to the main log in batches, L{Metrics.query_observer} is
one of the query log's C{observers} (see L{sshfinger.web.service.make_web_service}).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import ILogObserver
from twisted.web.server import Request
from zope.interface import implementer

from sshfinger.model.account import Change
from sshfinger.web.limits import LAG_INTERVAL, LAG_MEMORY, READY_MAX_LAG, READY_TIMEOUT
from sshfinger.web.resources import Page

#: Latency buckets (seconds) for the finger query, store and lag histograms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """
    The process's metrics in their own registry (not the global one, so tests and several services do not mix).
    """

    def __init__(self, clock: IReactorTime) -> None:
        """
        @param clock: the reactor: the lag timer and the feed lag use its time.
        """
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.finger_queries = Counter("sshfinger_finger_queries", "Finger queries by outcome.", ["outcome"], registry=r)
        self.finger_seconds = Histogram(
            "sshfinger_finger_query_seconds", "Finger query latency.", buckets=BUCKETS, registry=r
        )
        self.ssh_logins = Counter(
            "sshfinger_ssh_logins", "SSH login attempts by method and result.", ["method", "result"], registry=r
        )
        #: The SSH transports with an accepted login and no "connection lost" event yet (weakly held: a missed
        #: event cannot keep one counted after it is gone).
        self.ssh_open: weakref.WeakSet[Any] = weakref.WeakSet()
        self.ssh_sessions = Gauge(
            "sshfinger_ssh_open_connections", "Open SSH connections with an accepted login.", registry=r
        )
        self.ssh_sessions.set_function(lambda: len(self.ssh_open))
        self.store_roundtrip = Gauge(
            "sshfinger_store_roundtrip_seconds", "Last round trip through the store's writer queue.", registry=r
        )
        self.feed_lag = Histogram(
            "sshfinger_change_feed_lag_seconds",
            "Seconds from a change's commit stamp to this process applying it.",
            buckets=BUCKETS,
            registry=r,
        )
        self.web_requests = Counter("sshfinger_web_requests", "Web responses by status code.", ["code"], registry=r)
        self.sse_subscribers = Gauge("sshfinger_sse_subscribers", "Open Server-Sent Events streams.", registry=r)
        self.reactor_lag = Gauge("sshfinger_reactor_lag_seconds", "How late the last 1 s timer fired.", registry=r)
        self.last_feed_lag = 0.0
        self.last_feed_lag_at = 0.0
        self._by_code: dict[int, Any] = {}
        #: A twisted.logger observer counting finger queries and SSH logins from their events.
        self.log_observer: ILogObserver = LogEventMetrics(self)
        self._lag_timer = LoopingCall(self._tick)
        self._lag_timer.clock = clock
        self._due = 0.0

    # Sources.

    def query_observer(self, peer: str, query: str, outcome: str, elapsed: float = 0.0) -> None:
        """
        Count one finger query and its latency (the signature of L{sshfinger.finger.accesslog.IQueryLog.query}).
        """
        self.finger_queries.labels(outcome).inc()
        self.finger_seconds.observe(elapsed)


    def change_applied(self, change: Change) -> None:
        """
        A store subscriber: observe the change-feed lag of one applied change.
        """
        lag = max(0.0, self.clock.seconds() - change.at)
        self.last_feed_lag = lag
        self.last_feed_lag_at = self.clock.seconds()
        self.feed_lag.observe(lag)

    def response(self, code: int) -> None:
        """
        Count one web response (the labelled child counters are kept: C{labels()} costs a lock and a lookup).
        """
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self.web_requests.labels(str(code))
        counter.inc()

    # The reactor's lag.

    def start(self) -> None:
        """
        Start measuring the reactor's lag.
        """
        self._due = self.clock.seconds() + LAG_INTERVAL
        self._lag_timer.start(LAG_INTERVAL, now=False)

    def stop(self) -> None:
        """
        Stop measuring.
        """
        if self._lag_timer.running:
            self._lag_timer.stop()

    def _tick(self) -> None:
        now = self.clock.seconds()
        self.reactor_lag.set(max(0.0, now - self._due))
        self._due = now + LAG_INTERVAL

    def render(self) -> bytes:
        """
        The exposition text.
        """
        return generate_latest(self.registry)


@implementer(ILogObserver)
class LogEventMetrics:
    """
    Turns log events into metrics: a finger query event has C{peer}, C{query} and C{outcome}; an SSH login event
    has C{method} and an C{outcome} of C{"accepted"} or C{"refused"}, and its source's transport is an open
    connection until that transport logs C{"connection lost"}.  Cheap for every other event.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __call__(self, event: dict[str, Any]) -> None:
        """
        Look at one event.
        """
        outcome = event.get("outcome")
        if outcome is None:
            if event.get("log_format") == "connection lost":
                source = event.get("log_source")
                if source is not None:
                    self.metrics.ssh_open.discard(source)
            return
        if "query" in event:
            self.metrics.finger_queries.labels(str(outcome)).inc()
            elapsed = event.get("elapsed")
            if isinstance(elapsed, (int, float)):
                self.metrics.finger_seconds.observe(elapsed)
        elif "method" in event and outcome in ("accepted", "refused"):
            self.metrics.ssh_logins.labels(str(event["method"]), str(outcome)).inc()
            transport = getattr(event.get("log_source"), "transport", None)
            if outcome == "accepted" and transport is not None:
                self.metrics.ssh_open.add(transport)


def readiness(
    store: Any, metrics: Metrics | None, clock: IReactorTime
) -> Callable[[], Deferred[tuple[bool, str]]]:
    """
    The check behind C{/readyz}: a round trip through the store's writer queue (its C{flush}, when it has one)
    must finish within L{READY_TIMEOUT} seconds, and no change applied in the last L{LAG_MEMORY} seconds may
    have lagged more than L{READY_MAX_LAG}.
    """

    def check() -> Deferred[tuple[bool, str]]:
        started = clock.seconds()
        flush = getattr(store, "flush", None)
        d: Deferred[Any] = flush() if flush is not None else Deferred()
        if flush is None:
            d.callback(None)
        d.addTimeout(READY_TIMEOUT, clock)

        def done(_: object) -> tuple[bool, str]:
            took = clock.seconds() - started
            if metrics is not None:
                metrics.store_roundtrip.set(took)
                recent = clock.seconds() - metrics.last_feed_lag_at < LAG_MEMORY
                if recent and metrics.last_feed_lag > READY_MAX_LAG:
                    return False, f"change feed lag {metrics.last_feed_lag:.1f} s"
            return True, "ready"

        def failed(reason: Any) -> tuple[bool, str]:
            return False, f"store unreachable: {reason.getErrorMessage()}"[:200]

        return d.addCallbacks(done, failed)

    return check


class MetricsPage(Page):
    """
    C{/metrics}: the exposition text, rendered on the reactor (it is small).
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def get(self, request: Request) -> bytes:
        """
        Send the metrics.
        """
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        request.setHeader(b"Cache-Control", b"no-store")
        return self.metrics.render()


__all__ = ["BUCKETS", "LogEventMetrics", "Metrics", "MetricsPage", "readiness"]
