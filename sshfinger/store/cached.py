"""
L{CachedStore}: the in-memory view of the accounts over a durable L{IStoreBackend}.

Reads are answered from a dict in memory.  Writes are validated on the calling (reactor) thread, committed by the
backend through an executor (a single writer thread in production), and only then applied to the view,
announced to subscribers and acknowledged.  A failed commit changes nothing.
"""

from __future__ import annotations

import builtins
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.model.account import (
    Account,
    Actor,
    Change,
    PlainAccount,
    full_account,
    normalize_changes,
    normalize_login,
)
from sshfinger.model.errors import InvalidValue, NoSuchAccount
from sshfinger.store.interfaces import IStoreBackend, IUserStore, Subscriber

T = TypeVar("T")
Executor = Callable[[Callable[[], T]], "Deferred[T]"]

#: Accounts beyond which a loaded store is frozen out of the garbage collector's sight (L{gc.freeze}).
LARGE_STORE = 10_000
#: Shell history lines kept per login.
HISTORY_KEEP = 500
#: Longest history line kept, in characters.
HISTORY_LINE_MAX = 4096


def run_now(function: Callable[[], T]) -> Deferred[T]:
    """
    An executor that runs C{function} at once on the calling thread (tests, the offline tool, memory stores).
    """
    try:
        return succeed(function())
    except BaseException:
        return fail(Failure())


