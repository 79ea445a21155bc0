"""
L{CachedStore}: the in-memory view of the accounts over a durable L{IStoreBackend}, following its L{IChangeFeed}.

Reads are answered from a dict in memory.  Writes are validated on the calling (reactor) thread and committed by
the backend through an executor (a single writer thread in production).  Every change, this store's own and
those other processes (or nodes) commit, reaches the view the same way: the store reads the feed after the last
sequence number it applied, on the executor, and applies the batch on the reactor thread in order, telling
subscribers.  A write is acknowledged once its commit and that read are done, so its caller sees it in the view.
A follower that fell behind the feed's retained horizon (L{FeedGap}) reloads everything and logs that it did.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import replace
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.model.account import Account, Actor, Change, normalize_changes, normalize_login
from sshfinger.model.errors import InvalidValue, NoSuchAccount, StoreError
from sshfinger.store.interfaces import FeedBatch, FeedGap, IChangeFeed, IStoreBackend, IUserStore, Subscriber, feed_of
from sshfinger.store.limits import HISTORY_KEEP, HISTORY_LINE_MAX

T = TypeVar("T")
Executor = Callable[[Callable[[], T]], "Deferred[T]"]

#: Most changes read from the feed in one batch (a follower far behind reads several).
FEED_BATCH = 1000

__all__ = ["HISTORY_KEEP", "HISTORY_LINE_MAX", "CachedStore", "run_now"]


#: Who announces a reload to subscribers (L{IUserStore.subscribe}).
RELOAD_ACTOR = Actor("store", "reload")


def run_now(function: Callable[[], T]) -> Deferred[T]:
    """
    An executor that runs C{function} at once on the calling thread (tests, the offline tool, memory stores).
    """
    try:
        return succeed(function())
    except BaseException:
        return fail(Failure())


class _Reload:
    """
    What a read of the feed returns instead of batches when the follower fell behind its horizon: every account,
    and the feed's head read before them.
    """

    def __init__(self, gap: FeedGap, accounts: MutableMapping[str, Account], head: int) -> None:
        self.gap = gap
        self.accounts = accounts
        self.head = head


class _ReadFailed:
    """
    What a write's job returns when its commit succeeded but reading the feed afterwards failed.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error


def _as_dict(loaded: Any) -> MutableMapping[str, Account]:
    """
    The accounts L{IStoreBackend.open} returned, as a dict by login (kept as it is if it is one already).
    """
    if isinstance(loaded, dict):
        return loaded
    return {account.login: account for account in loaded}


