"""
The finger service: what a finger query answers, from the user store's memory, for any front end.

L{IFingerService} is the seam front ends adapt, as in the Twisted finger tutorial (its web, IRC and PB front
ends all adapt one C{IFingerService}): the finger protocol here, the SSH shell's C{finger} and C{who}, and the
web and SFTP front ends to come.  L{FingerService} is the one implementation: every method answers at once
from L{IUserStore.peek} and L{IUserStore.visible_accounts}, so nothing waits on a disk or a thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import islice

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, Interface, implementer

from sshfinger.finger import constants
from sshfinger.finger.names import NameIndex
from sshfinger.finger.query import Query
from sshfinger.finger.render import render_listing, render_record, sanitize
from sshfinger.model.account import Account
from sshfinger.store.interfaces import IUserStore


class IForwarder(Interface):
    """
    Forwards C{user@host} queries to the hosts it allows (L{sshfinger.finger.forward.Forwarder}).
    """

    def allows(host: str) -> bool:
        """
        Whether queries may be forwarded to C{host}.
        """

    def forward(query: Query) -> Deferred[list[str]]:
        """
        Ask C{query.hosts[0]} for C{query}'s user; fire with the answer's lines (sanitised and capped), never fail.
        """


class Answer(list[str]):
    """
    The lines answering one query, what kind of answer it was, and how long it holds (L{FingerService.is_current}).

    @ivar outcome: for the log: C{"user"}, C{"no-such-user"}, C{"list"}, C{"list-denied"} or C{"forward-denied"}.
    @ivar version: the store's L{IUserStore.version} when answering, if the answer depends on an account; else
        L{None}.
    @ivar expires: the time from which the answer may read differently even with the same accounts (its
        "N minutes ago" text changes); infinity if never, 0 for an answer never reused.
    """

    def __init__(
        self,
        lines: Iterable[str],
        outcome: str,
        version: int | None = None,
        expires: float = math.inf,
    ) -> None:
        """
        @param lines: the lines, without line endings.
        @param outcome: see L{Answer.outcome}; the other parameters likewise.
        """
        super().__init__(lines)
        self.outcome = outcome
        self.version = version
        self.expires = expires


class IFingerService(Interface):
    """
    Answers finger queries.  Front ends (the finger protocol, the shell, web, SFTP) adapt this, never the store.
    """

    allow_list = Attribute("Whether the user list is given (C{--no-list} makes it false).")

    def answer(query: Query) -> Answer | Deferred[list[str]]:
        """
        Answer a query from an anonymous peer (no roles, no editors' logins): a forwarding query is forwarded
        or refused, an empty query lists the users (C{/W} alone: their long entries), a user query describes the
        accounts it matches, verbosely with C{/W}.
        """

    def user(login: str, verbose: bool, for_public: bool = False) -> Answer:
        """
        Describe one account (C{for_public}: as an anonymous peer may see it).
        """

    def listing() -> Answer:
        """
        List the visible accounts (or refuse, if listing is off).
        """

    def is_current(answer: Answer, now: float) -> bool:
        """
        Return whether C{answer} still answers its query at time C{now}.
        """


@implementer(IFingerService)
class FingerService:
    """
    Answers finger queries from an L{IUserStore}'s in-memory view.

    @ivar store: the user store.
    @ivar allow_list: whether an empty query lists the users.
    @ivar names: matches queries against real names (L{NameIndex}), or L{None} (C{--exact}).
    @ivar forwarder: forwards C{user@host} queries to the hosts it allows, or L{None} (all refused).
    """

    def __init__(
        self,
        store: IUserStore,
        clock: IReactorTime,
        allow_list: bool = True,
        match_names: bool = True,
        forwarder: IForwarder | None = None,
    ) -> None:
        """
        @param store: the user store.
        @param clock: anything with C{seconds()}, for the age of updates (the reactor, or a L{task.Clock}).
        @param allow_list: whether an empty query lists the users; when false it gets L{constants.LIST_DENIED}.
        @param match_names: whether a query matches real names as well as logins.
        @param forwarder: see L{forwarder}.
        """
        self.store = store
        self.clock = clock
        self.allow_list = allow_list
        self.names = NameIndex(store) if match_names else None
        self.forwarder = forwarder

    def user(self, login: str, verbose: bool, for_public: bool = False) -> Answer:
        """
        Describe one account.

        A login that is unknown, hidden or not even a valid login gets the same single line
        C{"finger: LOGIN: no such user."}, so a peer cannot tell them apart.  The answer holds until the store
        changes (L{IUserStore.version}), or (for a record) until the next whole minute since the update, when its
        "N minutes ago" text (L{sshfinger.finger.render.age_text}) may change.

        @param for_public: leave out what only logged-in users see (the role, who made the last change).
        """
        version = self.store.version
        account = self.store.peek(login)  # an invalid login is in no store: no need to check it first
        if account is None or account.hidden:
            return Answer([f"finger: {sanitize(login)}: no such user."], "no-such-user", version)
        now = self.clock.seconds()
        expires = account.updated_at + 60 * ((now - account.updated_at) // 60 + 1)
        return Answer(render_record(account, verbose, now, for_public=for_public), "user", version, expires)

    def is_current(self, answer: Answer, now: float) -> bool:
        """
        Return whether C{answer} still answers its query at time C{now}: it has not expired, and if it depends on
        an account, no account has changed since (the store's L{IUserStore.version} is the same; a change to any
        account counts, which is rare next to queries and costs one answer rendered again).
        """
        return now < answer.expires and (answer.version is None or answer.version == self.store.version)

    def listing(self) -> Answer:
        """
        List the visible accounts (at most L{constants.LIST_MAX}), or refuse with L{constants.LIST_DENIED} when
        L{allow_list} is false.  The list holds until any account changes.
        """
        if not self.allow_list:
            return Answer([constants.LIST_DENIED], "list-denied")
        version = self.store.version
        accounts = list(islice(self.store.visible_accounts(), constants.LIST_MAX + 1))
        lines = list(render_listing(accounts[: constants.LIST_MAX]))
        if len(accounts) > constants.LIST_MAX:
            lines.append(f"... more accounts than the {constants.LIST_MAX} listed; ask for one by name")
        return Answer(lines, "list", version)

    def long_listing(self) -> Answer:
        """
        The long entry of each visible account (at most L{constants.LONG_LIST_MAX}), for C{/W} alone (what
        C{finger -l @host} sends), as an anonymous peer may see them; or L{constants.LIST_DENIED}.
        """
        if not self.allow_list:
            return Answer([constants.LIST_DENIED], "list-denied")
        version = self.store.version
        accounts = list(islice(self.store.visible_accounts(), constants.LONG_LIST_MAX + 1))
        more = f"... more accounts than the {constants.LONG_LIST_MAX} shown; ask for one by name"
        return self._records(accounts, constants.LONG_LIST_MAX, more, version, "long-list")

    def matching(self, word: str, verbose: bool) -> Answer:
        """
        Describe, as an anonymous peer may see them, the account whose login is C{word} and (unless L{names} is
        L{None}) every other visible account whose real name has the word C{word}, at most
        L{constants.MATCH_MAX}; or say C{"finger: WORD: no such user."}.
        """
        version = self.store.version
        account = self.store.peek(word)
        found = [account] if account is not None and not account.hidden else []
        if self.names is not None:
            for login in self.names.find(word):
                if len(found) > constants.MATCH_MAX:
                    break
                other = self.store.peek(login)
                if other is not None and not other.hidden and (account is None or other.login != account.login):
                    found.append(other)
        if not found:
            return Answer([f"finger: {sanitize(word)}: no such user."], "no-such-user", version)
        more = f"... more than {constants.MATCH_MAX} accounts match; ask for one by login"
        return self._records(found, constants.MATCH_MAX, more, version, "user", verbose)

    def _records(
        self, accounts: list[Account], limit: int, more: str, version: int, outcome: str, verbose: bool = True
    ) -> Answer:
        """
        The public records of the first C{limit} of C{accounts}, an empty line between two, and C{more} if there
        were more; the answer holds until the store changes or the first of their "N minutes ago" texts does.
        """
        now = self.clock.seconds()
        lines: list[str] = []
        expires = math.inf
        for account in accounts[:limit]:
            if lines:
                lines.append("")
            lines.extend(render_record(account, verbose, now, for_public=True))
            expires = min(expires, account.updated_at + 60 * ((now - account.updated_at) // 60 + 1))
        if len(accounts) > limit:
            lines.append(more)
        return Answer(lines, outcome, version, expires)

    def forward(self, query: Query) -> Answer | Deferred[list[str]]:
        """
        Forward a query for C{user@host} to C{host} if the L{forwarder} allows that host (one hop only);
        otherwise refuse with L{constants.FORWARD_DENIED}, as RFC 1288 section 3.2.1 recommends.
        """
        if self.forwarder is not None and len(query.hosts) == 1 and self.forwarder.allows(query.hosts[0]):
            return self.forwarder.forward(query)
        return Answer([constants.FORWARD_DENIED], "forward-denied")

    def answer(self, query: Query) -> Answer | Deferred[list[str]]:
        """
        See L{IFingerService.answer}.
        """
        if query.hosts:
            return self.forward(query)
        if query.user is None:
            return self.long_listing() if query.verbose else self.listing()
        return self.matching(query.user, query.verbose)


__all__ = ["Answer", "FingerService", "IFingerService", "IForwarder"]
