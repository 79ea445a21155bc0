"""
The web face as a service: L{make_web_service} builds it from the C{--web}, C{--metrics} and C{--hostname}
options, over the store's in-memory view.  C{tap.py} calls it in one line.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import globalLogPublisher

from sshfinger.store.interfaces import IUserStore
from sshfinger.web.events import EventHub, EventsResource
from sshfinger.web.limits import WebSite
from sshfinger.web.metrics import Metrics, MetricsPage, readiness
from sshfinger.web.resources import Folder, Health, Ready, Root, Site
from sshfinger.web.webfinger import WebFinger


class WebFaceService(MultiService):
    """
    The web face: the event hub and the metrics' sources are started and stopped with it; its children are the
    listening endpoints.

    @ivar hub: the Server-Sent Events hub.
    @ivar metrics: the metrics.
    @ivar observe_logs: whether log events feed the metrics (only with C{--metrics}).
    """

    def __init__(self, store: IUserStore, hub: EventHub, metrics: Metrics, observe_logs: bool) -> None:
        super().__init__()
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.observe_logs = observe_logs
        self._observer = metrics.log_observer
        self._unsubscribe: Callable[[], None] | None = None

    def startService(self) -> None:
        """
        Start following the store and the logs, then listen.
        """
        self.hub.start()
        if self.observe_logs:
            globalLogPublisher.addObserver(self._observer)
            self._unsubscribe = self.store.subscribe(self.metrics.change_applied)
            self.metrics.start()
        super().startService()

    def stopService(self) -> Any:
        """
        Stop listening, close the streams and stop following.
        """
        d = super().stopService()
        self.hub.stop()
        if self.observe_logs:
            globalLogPublisher.removeObserver(self._observer)
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.metrics.stop()
        return d


def rate_option(value: str) -> float:
    """
    Coerce C{--web-rate}: a number of requests per second, C{0} for no limit.

    @raise ValueError: with one line, for anything else.
    """
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"--web-rate takes a number, not {value!r}") from None
    if not rate >= 0 or rate == float("inf"):
        raise ValueError("--web-rate must be 0 (no limit) or a positive number")
    return rate


rate_option.coerceDoc = "0 for no limit."  # type: ignore[attr-defined]


def web_root(store: IUserStore, hostname: str, reactor: IReactorTime, hub: EventHub, metrics: Metrics) -> Root:
    """
    The resource tree of the web face.
    """
    site = Site(store, hostname, reactor.seconds)
    root = Root(site)
    root.well_known.putChild(b"webfinger", WebFinger(site))
    root.putChild(b"events", EventsResource(hub))
    root.putChild(b"readyz", Ready(readiness(store, metrics, reactor)))
    return root


def metrics_root(store: IUserStore, reactor: IReactorTime, metrics: Metrics) -> Folder:
    """
    The resource tree of the metrics endpoint: C{/metrics}, C{/healthz}, C{/readyz}.
    """
    root = Folder()
    root.putChild(b"metrics", MetricsPage(metrics))
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Ready(readiness(store, metrics, reactor)))
    return root


def make_web_service(
    settings: Mapping[str, Any], store: IUserStore, reactor: Any, query_log: Any = None
) -> WebFaceService | None:
    """
    Build the web face from the options C{web}, C{metrics}, C{hostname} and C{web-rate}; L{None} when neither
    endpoint is set.

    @param query_log: the finger server's query log (the C{--access-log} file or the batched main-log events):
        finger queries reach the metrics through its C{observers}.
    """
    web, metrics_endpoint = settings.get("web"), settings.get("metrics")
    if not web and not metrics_endpoint:
        return None
    hostname = settings.get("hostname") or socket.gethostname()
    metrics = Metrics(reactor)
    hub = EventHub(store, reactor)
    hub.on_count = metrics.sse_subscribers.set
    service = WebFaceService(store, hub, metrics, observe_logs=bool(metrics_endpoint))
    service.setName("web-face")
    if metrics_endpoint and query_log is not None:
        query_log.observers.append(metrics.query_observer)
    if web:
        site = WebSite(web_root(store, hostname, reactor, hub, metrics), reactor, rate=settings.get("web-rate"))
        site.on_response = metrics.response
        port = strports.service(web, site, reactor)
        port.setName("web")
        port.setServiceParent(service)
    if metrics_endpoint:
        port = strports.service(metrics_endpoint, WebSite(metrics_root(store, reactor, metrics), reactor), reactor)
        port.setName("metrics")
        port.setServiceParent(service)
    return service


__all__ = ["WebFaceService", "make_web_service", "metrics_root", "rate_option", "web_root"]
