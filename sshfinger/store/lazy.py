"""
Accounts loaded lazily: a store of a million accounts loads most of them as the database's own rows (a
L{PlainAccount}: login, name, status, stamp, author) and makes each an L{Account} the first time it is read.  Any
backend may hand its view such a dict (L{LazyAccounts}); the cached view never knows.
"""

from __future__ import annotations

from typing import Any

from sshfinger.model.account import Account

#: An account that sets nothing but its name, status and update stamp, as L{SQLiteBackend.open} loads it:
#: C{(login, real_name, status, updated_at, updated_by)}, the database's row itself (see L{LazyAccounts}).
PlainAccount = tuple[str, str, str, float, str]


def full_account(plain: PlainAccount, keys: tuple[str, ...] = ()) -> Account:
    """
    Return the L{Account} that a L{PlainAccount} stands for, with C{keys} as its authorized keys.
    """
    login, real_name, status, updated_at, updated_by = plain
    return Account(login, real_name, status, keys=keys, updated_at=updated_at, updated_by=updated_by)


class LazyAccounts(dict[str, Any]):
    """
    The accounts by login, as a backend's C{open} may return them: a plain account may be held as its
    L{PlainAccount} row, which L{get} and C{[]} turn into an L{Account} the first time it is read and keep in its
    place (so every later read returns that same object).  Building a million L{Account}s is most of the start-up
    of a large store; most are never read before they change.
    """

    def get(self, login: str, default: Any = None) -> Any:
        """
        The account under C{login} as an L{Account}, or C{default}.
        """
        account = dict.get(self, login, default)
        if type(account) is tuple:  # a PlainAccount (an Account is a subclass, None is not a tuple)
            account = full_account(account)
            dict.__setitem__(self, login, account)
        return account

    def __getitem__(self, login: str) -> Account:
        """
        The account under C{login} as an L{Account}.
        """
        account = dict.__getitem__(self, login)
        if type(account) is tuple:
            account = full_account(account)
            dict.__setitem__(self, login, account)
        return account

    def accounts(self) -> list[Account]:
        """
        Every account as an L{Account}, in login order.
        """
        return [self[login] for login in sorted(self)]


__all__ = ["LazyAccounts", "PlainAccount", "full_account"]
