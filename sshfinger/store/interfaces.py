"""
The interface every user store provides.

Every method that may touch a disk or a network returns a L{Deferred}, so that a remote store can implement the
interface later.  Two synchronous methods, L{IUserStore.peek} and L{IUserStore.logins}, read the in-memory view
only: finger lookups and Tab completion use them and never wait.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from sshfinger.model.account import Account, Actor, Change, PlainAccount

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

    def recent_changes(limit: int = 20, login: str | None = None) -> Deferred[builtins.list[Change]]:
        """
        Fetch the newest C{limit} recorded changes, newest last, optionally of one account only.
        """

    def record(change: Change) -> Deferred[None]:
        """
        Durably add an event to the audit trail that is not a change of an account (a manhole input line:
        C{action="input"}); subscribers are told once it is stored.
        """

    def subscribe(callback: Subscriber) -> Callable[[], None]:
        """
        Call C{callback} with every L{Change} once it is committed, including changes made by other processes.

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

    def open() -> builtins.list[Account]:
        """
        Open (creating or migrating if needed) and return every stored account.
        """

    def open_by_login() -> dict[str, Account | PlainAccount]:
        """
        Open like L{open}, and return every stored account by login; an account that sets nothing but its name,
        status and update stamp may come as a L{PlainAccount} (see L{sshfinger.model.account.full_account}), which
        takes less work to load: this is how a cached store opens a large store.
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
        Durably delete an account.  Raises L{sshfinger.model.errors.NoSuchAccount} or
        L{sshfinger.model.errors.StoreUnavailable}.
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

    def poll() -> builtins.list[tuple[str, Account | None, builtins.list[Change]]]:
        """
        Return the accounts that other processes changed since the last call (or since L{open}): each as its
        login, its current state (L{None} when deleted) and the changes recorded for it.  Cheap when nothing
        changed.
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
        """

    def read_after(seq: int, limit: int) -> FeedBatch:
        """
        Return at most C{limit} changes committed after C{seq}, oldest first.  May block.

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
        Replace the store with the copy at C{source}.

        @raise sshfinger.model.errors.StoreError: if another process has the store open.
        """

    def check() -> builtins.list[str]:
        """
        Return the problems an integrity check found (an empty list when the store is sound).
        """

    def size() -> int:
        """
        Return the bytes the store occupies.
        """
