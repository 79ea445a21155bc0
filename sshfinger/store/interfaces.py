"""
The interface every user store provides.

Every method that may touch a disk or a network returns a L{Deferred}, so that a remote store can implement the
interface later.  Two synchronous methods, L{IUserStore.peek} and L{IUserStore.logins}, read the in-memory view
only: finger lookups and Tab completion use them and never wait.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping

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
