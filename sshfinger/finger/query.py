"""
RFC 1288's query grammar: L{parse_query} turns one query line into a L{Query}, or raises L{QueryError}.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sshfinger.finger import constants

#: A query that is nothing but a user name.
_PLAIN_USER = re.compile(r"[^\s@/][^\s@]*")


class QueryError(ValueError):
    """
    A query does not follow RFC 1288's grammar.  The message is one line, safe to show to the peer.
    """


class Query(NamedTuple):
    """
    One parsed finger query.

    @ivar verbose: the query started with C{/W}.
    @ivar user: the user asked about, or L{None} for the user list.
    @ivar hosts: the hosts of a forwarding query (C{user@a@b} gives C{("a", "b")}), empty otherwise.
    """

    verbose: bool = False
    user: str | None = None
    hosts: tuple[str, ...] = ()

    @property
    def is_listing(self) -> bool:
        """
        Whether this query asks for the list of users (the empty query, or C{/W} alone), not forwarded.
        """
        return self.user is None and not self.hosts


def parse_query(line: str) -> Query:
    """
    Parse one query line (without its line ending) by RFC 1288's grammar::

        {Q1} ::= [{W}|{W}{S}{U}]{C}
        {Q2} ::= [{W}{S}][{U}]{H}{C}
        {H}  ::= @hostname | @hostname{H}
        {W}  ::= /W            (any case)
        {S}  ::= <SP> | <SP>{S}

    Leading and trailing whitespace is ignored; any whitespace may separate C{/W} from what follows.  A user is
    any run of characters without whitespace or C{"@"} that does not start with C{"/"}; whether it names an
    account is for the service to say.

    @raise QueryError: for anything else (C{"/X"}, C{"/Walice"}, C{"alice bob"}, C{"alice@"}).
    """
    if _PLAIN_USER.fullmatch(line):  # the common case, answered without the general parse below
        return Query(False, line)
    text = line.strip()
    verbose = False
    if text[:2] in ("/W", "/w"):
        rest = text[2:]
        if rest and not rest[0].isspace():
            raise QueryError("/W must be followed by a space")
        verbose = True
        text = rest.strip()
    if not text:
        return Query(verbose)
    if len(text.split(None, 1)) > 1:
        raise QueryError("expected [/W] [user][@host...]")
    if text.startswith("/"):
        raise QueryError("unknown switch: only /W is supported")
    user, *hosts = text.split("@")
    if any(not host for host in hosts):
        raise QueryError("empty host name")
    return Query(verbose, user or None, tuple(hosts))


def escape_query(text: str) -> str:
    """
    Return a query as log text: control and non-ASCII characters escaped by L{ascii}, at most
    L{constants.LOG_QUERY_CHARS} characters.
    """
    escaped = ascii(text)
    if len(escaped) > constants.LOG_QUERY_CHARS:
        escaped = escaped[: constants.LOG_QUERY_CHARS - 3] + "..."
    return escaped


__all__ = ["Query", "QueryError", "escape_query", "parse_query"]