@implementer(IUserStore)
class CachedStore:
    """
    An L{IUserStore} keeping every account in memory over an L{IStoreBackend}.

    @ivar backend: the durable layer.
    """

    log = Logger()

    def __init__(
        self,
        backend: IStoreBackend,
        clock: Callable[[], float],
        executor: Executor = run_now,
    ) -> None:
        """
        @param backend: the durable layer; L{open} must be called before use.
        @param clock: returns the current POSIX time (C{reactor.seconds}).
        @param executor: runs a backend call and returns a L{Deferred} of its result.
        """
        self.backend = backend
        self._clock = clock
        self._executor = executor
        self._accounts: dict[str, Account | PlainAccount] = {}  # see _account
        self._sorted: list[str] | None = None  # logins in order; rebuilt after a create or delete
        self._subscribers: list[Subscriber] = []
        self.version = 0  # see IUserStore.version: bumped wherever _accounts gains, loses or replaces an account

    @property
    def description(self) -> str:
        """
        The backend's description.
        """
        return self.backend.description

    def open(self) -> None:
        """
        Open the backend and load every account into memory (synchronously: called before serving).
        """
        # A million accounts are a million new objects: the cyclic garbage collector would walk them over and
        # over while they load (none of them can be garbage).  Pause it; for a large store, also move what is
        # loaded out of its sight for good, so later collections do not walk it either.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._accounts = self.backend.open_by_login()
        finally:
            if was_enabled:
                gc.enable()
        if len(self._accounts) > LARGE_STORE:
            gc.freeze()
        self._sorted = None
        self.version += 1

    def close(self) -> None:
        """
        Close the backend.
        """
        self.backend.close()

    def __len__(self) -> int:
        """
        The number of accounts in memory.
        """
        return len(self._accounts)

    # Reads: memory only.

    def _account(self, login: str) -> Account | None:
        """
        The account under C{login} (lower-case), or L{None}.  The backend may have loaded it as a L{PlainAccount}:
        its L{Account} is made the first time it is asked for and kept in its place, so every later call returns
        that same object.  The account is the same as before, so L{version} stays.
        """
        account = self._accounts.get(login)
        if type(account) is tuple:  # a PlainAccount (an Account is a subclass, None is not a tuple)
            account = self._accounts[login] = full_account(account)
        return account  # type: ignore[return-value]

    def peek(self, login: str) -> Account | None:
        """
        See L{IUserStore.peek}.
        """
        return self._account(login.lower())

    def _sorted_logins(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._accounts)
        return self._sorted

    def logins(self) -> list[str]:
        """
        See L{IUserStore.logins}.
        """
        return list(self._sorted_logins())

    def visible_accounts(self) -> Iterator[Account]:
        """
        See L{IUserStore.visible_accounts}.
        """
        for login in self._sorted_logins():
            account = self._account(login)
            if account is not None and not account.hidden:
                yield account

    def get(self, login: str) -> Deferred[Account]:
        """
        See L{IUserStore.get}.
        """
        account = self._account(login.lower())
        if account is None:
            return fail(NoSuchAccount(login))
        return succeed(account)

    def list(self, include_hidden: bool = False) -> Deferred[builtins.list[Account]]:
        """
        See L{IUserStore.list}.
        """
        accounts = [self._account(login) for login in self._sorted_logins()]
        return succeed([a for a in accounts if a is not None and (include_hidden or not a.hidden)])

    # Writes: validated here, committed by the backend, then applied.

    def create(self, login: str, actor: Actor, fields: Mapping[str, object] = {}) -> Deferred[Account]:
        """
        See L{IUserStore.create}.
        """
        try:
            login = normalize_login(login)
            values = normalize_changes(fields) if fields else {}
        except InvalidValue:
            return fail()
        at = self._clock()
        d = self._executor(lambda: self.backend.create(login, values, actor, at))
        return d.addCallback(self._applied, login)

    def update(self, login: str, changes: Mapping[str, object], actor: Actor) -> Deferred[Account]:
        """
        See L{IUserStore.update}.
        """
        try:
            values = normalize_changes(changes)
        except InvalidValue:
            return fail()
        login = login.lower()
        if login not in self._accounts:
            return fail(NoSuchAccount(login))
        at = self._clock()
        d = self._executor(lambda: self.backend.update(login, values, actor, at))
        return d.addCallback(self._applied, login)

    def delete(self, login: str, actor: Actor) -> Deferred[None]:
        """
        See L{IUserStore.delete}.
        """
        login = login.lower()
        if login not in self._accounts:
            return fail(NoSuchAccount(login))
        at = self._clock()
        d = self._executor(lambda: (None, self.backend.delete(login, actor, at)))
        return d.addCallback(self._applied, login).addCallback(lambda _: None)

    def history(self, login: str) -> Deferred[builtins.list[str]]:
        """
        See L{IUserStore.history}.
        """
        login = login.lower()
        return self._executor(lambda: self.backend.history(login))

    def add_history(self, login: str, line: str) -> Deferred[None]:
        """
        See L{IUserStore.add_history}.  Lines longer than L{HISTORY_LINE_MAX} are not kept.
        """
        login = login.lower()
        if not line.strip() or len(line) > HISTORY_LINE_MAX:
            return succeed(None)
        return self._executor(lambda: self.backend.add_history(login, line, HISTORY_KEEP))

    def recent_changes(self, limit: int = 20, login: str | None = None) -> Deferred[builtins.list[Change]]:
        """
        See L{IUserStore.recent_changes}.
        """
        who = login.lower() if login else None
        return self._executor(lambda: self.backend.recent_changes(max(0, limit), who))

    def record(self, change: Change) -> Deferred[None]:
        """
        See L{IUserStore.record}.  The event is stamped with the current time.
        """
        stamped = replace(change, at=self._clock())

        def stored(_: object) -> None:
            self._notify([stamped])

        return self._executor(lambda: self.backend.record([stamped])).addCallback(stored)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """
        See L{IUserStore.subscribe}.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def flush(self) -> Deferred[None]:
        """
        Fire once every write queued before this call has been committed (or has failed).
        """
        return self._executor(lambda: None)

    def poll(self) -> Deferred[int]:
        """
        Ask the backend for changes other processes made and apply them.

        @return: a L{Deferred} firing with the number of accounts refreshed.
        """
        d = self._executor(self.backend.poll)

        def apply(refreshed: builtins.list[tuple[str, Account | None, builtins.list[Change]]]) -> int:
            for login, account, changes in refreshed:
                self._apply(login, account, changes)
            return len(refreshed)

        return d.addCallback(apply)

    def _applied(self, result: tuple[Account | None, builtins.list[Change]], login: str) -> Account | None:
        account, changes = result
        self._apply(login, account, changes)
        return account

    def _apply(self, login: str, account: Account | None, changes: Iterable[Change]) -> None:
        if account is None:
            if self._accounts.pop(login, None) is not None:
                self._sorted = None
        else:
            if login not in self._accounts:
                self._sorted = None
            self._accounts[login] = account
        self.version += 1
        self._notify(changes)

    def _notify(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(change)
                except Exception:
                    self.log.failure("Store subscriber {subscriber!r} failed", subscriber=subscriber)
