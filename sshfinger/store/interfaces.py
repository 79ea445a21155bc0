"""
The interfaces of the user store: L{IUserStore} (what the services use), L{IStoreBackend} (the durable layer under
the cached view), L{IChangeFeed} (the ordered stream of committed changes a view follows) and
L{IStoreMaintenance} (what the offline tool needs: backup, restore, integrity, size).

Every method of L{IUserStore} that may touch a disk or a network returns a L{Deferred}.  Two synchronous methods,
L{IUserStore.peek} and L{IUserStore.logins}, read the in-memory view only: finger lookups and Tab completion use
them and never wait.

A backend object serves one follower.  It may provide L{IChangeFeed} and L{IStoreMaintenance} itself or through
its C{feed} and C{maintenance} attributes: L{feed_of} and L{maintenance_of} find them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from sshfinger.model.account import Account, Actor, Change

Subscriber = Callable[[Change], None]


class IUserStore(Interface):
    """
    The one store of accounts shared by the finger service, the SSH service and the command-line tool.

    Writes are acknowledged (their L{Deferred} fires) only once they are durable; the in-memory view is updated
    before that, and subscribers are told of each L{Change} in commit order.
    """

    description = Attribute("A short human description, such as C{'sqlite:/var/lib/sshfinger.db'}.")
    version = Attribute(
        "An C{int} that grows whenever any account in memory changes: while it stays the same, so does everything "
        "C{peek}, C{logins} and C{visible_accounts} return, which lets a cache of what is derived from them (a "
        "rendered finger answer) be checked with one comparison."
    )

    def peek(login: str) -> Account | None:
        """
        Return the account named C{login} (any case) from memory, or L{None}.  Never blocks.
        """

    def logins() -> list[str]:
        """
        Return every login in memory, sorted, hidden ones included.  Never blocks.
        """

    def visible_accounts() -> Iterator[Account]:
        """
        Iterate over the accounts finger may show, in login order, lazily, from memory.  Never blocks.
        """

    def get(login: str) -> Deferred[Account]:
        """
        Fetch one account.

        @return: a L{Deferred} firing with the L{Account}, or failing with L{sshfinger.model.errors.NoSuchAccount}.
        """

    def list(include_hidden: bool = False) -> Deferred[builtins.list[Account]]:
        """
        Fetch every account sorted by login, hidden ones only when asked.
        """

    def create(login: str, actor: Actor, fields: Mapping[str, object] = {}) -> Deferred[Account]:
        """
        Create an account with optional initial C{fields}.

        @return: a L{Deferred} firing with the new L{Account}, or failing with
            L{sshfinger.model.errors.AccountExists}, L{sshfinger.model.errors.InvalidValue} or
            L{sshfinger.model.errors.StoreUnavailable}.
        """

    def update(login: str, changes: Mapping[str, object], actor: Actor) -> Deferred[Account]:
        """
        Change one or more fields (names as in L{sshfinger.model.account.EDITABLE_FIELDS}, aliases accepted).

        @return: a L{Deferred} firing with the updated L{Account}, or failing with
            L{sshfinger.model.errors.NoSuchAccount}, L{sshfinger.model.errors.InvalidValue} or
            L{sshfinger.model.errors.StoreUnavailable}.
        """

    def delete(login: str, actor: Actor) -> Deferred[None]:
        """
        Delete an account, its keys and its history.
        """

    def history(login: str) -> Deferred[builtins.list[str]]:
        """
        Fetch the shell history of C{login}, oldest first.
        """

    def add_history(login: str, line: str) -> Deferred[None]:
        """
        Append one line to the shell history of C{login}; the oldest lines beyond a bound are dropped.
        """

    def recent_changes(
        limit: int = 20, login: str | None = None, everything: bool = False
    ) -> Deferred[builtins.list[Change]]:
        """
        Fetch the newest C{limit} recorded changes, newest last, optionally of one account only.

        Asked for one C{login}, only the changes of that login's latest account are returned (from its last
        C{create} on), so a re-created login inherits nothing; C{everything=True} (admins) returns every retained
        change of that name.
        """

    def record(change: Change) -> Deferred[None]:
        """
        Durably add an event to the audit trail that is not a change of an account (a manhole input line:
        C{action="input"}); subscribers are told once it is stored.
        """

    def subscribe(callback: Subscriber) -> Callable[[], None]:
        """
        Call C{callback} with every L{Change} once it is committed, including changes made by other processes.
        When the view had to be reloaded whole (a follower behind the retained changes), C{callback} gets one
        C{Change} with C{action="reload"} and no login instead of the changes it missed: anything derived from
        the view must be derived again.

        @return: a callable that unsubscribes.
        """


class IStoreBackend(Interface):
    """
    The synchronous persistence layer under a L{sshfinger.store.cached.CachedStore}.

    Methods may block (disk I/O): the cached store calls them through its executor, a single writer thread in
    production, so they are never run on the reactor thread and never run concurrently.  Values passed in are
    already normalized (see L{sshfinger.model.account.normalize_changes}); C{at} is the commit time stamp.
    """

    description = Attribute("A short human description, such as C{'sqlite:/var/lib/sshfinger.db'}.")

    def open() -> Iterable[Account] | MutableMapping[str, Account]:
        """
        Open (creating or migrating if needed) and return every stored account: as an iterable of L{Account}s, or
        as a dict of them by login (which the cached view then keeps and updates; a backend may return a dict
        subclass whose C{get} and C{__getitem__} build each L{Account} when first read, which is how the SQLite
        backend loads a million accounts quickly).

        Called again (on the store's thread) to reload everything after a L{FeedGap}: it must then re-read the
        whole store.
        """

    def close() -> None:
        """
        Release the backend's resources.  Safe to call twice.
        """

    def create(
        login: str, values: Mapping[str, object], actor: Actor, at: float
    ) -> tuple[Account, builtins.list[Change]]:
        """
        Durably create an account.  Raises L{sshfinger.model.errors.AccountExists} or
        L{sshfinger.model.errors.StoreUnavailable}.
        """

    def update(
        login: str, values: Mapping[str, object], actor: Actor, at: float
    ) -> tuple[Account, builtins.list[Change]]:
        """
        Durably change fields of an account.  Raises L{sshfinger.model.errors.NoSuchAccount} or
        L{sshfinger.model.errors.StoreUnavailable}.
        """

    def delete(login: str, actor: Actor, at: float) -> builtins.list[Change]:
        """
        Durably delete an account with its keys and its shell history.  Raises
        L{sshfinger.model.errors.NoSuchAccount} or L{sshfinger.model.errors.StoreUnavailable}.
        """

    def history(login: str) -> builtins.list[str]:
        """
        Return the shell history of C{login}, oldest first.
        """

    def add_history(login: str, line: str, keep: int) -> None:
        """
        Append one history line, keeping only the newest C{keep} lines of that login.
        """

    def recent_changes(limit: int, login: str | None) -> builtins.list[Change]:
        """
        Return the newest C{limit} changes (of one login if given), oldest first.
        """

    def record(changes: builtins.list[Change]) -> None:
        """
        Durably add audit events to the changes kept (subject to the same retention).
        """


@dataclass(frozen=True)
class FeedBatch:
    """
    What one read of an L{IChangeFeed} returns: every change committed after the sequence number asked for, in
    commit order, with the current state of each account they touched.

    @ivar head: the sequence number of the last change in C{changes} (or the one asked for, if none): the next
        read asks for what comes after it.
    @ivar changes: the committed changes, oldest first, each with its C{seq}.
    @ivar accounts: the current state of every login the changes touched (L{None} for a deleted account).
    """

    head: int
    changes: builtins.list[tuple[int, Change]] = field(default_factory=builtins.list)
    accounts: Mapping[str, Account | None] = field(default_factory=dict)


class FeedGap(Exception):
    """
    A follower asked for changes after a sequence number that is no longer retained (pruned, or from another
    database): it cannot prove it saw everything, so it must reload the whole view and then follow from
    C{head}.
    """

    def __init__(self, asked: int, horizon: int) -> None:
        super().__init__(f"changes after {asked} are gone (retained from {horizon})")
        self.asked = asked
        self.horizon = horizon


class IChangeFeed(Interface):
    """
    The ordered stream of committed changes that every follower (a node's cached view, the web face's live
    events) reads.  Sequence numbers grow in commit order, so a follower that asks for "everything after N" never
    skips a change, even when writers commit concurrently.

    Whether the feed learns of new changes by polling (SQLite: C{PRAGMA data_version}) or by being told
    (PostgreSQL: C{LISTEN}) is its own business: it calls the C{wake} callback given to L{start} and the follower
    then reads.
    """

    def start(wake: Callable[[], None]) -> None:
        """
        Begin watching for commits; call C{wake()} on the reactor thread whenever changes may have been
        committed (a notification, a poll tick, a reconnect).  Spurious calls are allowed; missed ones are not.
        """

    def stop() -> Deferred[None] | None:
        """
        Stop watching.
        """

    def head() -> int:
        """
        Return the sequence number of the newest committed change (0 if none).  May block: call it off the
        reactor thread, as L{read_after}.

        Must work before the backend is opened: the cached view reads the head, then loads the accounts, so a
        change committed during the load is read again from the feed rather than skipped.
        """

    def read_after(seq: int, limit: int) -> FeedBatch:
        """
        Return at most C{limit} changes committed after C{seq}, oldest first.  May block.

        Sequence numbers may have gaps, so the retained horizon is not inferred from the oldest one kept: pruning
        records the number it pruned through, and a C{seq} below it (or beyond the head: another database, a
        restored backup) raises L{FeedGap}.

        @raise FeedGap: if changes after C{seq} were pruned: the follower reloads (see L{FeedGap}).
        """


class IStoreMaintenance(Interface):
    """
    Optional operations a backend may provide for the offline tool (C{sshfinger backup/restore/doctor}).  The
    tool says clearly when a backend lacks one.
    """

    def backup(destination: str) -> None:
        """
        Write a consistent copy of the store to C{destination} (created 0600).
        """

    def restore(source: str) -> None:
        """
        Replace the store with the copy at C{source}, after checking it.  Needs no open store.

        @raise sshfinger.model.errors.StoreError: with one line, if any process has the store open or the copy is
            not a sound store.
        """

    def check() -> builtins.list[str]:
        """
        Return the problems an integrity check found (an empty list when the store is sound).
        """

    def size() -> int:
        """
        Return the bytes the store occupies.
        """

    def files() -> builtins.list[str]:
        """
        Return the local files that hold the store's data (empty for a networked database): C{doctor} and the
        server warn when one of them is readable by others.
        """


def feed_of(backend: object) -> IChangeFeed | None:
    """
    Return the L{IChangeFeed} of a backend: the backend itself if it provides one, else its C{feed} attribute if
    that does, else L{None} (the cached view then applies only its own writes).
    """
    for candidate in (backend, getattr(backend, "feed", None)):
        if IChangeFeed.providedBy(candidate):
            return candidate
    return None


def maintenance_of(backend: object) -> IStoreMaintenance | None:
    """
    Return the L{IStoreMaintenance} of a backend (itself, or its C{maintenance} attribute), or L{None}.
    """
    for candidate in (backend, getattr(backend, "maintenance", None)):
        if IStoreMaintenance.providedBy(candidate):
            return candidate
    return None
