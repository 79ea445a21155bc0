"""
C{/events}: a Server-Sent Events stream of changes to visible accounts.

One L{EventHub} follows the store (L{IUserStore.subscribe}) and turns the accounts each commit changed into at
most one message per account, encoded once and written to every open stream:

    - C{event: user}, data the account's public fields (L{sshfinger.web.views.public_fields}), when a visible
      account was created or changed;
    - C{event: gone}, data C{{"login": ...}}, when a visible account was hidden or deleted.

Nothing is ever sent about an account that was hidden before the change: the hub keeps the set of hidden logins
(read when the first stream opens, then kept up to date from the changes).  Streams are bounded
(L{MAX_SUBSCRIBERS} in all, L{MAX_SUBSCRIBERS_PER_ADDRESS} per address), get a heartbeat comment every
L{HEARTBEAT} seconds, and a reader too slow to take what is written (the transport asks its producer to pause)
is dropped at the next message instead of being buffered without limit.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from sshfinger.model.account import Change
from sshfinger.store.interfaces import IUserStore
from sshfinger.web.limits import (
    HEARTBEAT,
    MAX_SUBSCRIBERS,
    MAX_SUBSCRIBERS_PER_ADDRESS,
    RECONNECT_MS,
    address_key,
)
from sshfinger.web.views import public_fields, to_json


def sse_message(event: str, data: bytes) -> bytes:
    """
    Frame one Server-Sent Event (C{data} is one line of JSON: it never contains a newline).
    """
    return b"event: " + event.encode("ascii") + b"\ndata: " + data + b"\n\n"


@implementer(IPushProducer)
class Subscriber:
    """
    One open event stream: a request kept open, and whether its transport asked us to pause.
    """

    def __init__(self, request: Request, key: str) -> None:
        """
        @param request: the open request.
        @param key: the client's address key, for the per-address count.
        """
        self.request = request
        self.key = key
        self.paused = False

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: the next message drops this reader.
        """
        self.paused = True

    def resumeProducing(self) -> None:
        """
        The transport drained its buffer.
        """
        self.paused = False

    def stopProducing(self) -> None:
        """
        The connection is going away.
        """
        self.paused = True