@implementer(IUserStore)
class CachedStore:
    """
    An L{IUserStore} keeping every account in memory over an L{IStoreBackend}, following its L{IChangeFeed}.

    @ivar backend: the durable layer.
    @ivar feed: the change feed followed (L{None}: the store applies only its own writes).
    @ivar seq: the sequence number of the last change applied from the feed.
    """

    log = Logger()

    def __init__(
        self,
        backend: IStoreBackend,
        clock: Callable[[], float],
        executor: Executor = run_now,
        feed: IChangeFeed | None = None,
    ) -> None:
        """
        @param backend: the durable layer; L{open} must be called before use.
        @param clock: returns the current POSIX time (C{reactor.seconds}).
        @param executor: runs a backend call and returns a L{Deferred} of its result; runs them one at a time,
            in order.
        @param feed: the change feed to follow; by default the backend's own (see L{feed_of}).
        """
        self.backend = backend
        self.feed = feed if feed is not None else feed_of(backend)
        self._clock = clock
        self._executor = executor
        self._accounts: MutableMapping[str, Account] = {}
        self._sorted: list[str] | None = None  # logins in order; rebuilt after a create or delete
        self._subscribers: list[Subscriber] = []
        self.version = 0  # see IUserStore.version: bumped wherever _accounts gains, loses or replaces an account
        self.seq = 0
        self._read_seq = 0  # the last sequence number read from the feed, on the executor's thread
        self._waking = False  # a read started by the feed's wake is under way
        self._woken_again = False  # and the feed woke the store again meanwhile
        self._feed_failing = False  # the last read after a wake failed (logged once, until one succeeds)

    @property
    def description(self) -> str:
        """
        The backend's description.
        """
        return self.backend.description

    def open(self) -> None:
        """
        Open the backend and load every account into memory (synchronously: called before serving).

        The feed's head is read before the accounts, so a change committed in between is read again from the feed
        (harmless: the feed gives each account's current state).
        """
        head = self.feed.head() if self.feed is not None else 0
        self._accounts = _as_dict(self.backend.open())
        self.seq = self._read_seq = head
        self._sorted = None
        self.version += 1

    def close(self) -> None:
        """
        Close the backend.
        """
        self.backend.close()

    def start_following(self) -> None:
        """
        Start the feed: each time it wakes the store, the store reads and applies what was committed.
        """
        if self.feed is not None:
            self.feed.start(self._wake)

    def stop_following(self) -> Deferred[None] | None:
        """
        Stop the feed.
        """
        return self.feed.stop() if self.feed is not None else None

    def __len__(self) -> int:
        """
        The number of accounts in memory.
        """
        return len(self._accounts)

    # Reads: memory only.

    def peek(self, login: str) -> Account | None:
        """
        See L{IUserStore.peek}.
        """
        return self._accounts.get(login.lower())

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
        get = self._accounts.get
        for login in self._sorted_logins():
            account = get(login)
            if account is not None and not account.hidden:
                yield account

    def get(self, login: str) -> Deferred[Account]:
        """
        See L{IUserStore.get}.
        """
        account = self._accounts.get(login.lower())
        if account is None:
            return fail(NoSuchAccount(login))
        return succeed(account)

    def list(self, include_hidden: bool = False) -> Deferred[builtins.list[Account]]:
        """
        See L{IUserStore.list}.
        """
        get = self._accounts.get
        accounts = [get(login) for login in self._sorted_logins()]
        return succeed([a for a in accounts if a is not None and (include_hidden or not a.hidden)])

    # Writes: validated here, committed by the backend, then read back from the feed.

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
        return self._write(login, lambda: self.backend.create(login, values, actor, at))

    def update(self, login: str, changes: Mapping[str, object], actor: Actor) -> Deferred[Account]:
        """
        See L{IUserStore.update}.
        """
        try:
            values = normalize_changes(changes)
        except InvalidValue:
            return fail()
        login = login.lower()  # an account the view has not read yet is still found: the backend decides
        at = self._clock()
        return self._write(login, lambda: self.backend.update(login, values, actor, at))

    def delete(self, login: str, actor: Actor) -> Deferred[None]:
        """
        See L{IUserStore.delete}.
        """
        login = login.lower()
        at = self._clock()
        d = self._write(login, lambda: (None, self.backend.delete(login, actor, at)))
        return d.addCallback(lambda _: None)

    def _write(self, login: str, commit: Callable[[], tuple[Any, builtins.list[Change]]]) -> Deferred[Any]:
        """
        Commit on the executor, then (in the same job) read the feed; apply on this thread; fire with the result.
        """

        def work() -> tuple[tuple[Any, builtins.list[Change]], builtins.list[FeedBatch] | _Reload | _ReadFailed | None]:
            result = commit()
            if self.feed is None:
                return result, None
            try:
                return result, self._read()
            except Exception as e:  # committed all the same: the write must not be reported as failed
                return result, _ReadFailed(e)

        def done(
            outcome: tuple[tuple[Any, builtins.list[Change]], builtins.list[FeedBatch] | _Reload | _ReadFailed | None],
        ) -> Any:
            (account, changes), read = outcome
            if read is None:
                self._apply(login, account, changes)
            elif isinstance(read, _ReadFailed):
                # Show this write now; its changes reach subscribers when the feed is read again.
                self.log.warn(
                    "Cannot read the store's change feed after a write: {error}", error=str(read.error)
                )
                self._set(login, account)
                self.version += 1
            else:
                self._apply_read(read)
            current = self._accounts.get(login) if account is not None else None
            return current if current is not None and current == account else account  # the view's own object

        return self._executor(work).addCallback(done)

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

    def recent_changes(
        self, limit: int = 20, login: str | None = None, everything: bool = False
    ) -> Deferred[builtins.list[Change]]:
        """
        See L{IUserStore.recent_changes}: one login's changes start at its last creation unless C{everything}.
        """
        who = login.lower() if login else None
        d = self._executor(lambda: self.backend.recent_changes(max(0, limit), who))
        if who is None or everything:
            return d

        def lifetime(changes: builtins.list[Change]) -> builtins.list[Change]:
            for index in range(len(changes) - 1, -1, -1):
                if changes[index].action == "create":
                    return changes[index:]
            return changes  # its creation was pruned, and so was anything older

        return d.addCallback(lifetime)

    def record(self, change: Change) -> Deferred[None]:
        """
        See L{IUserStore.record}.  The event is stamped with the current time.
        """
        stamped = replace(change, at=self._clock())

        def commit() -> tuple[None, builtins.list[Change]]:
            self.backend.record([stamped])
            return None, [stamped]

        return self._write(stamped.login, commit).addCallback(lambda _: None)

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

    # Following the feed.

    def catch_up(self) -> Deferred[int]:
        """
        Read everything committed after the last change applied, and apply it.

        @return: a L{Deferred} firing with the number of changes applied (after a reload: the accounts loaded).
        """
        if self.feed is None:
            return succeed(0)
        return self._executor(self._read).addCallback(self._apply_read)

    def _wake(self) -> None:
        """
        The feed says changes may have been committed: read them, one read at a time (a wake during a read
        starts one more read once it is done).
        """
        if self._waking:
            self._woken_again = True
            return
        self._waking = True
        self._woken_again = False

        def done(result: object) -> None:
            self._waking = False
            if isinstance(result, Failure):
                if not self._feed_failing:
                    if result.check(StoreError):
                        self.log.warn("Cannot read the store's change feed: {error}", error=str(result.value))
                    else:
                        self.log.failure("Reading the store's change feed failed", result)
                self._feed_failing = True
            elif self._feed_failing:
                self._feed_failing = False
                self.log.info("Reading the store's change feed again")
            if self._woken_again:
                self._wake()

        self.catch_up().addBoth(done)

    def _read(self) -> builtins.list[FeedBatch] | _Reload:
        """
        Read the feed after the last sequence number read (runs on the executor, one job at a time, so reads
        follow each other); on L{FeedGap}, reload every account instead.
        """
        assert self.feed is not None
        batches = []
        seq = self._read_seq  # moved on only once every batch is in hand: a failed read is read again whole
        try:
            while True:
                batch = self.feed.read_after(seq, FEED_BATCH)
                seq = batch.head
                batches.append(batch)
                if len(batch.changes) < FEED_BATCH:
                    self._read_seq = seq
                    return batches
        except FeedGap as gap:
            head = self.feed.head()
            accounts = _as_dict(self.backend.open())
            self._read_seq = head
            return _Reload(gap, accounts, head)

    def _apply_read(self, read: builtins.list[FeedBatch] | _Reload) -> int:
        """
        Apply on the reactor thread what L{_read} returned, in order.
        """
        if isinstance(read, _Reload):
            self._accounts = read.accounts
            self._sorted = None
            self.version += 1
            self.seq = read.head
            self.log.warn(
                "Store {store} reloaded {count} accounts: {reason}",
                store=self.description,
                count=len(read.accounts),
                reason=str(read.gap),
            )
            self._notify([Change(self._clock(), RELOAD_ACTOR, "", "reload")])
            return len(read.accounts)
        applied = 0
        for batch in read:
            fresh = [change for seq, change in batch.changes if seq > self.seq]
            if not fresh:
                continue
            changed = False
            for login, account in batch.accounts.items():
                current = self._accounts.get(login)
                if current is not account and current != account:
                    self._set(login, account)
                    changed = True
            if changed:
                self.version += 1
            self.seq = batch.head
            applied += len(fresh)
            self._notify(fresh)
        return applied

    def _set(self, login: str, account: Account | None) -> None:
        if account is None:
            if self._accounts.pop(login, None) is not None:
                self._sorted = None
        else:
            if login not in self._accounts:
                self._sorted = None
            self._accounts[login] = account

    def _apply(self, login: str, account: Account | None, changes: builtins.list[Change]) -> None:
        """
        Apply one write of this store directly (no feed to follow).
        """
        if changes and (account is not None or any(change.action == "delete" for change in changes)):
            self._set(login, account)
            self.version += 1
        self._notify(changes)

    def _notify(self, changes: builtins.list[Change]) -> None:
        for change in changes:
            for subscriber in builtins.list(self._subscribers):
                try:
                    subscriber(change)
                except Exception:
                    self.log.failure("Store subscriber {subscriber!r} failed", subscriber=subscriber)
