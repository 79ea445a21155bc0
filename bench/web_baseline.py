"""
The baseline of the web bench: a minimal twisted.web resource answering a fixed JSON body of the size of
sshfinger's C{/api/users/alice}, under a plain C{Site} (no access log, like sshfinger's web face).

    python web_baseline.py PORT [h1]
"""

from __future__ import annotations

import sys

from twisted.internet import reactor
from twisted.web import http, resource, server

BODY = (
    b'{"login":"alice","name":"Alice Liddell","status":"Down the rabbit hole","plan":"Follow the White Rabbit.'
    b'\\nAttend the Mad Tea-Party at six.","office":"Wonderland 1865","phone":"","fediverse":"",'
    b'"updated":"2026-12-05T12:00:00Z"}'
)


class Fixed(resource.Resource):
    """
    Every path answers the same JSON.
    """

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        """
        The body, with its content type.
        """
        request.setHeader(b"Content-Type", b"application/json")
        return BODY


def main() -> None:
    """
    Listen on 127.0.0.1:PORT and run; with a second argument C{h1}, the site speaks plain HTTP/1.1 through
    L{http.HTTPChannel} (as sshfinger's web face does) instead of twisted.web's default protocol switcher.
    """
    site = server.Site(Fixed())
    if sys.argv[2:] == ["h1"]:
        site.protocol = http.HTTPChannel  # type: ignore[assignment]
    reactor.listenTCP(int(sys.argv[1]), site, backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
