"""
L{MemoryBackend}: an L{IStoreBackend} that keeps everything in dicts (C{--store memory} and tests).

Nothing survives the process; every call returns at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from zope.interface import implementer

from sshfinger.model.account import Account, Actor, Change, PlainAccount, diff
from sshfinger.model.errors import AccountExists, NoSuchAccount
from sshfinger.store.interfaces import IStoreBackend

#: Changes kept by a memory backend.
CHANGES_KEEP = 100_000


@implementer(IStoreBackend)
class MemoryBackend:
    """
    Keep accounts, history and changes in memory.
    """

    description = "memory"

    def __init__(self, accounts: list[Account] | None = None) -> None:
        """
        @param accounts: accounts to start with.
        """
        self._accounts = {account.login: account for account in accounts or []}
        self._history: dict[str, list[str]] = {}
        self._changes: deque[Change] = deque(maxlen=CHANGES_KEEP)

    def open(self) -> list[Account]:
        """
        See L{IStoreBackend.open}.
        """
        return list(self._accounts.values())

    def open_by_login(self) -> dict[str, Account | PlainAccount]:
        """
        See L{IStoreBackend.open_by_login}: every account as an L{Account}.
        """
        return dict(self._accounts)

    def close(self) -> None:
        """
        See L{IStoreBackend.close}.
        """

    def create(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.create}.
        """
        if login in self._accounts:
            raise AccountExists(login)
        account = Account(login).with_changes(values, actor.login, at)
        return account, self._commit(None, account, actor, at)

    def update(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.update}.
        """
        old = self._accounts.get(login)
        if old is None:
            raise NoSuchAccount(login)
        account = old.with_changes(values, actor.login, at)
        return account, self._commit(old, account, actor, at)

    def delete(self, login: str, actor: Actor, at: float) -> list[Change]:
        """
        See L{IStoreBackend.delete}.
        """
        old = self._accounts.get(login)
        if old is None:
            raise NoSuchAccount(login)
        self._history.pop(login, None)
        return self._commit(old, None, actor, at)

    def _commit(self, old: Account | None, new: Account | None, actor: Actor, at: float) -> list[Change]:
        login = (new or old).login  # type: ignore[union-attr]
        if new is None:
            del self._accounts[login]
        else:
            self._accounts[login] = new
        changes = diff(old, new, actor, at)
        self._changes.extend(changes)
        return changes

    def history(self, login: str) -> list[str]:
        """
        See L{IStoreBackend.history}.
        """
        return list(self._history.get(login, []))

    def add_history(self, login: str, line: str, keep: int) -> None:
        """
        See L{IStoreBackend.add_history}.
        """
        lines = self._history.setdefault(login, [])
        lines.append(line)
        del lines[:-keep]

    def recent_changes(self, limit: int, login: str | None) -> list[Change]:
        """
        See L{IStoreBackend.recent_changes}.
        """
        matching = [change for change in self._changes if login is None or change.login == login]
        return matching[len(matching) - limit :] if limit else []

    def record(self, changes: list[Change]) -> None:
        """
        See L{IStoreBackend.record}.
        """
        self._changes.extend(changes)

    def poll(self) -> list[tuple[str, Account | None, list[Change]]]:
        """
        See L{IStoreBackend.poll}: no other process shares a memory backend.
        """
        return []
