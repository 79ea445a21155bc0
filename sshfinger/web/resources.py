"""
The web face's resources: C{/}, C{/~LOGIN}, C{/api/users[/LOGIN]}, C{/static/...}, C{/healthz} and C{/readyz}
(WebFinger is in L{sshfinger.web.webfinger}, C{/events} in L{sshfinger.web.events}).

Everything is read from the store's in-memory view (L{IUserStore.peek}, L{IUserStore.visible_accounts}); the
bodies are rendered once per L{IUserStore.version} and kept (L{VersionCache}), so a busy page costs a dict
lookup.  Hidden and unknown accounts get the same 404.  Only GET and HEAD (and OPTIONS, for CORS) are served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from itertools import islice
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from sshfinger.model.account import Account, is_valid_login
from sshfinger.store.interfaces import IUserStore
from sshfinger.web import views
from sshfinger.web.assets import LIVE_JS, STYLE_CSS
from sshfinger.web.limits import LIST_LIMIT, LimitedRequest

T = TypeVar("T")

#: Entries the rendered-body cache holds before it starts over.
CACHE_ENTRIES = 10_000

HTML = b"text/html; charset=utf-8"
JSON = b"application/json"
JRD = b"application/jrd+json"
TEXT = b"text/plain; charset=utf-8"

ALLOWED = (b"GET", b"HEAD", b"OPTIONS")
CORS_LINE = b"Access-Control-Allow-Origin: *\r\n"



class Rendered:
    """
    A body ready to send, with its ETag and the time it last changed.
    """

    __slots__ = ("body", "etag", "modified", "last_modified", "_head", "_head_type")

    def __init__(self, body: bytes, modified: float) -> None:
        """
        @param body: the bytes.
        @param modified: POSIX time of the newest change it shows (0 if unknown).
        """
        self.body = body
        self.etag = b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
        self.modified = modified
        self.last_modified = http.datetimeToString(int(modified)) if modified else None
        self._head = b""
        self._head_type = b""

    def head(self, content_type: bytes) -> bytes:
        """
        The C{Content-Type}, C{ETag} and C{Last-Modified} header lines, encoded once.
        """
        if content_type != self._head_type:
            lines = [b"Content-Type: " + content_type, b"ETag: " + self.etag]
            if self.last_modified is not None:
                lines.append(b"Last-Modified: " + self.last_modified)
            self._head, self._head_type = b"".join(line + b"\r\n" for line in lines), content_type
        return self._head


class VersionCache:
    """
    Rendered bodies (or whatever a page derives from the store), kept while the store's L{IUserStore.version}
    stays the same; it starts over past L{CACHE_ENTRIES} entries, so hostile keys cannot grow it without bound.
    """

    def __init__(self, store: IUserStore) -> None:
        """
        @param store: the store whose version invalidates the cache.
        """
        self.store = store
        self._version = -1
        self._entries: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """
        Return the cached value for C{key}, or make, keep and return it.
        """
        version = self.store.version
        if version != self._version or len(self._entries) >= CACHE_ENTRIES:
            self._entries = {}
            self._version = version
        try:
            return self._entries[key]
        except KeyError:
            value = self._entries[key] = make()
            return value


def is_fresh(request: Request, rendered: Rendered) -> bool:
    """
    Tell whether the client's copy is current (then set 304).  If-None-Match wins over If-Modified-Since
    (RFC 9110 section 13.2.2).
    """
    match = request.getHeader(b"if-none-match")
    if match is not None:
        tags = [tag.strip().removeprefix(b"W/") for tag in match.split(b",")]
        fresh = b"*" in tags or rendered.etag in tags
    else:
        since = request.getHeader(b"if-modified-since")
        fresh = False
        if since is not None and rendered.modified:
            try:
                fresh = int(rendered.modified) <= http.stringToDatetime(since)
            except (ValueError, IndexError, KeyError):
                fresh = False
    if fresh:
        request.setResponseCode(http.NOT_MODIFIED)
    return fresh


class Page(Resource):
    """
    A leaf resource serving GET and HEAD; OPTIONS gets the allowed methods (and CORS headers where C{cors}),
    other methods 405, and a path that goes on below it 404.
    """

    isLeaf = True
    cors = False

    def render(self, request: Request) -> Any:
        """
        Check the method and path, then call L{get}.
        """
        if self.cors:
            if isinstance(request, LimitedRequest):
                request.raw_head = CORS_LINE
            else:
                request.setHeader(b"Access-Control-Allow-Origin", b"*")
        if request.method not in ALLOWED:
            request.setHeader(b"Allow", b", ".join(ALLOWED))
            return plain(request, http.NOT_ALLOWED, "method not allowed")
        if any(request.postpath or ()):
            return not_found(request)
        if request.method == b"OPTIONS":
            request.setResponseCode(http.NO_CONTENT)
            request.setHeader(b"Allow", b", ".join(ALLOWED))
            if self.cors:
                request.setHeader(b"Access-Control-Allow-Methods", b"GET, HEAD, OPTIONS")
                request.setHeader(b"Access-Control-Max-Age", b"86400")
            return b""
        return self.get(request)

    def get(self, request: Request) -> Any:
        """
        Answer a GET or HEAD (twisted.web drops the body of a HEAD).
        """
        raise NotImplementedError


def plain(request: Request, code: int, message: str) -> bytes:
    """
    Answer C{code} with a one-line plain text body.
    """
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", TEXT)
    return message.encode() + b"\n"


def not_found(request: Request) -> bytes:
    """
    The one 404 for unknown paths, unknown accounts and hidden accounts alike.
    """
    request.setResponseCode(http.NOT_FOUND)
    request.setHeader(b"Content-Type", HTML)
    return views.error_page(404, "No such page.")


def send(request: Request, rendered: Rendered | None, content_type: bytes) -> bytes:
    """
    Answer with C{rendered}, its C{Content-Type}, C{ETag} and C{Last-Modified} (304 when the client's copy is
    current), or 404 when it is L{None}.
    """
    if rendered is None:
        return not_found(request)
    if isinstance(request, LimitedRequest):
        request.raw_head += rendered.head(content_type)
        request.defaultContentType = None
    else:
        request.setHeader(b"Content-Type", content_type)
        request.setHeader(b"ETag", rendered.etag)
        if rendered.last_modified is not None:
            request.setHeader(b"Last-Modified", rendered.last_modified)
    if is_fresh(request, rendered):
        return b""
    return rendered.body


def _modified(accounts: list[Account]) -> float:
    return max((a.updated_at for a in accounts), default=0.0)


class Site:
    """
    What every page needs: the store, the rendered-body cache, the host name and the clock.
    """

    def __init__(self, store: IUserStore, hostname: str, clock: Callable[[], float]) -> None:
        """
        @param store: the accounts.
        @param hostname: the name WebFinger answers for and the pages show.
        @param clock: returns the current POSIX time (for "5 minutes ago").
        """
        self.store = store
        self.hostname = hostname
        self.clock = clock
        self.cache = VersionCache(store)

    def listed(self) -> tuple[list[Account], bool]:
        """
        The first L{LIST_LIMIT} visible accounts in login order, and whether there are more.
        """
        accounts = list(islice(self.store.visible_accounts(), LIST_LIMIT + 1))
        return accounts[:LIST_LIMIT], len(accounts) > LIST_LIMIT

    def visible(self, login: str) -> Account | None:
        """
        The visible account C{login}, or L{None} (unknown, hidden or not a login at all).
        """
        if not is_valid_login(login):
            return None
        account = self.store.peek(login)
        return None if account is None or account.hidden else account


class ListingPage(Page):
    """
    C{/}: the who list.  Rendered once per version (the ages in it are refreshed by the page's script).
    """

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site

    def _make(self) -> Rendered:
        accounts, more = self.site.listed()
        page = views.listing_page(accounts, self.site.hostname, self.site.clock(), more)
        return Rendered(page, _modified(accounts))

    def get(self, request: Request) -> bytes:
        """
        Send the list.
        """
        request.setHeader(b"Cache-Control", b"no-cache")
        return send(request, self.site.cache.get("listing", self._make), HTML)


class UserPage(Page):
    """
    C{/~LOGIN}: one account's page.
    """

    def __init__(self, site: Site, login: str) -> None:
        super().__init__()
        self.site = site
        self.login = login

    def _make(self) -> Rendered | None:
        account = self.site.visible(self.login)
        if account is None:
            return None
        return Rendered(views.user_page(account, self.site.hostname, self.site.clock()), account.updated_at)

    def get(self, request: Request) -> bytes:
        """
        Send the page, or the 404.
        """
        request.setHeader(b"Cache-Control", b"no-cache")
        return send(request, self.site.cache.get(("page", self.login), self._make), HTML)


class UsersApi(Page):
    """
    C{/api/users}: every visible account's public fields.
    """

    cors = True

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site

    def _make(self) -> Rendered:
        accounts, more = self.site.listed()
        return Rendered(views.users_json(accounts, more), _modified(accounts))

    def get(self, request: Request) -> bytes:
        """
        Send the list.
        """
        return send(request, self.site.cache.get("users", self._make), JSON)


class UserApi(Page):
    """
    C{/api/users/LOGIN}: one visible account's public fields.
    """

    cors = True

    def __init__(self, site: Site, login: str) -> None:
        super().__init__()
        self.site = site
        self.login = login

    def _make(self) -> Rendered | None:
        account = self.site.visible(self.login)
        return None if account is None else Rendered(views.user_json(account), account.updated_at)

    def get(self, request: Request) -> bytes:
        """
        Send the account, or the 404.
        """
        return send(request, self.site.cache.get(("user", self.login), self._make), JSON)


class Asset(Page):
    """
    A static file kept in memory.
    """

    def __init__(self, body: bytes, content_type: bytes) -> None:
        super().__init__()
        self.rendered = Rendered(body, 0)
        self.content_type = content_type

    def get(self, request: Request) -> bytes:
        """
        Send the file (revalidated with its ETag).
        """
        request.setHeader(b"Cache-Control", b"public, max-age=300")
        return send(request, self.rendered, self.content_type)


class Health(Page):
    """
    C{/healthz}: the process is up.
    """

    def get(self, request: Request) -> bytes:
        """
        Always C{200 ok}.
        """
        request.setHeader(b"Cache-Control", b"no-store")
        return plain(request, http.OK, "ok")


class Ready(Page):
    """
    C{/readyz}: 200 when C{check} says ready, else 503 with the reason.
    """

    def __init__(self, check: Callable[[], Deferred[tuple[bool, str]]]) -> None:
        super().__init__()
        self.check = check

    def get(self, request: Request) -> int:
        """
        Run the check and answer when it fires.
        """
        request.setHeader(b"Cache-Control", b"no-store")
        gone: list[bool] = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))

        def answer(result: tuple[bool, str]) -> None:
            ready, reason = result
            body = plain(request, http.OK if ready else http.SERVICE_UNAVAILABLE, reason)
            if not gone:
                request.write(body)
                request.finish()

        self.check().addCallback(answer)
        return NOT_DONE_YET


class Folder(Resource):
    """
    A resource with fixed children and the one 404 for everything else (no listings).
    """

    def getChild(self, path: bytes, request: Request) -> IResource:
        """
        Every unknown child is the 404 page.
        """
        return NotFound()

    def render(self, request: Request) -> bytes:
        """
        A folder itself is not a page.
        """
        return not_found(request)


class NotFound(Page):
    """
    The 404 as a resource.
    """

    def get(self, request: Request) -> bytes:
        """
        Always 404.
        """
        return not_found(request)


class Root(Folder):
    """
    The web face's root: C{/} and C{/~LOGIN} here, the rest as children.
    """

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.listing = ListingPage(site)
        api = Folder()
        api.putChild(b"users", UsersFolder(site))
        self.putChild(b"api", api)
        self.well_known = Folder()  # WebFinger (sshfinger.web.webfinger) is put here by the service
        self.putChild(b".well-known", self.well_known)
        static = Folder()
        static.putChild(b"style.css", Asset(STYLE_CSS, b"text/css; charset=utf-8"))
        static.putChild(b"live.js", Asset(LIVE_JS, b"text/javascript; charset=utf-8"))
        self.putChild(b"static", static)
        self.putChild(b"healthz", Health())

    def getChild(self, path: bytes, request: Request) -> IResource:
        """
        C{b""} is the list, C{~LOGIN} a user's page.
        """
        if path == b"":
            return self.listing
        if path.startswith(b"~"):
            return UserPage(self.site, path[1:].decode("utf-8", "replace"))
        return NotFound()


class UsersFolder(UsersApi):
    """
    C{/api/users} (the list) with the children C{/api/users/LOGIN}.
    """

    isLeaf = False

    def getChild(self, path: bytes, request: Request) -> IResource:
        """
        C{LOGIN} is one account; the empty segment of C{/api/users/} the list.
        """
        if path == b"":
            return UsersApi(self.site)
        return UserApi(self.site, path.decode("utf-8", "replace"))


__all__ = [
    "Asset",
    "Folder",
    "Health",
    "ListingPage",
    "NotFound",
    "Page",
    "Ready",
    "Rendered",
    "Root",
    "Site",
    "UserApi",
    "UserPage",
    "UsersApi",
    "VersionCache",
    "is_fresh",
    "not_found",
    "plain",
    "send",
]