class EventHub:
    """
    Follows the store and fans each change out to the open streams.

    @ivar subscribers: the open streams.
    @ivar on_count: called with the number of open streams whenever it changes (metrics).
    @ivar dropped: how many slow readers were dropped.
    """

    log = Logger()

    def __init__(self, store: IUserStore, clock: IReactorTime) -> None:
        """
        @param store: the store to follow (its in-memory view).
        @param clock: schedules heartbeats.
        """
        self.store = store
        self.subscribers: list[Subscriber] = []
        self.per_address: dict[str, int] = {}
        self.dropped = 0
        self.on_count: Callable[[int], None] = lambda count: None
        self._hidden: set[str] | None = None  # read at the first stream: a large store costs nothing until then
        self._unsubscribe: Callable[[], None] | None = None
        self._clock = clock
        self._pending: dict[str, bool] = {}  # login: created by these changes
        self._flush_call: IDelayedCall | None = None
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = clock

    def start(self) -> None:
        """
        Subscribe to the store and start the heartbeats.
        """
        self._unsubscribe = self.store.subscribe(self.changed)
        self._heartbeat.start(HEARTBEAT, now=False)

    def stop(self) -> None:
        """
        Unsubscribe, stop the heartbeats and close every stream.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._heartbeat.running:
            self._heartbeat.stop()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        for subscriber in list(self.subscribers):
            self._close(subscriber)

    def _hidden_logins(self) -> set[str]:
        if self._hidden is None:
            self._hidden = set()
            for login in self.store.logins():
                account = self.store.peek(login)
                if account is not None and account.hidden:
                    self._hidden.add(login)
        return self._hidden

    def message_for(self, login: str, created: bool = False) -> bytes | None:
        """
        The event to send now that C{login} changed, or L{None} (an account not shown before, and hidden or
        deleted now).  Updates the set of hidden logins.

        @param created: whether the account did not exist before these changes.
        """
        hidden = self._hidden_logins()
        was_shown = not created and login not in hidden
        account = self.store.peek(login)
        if account is None or account.hidden:
            if account is None:
                hidden.discard(login)
            else:
                hidden.add(login)
            return sse_message("gone", to_json({"login": login})) if was_shown else None
        hidden.discard(login)
        return sse_message("user", to_json(public_fields(account)))

    def changed(self, change: Change) -> None:
        """
        The store's subscriber: note the account changed; the changes of one commit (a create is several) are
        sent as one event, on the next turn of the reactor.
        """
        if change.action == "reload":  # the view was reloaded whole: which logins are hidden may have changed
            self._hidden = None
            return
        if change.action not in ("create", "update", "delete"):
            return
        if change.action == "create":
            self._pending[change.login] = True
        else:
            self._pending.setdefault(change.login, False)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Send one event per account changed since the last flush.
        """
        self._flush_call = None
        pending, self._pending = self._pending, {}
        if self._hidden is None:  # no stream was ever opened: nothing to keep up to date yet
            return
        for login, created in pending.items():
            message = self.message_for(login, created)
            if message is not None:
                self.broadcast(message)

    def broadcast(self, data: bytes) -> None:
        """
        Write C{data} to every stream; drop the readers that stopped reading.
        """
        for subscriber in list(self.subscribers):
            if subscriber.paused:
                self.dropped += 1
                self._close(subscriber)
            else:
                subscriber.request.write(data)

    def heartbeat(self) -> None:
        """
        Send a comment line to every stream, so proxies and dead peers are noticed.
        """
        self.broadcast(b": ping\n\n")

    def add(self, request: Request) -> bool:
        """
        Open a stream on C{request}, or return L{False} if a cap is reached.
        """
        key = address_key(request.getClientAddress())
        if len(self.subscribers) >= MAX_SUBSCRIBERS or self.per_address.get(key, 0) >= MAX_SUBSCRIBERS_PER_ADDRESS:
            return False
        self._hidden_logins()
        subscriber = Subscriber(request, key)
        self.subscribers.append(subscriber)
        self.per_address[key] = self.per_address.get(key, 0) + 1
        request.registerProducer(subscriber, True)
        request.notifyFinish().addBoth(lambda _: self._forget(subscriber))
        self.on_count(len(self.subscribers))
        return True

    def _forget(self, subscriber: Subscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.remove(subscriber)
        left = self.per_address.get(subscriber.key, 1) - 1
        if left > 0:
            self.per_address[subscriber.key] = left
        else:
            self.per_address.pop(subscriber.key, None)
        self.on_count(len(self.subscribers))

    def _close(self, subscriber: Subscriber) -> None:
        self._forget(subscriber)
        transport = subscriber.request.channel.transport if subscriber.request.channel else None
        if transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]


class EventsResource(Resource):
    """
    C{/events}: opens a stream (C{text/event-stream}), or answers 503 when the caps are reached.
    """

    isLeaf = True

    def __init__(self, hub: EventHub) -> None:
        """
        @param hub: the hub streams are added to.
        """
        super().__init__()
        self.hub = hub

    def render_GET(self, request: Request) -> int | bytes:
        """
        Start the stream with a C{retry:} line; the hub writes the rest.
        """
        if not self.hub.add(request):
            request.setResponseCode(http.SERVICE_UNAVAILABLE)
            request.setHeader(b"Retry-After", b"10")
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"too many event streams\n"
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.channel.setTimeout(None)  # the heartbeat keeps it alive; a dead peer fails a write
        request.write(b"retry: " + str(RECONNECT_MS).encode() + b"\n\n")
        return NOT_DONE_YET

    def render_HEAD(self, request: Request) -> bytes:
        """
        A HEAD request gets the headers of a stream, and no stream.
        """
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        return b""


__all__ = ["EventHub", "EventsResource", "Subscriber", "sse_message"]
