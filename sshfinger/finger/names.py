"""
Matching a finger query against real names, as classic fingerd does (C{finger liddell} finds Alice Liddell).

L{NameIndex} maps each word of each account's real name to its logins.  It is built from the store's memory the
first time it is asked (for a store of at most L{constants.NAME_INDEX_MAX} accounts; a larger store matches
logins only) and kept up to date from the store's change notifications, so a query costs a dictionary lookup,
whatever the store's size; a change of the store's C{version} that no notification explains (a reload) has it
built again.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twisted.logger import Logger

from sshfinger.finger import constants
from sshfinger.model.account import Change
from sshfinger.store.interfaces import IUserStore

#: What separates the words of a real name.
_SEPARATORS = re.compile(r"[\s,.;:()\"'/&+-]+")


def name_words(real_name: str) -> set[str]:
    """
    The words of a real name, case-folded: C{"Alice P. Liddell"} gives C{{"alice", "p", "liddell"}}.
    """
    return {word for word in _SEPARATORS.split(real_name.casefold()) if word}


class NameIndex:
    """
    Real-name words to logins, for one store.

    @ivar store: the store.
    @ivar usable: false once the store was found too large to index.
    """

    log = Logger(namespace="sshfinger.finger")

    def __init__(self, store: IUserStore) -> None:
        self.store = store
        self.usable = True
        self._words: dict[str, set[str]] | None = None
        self._by_login: dict[str, set[str]] = {}
        self._version = -1
        self._unsubscribe: Callable[[], None] | None = None

    def find(self, word: str) -> list[str]:
        """
        Return the logins (sorted) of the accounts whose real name has the word C{word} (any case), hidden ones
        included: the caller decides what it may show.
        """
        words = self._index()
        if words is None:
            return []
        return sorted(words.get(word.casefold(), ()))

    def _index(self) -> dict[str, set[str]] | None:
        if self._words is not None and self._version != self.store.version:
            self._words = None
        if self._words is None and self.usable:
            logins = self.store.logins()
            if len(logins) > constants.NAME_INDEX_MAX:
                self.usable = False
                self.log.info(
                    "finger: {count} accounts, more than {max}: queries match logins only, not real names",
                    count=len(logins),
                    max=constants.NAME_INDEX_MAX,
                )
                return None
            self._words, self._by_login = {}, {}
            for login in logins:
                self._add(login)
            self._version = self.store.version
            if self._unsubscribe is None:
                self._unsubscribe = self.store.subscribe(self._changed)
        return self._words

    def _add(self, login: str) -> None:
        account = self.store.peek(login)
        words = name_words(account.real_name) if account is not None else set()
        assert self._words is not None
        for word in words:
            self._words.setdefault(word, set()).add(login)
        if words:
            self._by_login[login] = words

    def _changed(self, change: Change) -> None:
        """
        Re-index the account a committed change touched.
        """
        if self._words is None or not change.login:
            return
        for word in self._by_login.pop(change.login, ()):
            logins = self._words.get(word)
            if logins is not None:
                logins.discard(change.login)
                if not logins:
                    del self._words[word]
        self._add(change.login)
        self._version = self.store.version

    def close(self) -> None:
        """
        Stop following the store.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


__all__ = ["NameIndex", "name_words"]
