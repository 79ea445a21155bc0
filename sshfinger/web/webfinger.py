"""
C{/.well-known/webfinger?resource=acct:LOGIN@HOST[&rel=...]} (RFC 7033): how the fediverse resolves
C{@alice@host}.  Answers come from the same in-memory view and cache as the pages (L{sshfinger.web.resources}).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from twisted.web import http
from twisted.web.server import Request

from sshfinger.web import views
from sshfinger.web.resources import JRD, Page, Rendered, Site, plain, send

_HOST_HEADER = re.compile(rb"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?\Z|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?\Z")


def parse_resource(resource: str, hostname: str) -> str | None:
    """
    The login a WebFinger C{resource} names on this host, or L{None} for another host or an unknown form.

    @raise ValueError: for a malformed resource.
    """
    if resource.startswith("acct:"):
        user, at, host = resource[5:].rpartition("@")
        if not at or not user or not host:
            raise ValueError("acct: resource without user@host")
        if host.lower().rstrip(".") != hostname.lower():
            return None
        return unquote(user).lower()
    parts = urlsplit(resource)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("resource is neither acct: nor an http(s) URL")
    if parts.hostname.lower() != hostname.lower() or not parts.path.startswith("/~"):
        return None
    return unquote(parts.path[2:]).lower()


class WebFinger(Page):
    """
    C{/.well-known/webfinger?resource=acct:LOGIN@HOST[&rel=...]}: RFC 7033.
    """

    cors = True

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site

    def get(self, request: Request) -> bytes:
        """
        Answer the account's JRD, 400 for a missing or malformed resource, 404 for anything not shown here.
        The answer is kept per raw query and C{Host} (until the store changes), so a repeated query is one
        lookup.
        """
        args: dict[bytes, list[bytes]] = request.args or {}
        resources = args.get(b"resource", [])
        rels = args.get(b"rel", [])
        key = ("jrd", tuple(resources), tuple(rels), request.isSecure(), request.getHeader(b"host"))
        answer = self.site.cache.get(key, lambda: self._answer(request, resources, rels))
        if isinstance(answer, str):
            return plain(request, http.BAD_REQUEST, answer)
        return send(request, answer, JRD)

    def _answer(self, request: Request, resources: list[bytes], rels: list[bytes]) -> Rendered | str | None:
        """
        The JRD to send, a 400 message, or L{None} for the 404.
        """
        if len(resources) != 1 or not resources[0]:
            return "exactly one resource parameter is required"
        try:
            login = parse_resource(resources[0].decode("utf-8"), self.site.hostname)
            wanted = tuple(sorted({rel.decode("utf-8") for rel in rels}))
        except (UnicodeDecodeError, ValueError) as e:
            return f"malformed resource or rel: {e}"[:200]
        account = None if login is None else self.site.visible(login)
        if account is None:
            return None
        base = base_url(request, self.site.hostname)
        return Rendered(views.jrd(account, self.site.hostname, base, wanted), account.updated_at)


def base_url(request: Request, hostname: str) -> str:
    """
    The scheme and authority the client used (its C{Host} header if well-formed, else C{hostname}).
    """
    scheme = "https" if request.isSecure() else "http"
    host = request.getHeader(b"host")
    if host is None or not _HOST_HEADER.match(host):
        return f"{scheme}://{hostname}"
    return f"{scheme}://{host.decode('ascii')}"


__all__ = ["WebFinger", "base_url", "parse_resource"]
