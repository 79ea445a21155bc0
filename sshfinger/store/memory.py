"""
L{MemoryBackend}: an L{IStoreBackend} and L{IChangeFeed} that keeps everything in dicts (C{--store memory:} and
tests).

Nothing survives the process; every call returns at once.  Several backends made with L{MemoryBackend.peer} share
one set of data, as several processes share one database file: each is the feed of its own follower.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from zope.interface import implementer

from sshfinger.model.account import Account, Actor, Change, diff
from sshfinger.model.errors import AccountExists, NoSuchAccount
from sshfinger.store.interfaces import FeedBatch, FeedGap, IChangeFeed, IStoreBackend
from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES, change_size, check_retention


class _Shared:
    """
    The data every peer of a memory backend sees: accounts, history, the numbered change log and its horizon.
    """

    def __init__(self, accounts: list[Account], keep: int, max_bytes: int) -> None:
        self.accounts = {account.login: account for account in accounts}
        self.history: dict[str, list[str]] = {}
        self.changes: deque[tuple[int, Change, int]] = deque()  # (seq, change, size), oldest first
        self.bytes = 0
        self.seq = 0
        self.pruned_through = 0
        self.keep = keep
        self.max_bytes = max_bytes
        self.backends: list[MemoryBackend] = []

    def append(self, changes: list[Change]) -> None:
        for change in changes:
            self.seq += 1
            size = change_size(change)
            self.changes.append((self.seq, change, size))
            self.bytes += size
        while len(self.changes) > 1 and (len(self.changes) > self.keep or self.bytes > self.max_bytes):
            seq, _, size = self.changes.popleft()
            self.bytes -= size
            self.pruned_through = seq


@implementer(IStoreBackend, IChangeFeed)
class MemoryBackend:
    """
    Keep accounts, history and changes in memory; be the change feed of the one store over this object.
    """

    description = "memory"

    def __init__(
        self,
        accounts: list[Account] | None = None,
        changes_keep: int = CHANGES_KEEP,
        changes_max_bytes: int = CHANGES_MAX_BYTES,
        _shared: _Shared | None = None,
    ) -> None:
        """
        @param accounts: accounts to start with.
        @param changes_keep: audit entries kept.
        @param changes_max_bytes: bytes of audit entries kept (see L{sshfinger.store.limits.change_size}).
        """
        check_retention(changes_keep, changes_max_bytes)
        self._shared = _shared or _Shared(accounts or [], changes_keep, changes_max_bytes)
        self._shared.backends.append(self)
        self._wake: Callable[[], None] | None = None

    def peer(self, changes_keep: int | None = None, changes_max_bytes: int | None = None) -> MemoryBackend:
        """
        Return another backend over the same data, for a second follower (as a second process opens one file).

        @param changes_keep: if given, the retention every peer applies from now on (as a process started with
            another C{--audit-keep} would prune a shared file); likewise C{changes_max_bytes}.
        """
        if changes_keep is not None:
            self._shared.keep = changes_keep
        if changes_max_bytes is not None:
            self._shared.max_bytes = changes_max_bytes
        return MemoryBackend(_shared=self._shared)

    def open(self) -> dict[str, Account]:
        """
        See L{IStoreBackend.open}.
        """
        return dict(self._shared.accounts)

    def close(self) -> None:
        """
        See L{IStoreBackend.close}.
        """

    def create(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.create}.
        """
        if login in self._shared.accounts:
            raise AccountExists(login)
        account = Account(login).with_changes(values, actor.login, at)
        return account, self._commit(None, account, actor, at)

    def update(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.update}.
        """
        old = self._shared.accounts.get(login)
        if old is None:
            raise NoSuchAccount(login)
        account = old.with_changes(values, actor.login, at)
        return account, self._commit(old, account, actor, at)

    def delete(self, login: str, actor: Actor, at: float) -> list[Change]:
        """
        See L{IStoreBackend.delete}.
        """
        old = self._shared.accounts.get(login)
        if old is None:
            raise NoSuchAccount(login)
        self._shared.history.pop(login, None)
        return self._commit(old, None, actor, at)

    def _commit(self, old: Account | None, new: Account | None, actor: Actor, at: float) -> list[Change]:
        login = (new or old).login  # type: ignore[union-attr]
        if new is None:
            del self._shared.accounts[login]
        else:
            self._shared.accounts[login] = new
        changes = diff(old, new, actor, at)
        self._append(changes)
        return changes

    def _append(self, changes: list[Change]) -> None:
        self._shared.append(changes)
        for backend in list(self._shared.backends):
            if backend is not self and backend._wake is not None:
                backend._wake()

    def history(self, login: str) -> list[str]:
        """
        See L{IStoreBackend.history}.
        """
        return list(self._shared.history.get(login, []))

    def add_history(self, login: str, line: str, keep: int) -> None:
        """
        See L{IStoreBackend.add_history}.
        """
        lines = self._shared.history.setdefault(login, [])
        lines.append(line)
        del lines[:-keep]

    def recent_changes(self, limit: int, login: str | None) -> list[Change]:
        """
        See L{IStoreBackend.recent_changes}.
        """
        matching = [change for _, change, _ in self._shared.changes if login is None or change.login == login]
        return matching[len(matching) - limit :] if limit > 0 else []

    def record(self, changes: list[Change]) -> None:
        """
        See L{IStoreBackend.record}.
        """
        self._append(list(changes))

    # IChangeFeed

    def start(self, wake: Callable[[], None]) -> None:
        """
        See L{IChangeFeed.start}: C{wake} is called at once by a peer's commit (on the thread that commits, the
        reactor's for a memory store).
        """
        self._wake = wake

    def stop(self) -> None:
        """
        See L{IChangeFeed.stop}.
        """
        self._wake = None

    def head(self) -> int:
        """
        See L{IChangeFeed.head}.
        """
        return self._shared.seq

    def read_after(self, seq: int, limit: int) -> FeedBatch:
        """
        See L{IChangeFeed.read_after}.
        """
        shared = self._shared
        if seq < shared.pruned_through or seq > shared.seq:
            raise FeedGap(seq, shared.pruned_through)
        changes = []
        for number, change, _ in reversed(shared.changes):
            if number <= seq:
                break
            changes.append((number, change))
        changes.reverse()
        del changes[limit:]
        if not changes:
            return FeedBatch(seq)
        logins = {change.login for _, change in changes}
        return FeedBatch(changes[-1][0], changes, {login: shared.accounts.get(login) for login in logins})
