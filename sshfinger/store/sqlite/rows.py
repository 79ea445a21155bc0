"""
Rows of the SQLite store: its columns, how a row becomes an L{Account} or a L{Change}, and loading every account
quickly at start-up (L{LazyAccounts}).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from operator import itemgetter
from sys import intern

from sshfinger.model.account import Account, Actor, Change
from sshfinger.store.lazy import LazyAccounts, full_account

ACCOUNT_COLUMNS = (
    "login",
    "real_name",
    "status",
    "plan",
    "office",
    "phone",
    "hidden",
    "role",
    "updated_at",
    "updated_by",
    "fediverse",
    "plan_signature",
)
SELECT_ACCOUNT = f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM accounts"
#: Selects the plain accounts: plan, office, phone, hidden flag and role at their defaults (typically most
#: accounts, which set only a name and a status).  As every column is NOT NULL, C{NOT (PLAIN)} selects the others.
PLAIN = (
    "plan = '' AND office = '' AND phone = '' AND hidden = 0 AND role = 'user' AND fediverse = ''"
    " AND plan_signature = ''"
)
INSERT_ACCOUNT = (
    f"INSERT INTO accounts ({', '.join(ACCOUNT_COLUMNS)}) VALUES ({', '.join('?' * len(ACCOUNT_COLUMNS))})"
)
UPDATE_ACCOUNT = (
    f"UPDATE accounts SET {', '.join(f'{name} = ?' for name in ACCOUNT_COLUMNS[1:])} WHERE login = ?"
)
CHANGE_COLUMNS = "id, at, actor_login, actor_channel, actor_peer, login, action, field, old, new"


def account_from_row(row: tuple, keys: Iterable[str] = ()) -> Account:
    login, real_name, status, plan, office, phone, hidden, role, updated_at, updated_by, fediverse, plan_signature = row
    # Positional (fields in declaration order) and interned role and author: loading a million accounts is
    # start-up time, and repeated strings are memory.
    return Account(
        login, real_name, status, plan, office, phone, bool(hidden), intern(role), tuple(keys), updated_at,
        intern(updated_by), fediverse, plan_signature,
    )  # fmt: skip


def account_values(account: Account) -> tuple:
    return (
        account.login,
        account.real_name,
        account.status,
        account.plan,
        account.office,
        account.phone,
        int(account.hidden),
        account.role,
        account.updated_at,
        account.updated_by,
        account.fediverse,
        account.plan_signature,
    )


def change_from_row(row: tuple) -> Change:
    _id, at, actor_login, actor_channel, actor_peer, login, action, field, old, new = row
    return Change(at, Actor(actor_login, actor_channel, actor_peer), login, action, field, old, new)


def load_account(connection: sqlite3.Connection, login: str) -> Account | None:
    row = connection.execute(f"{SELECT_ACCOUNT} WHERE login = ?", (login,)).fetchone()
    if row is None:
        return None
    keys = connection.execute("SELECT line FROM account_keys WHERE login = ? ORDER BY position", (login,))
    return account_from_row(row, (line for (line,) in keys))

def load_all(connection: sqlite3.Connection) -> LazyAccounts:
    """
    Read every account, by login.

    This is most of the start-up of a large store, and most of that is the sqlite3 module handing over
    columns, at a cost per column and row whether the value is empty or not.  So the plain accounts
    (L{PLAIN}) are read from the five columns that vary, as the rows themselves (L{PlainAccount}s), and put
    in a dict without a line of Python per row (C{fetchall}, C{map} and C{zip} loop in C); the others, if
    any, are read from all ten columns as L{Account}s, their repeated strings interned.  A plain account with
    authorized keys becomes an L{Account} too.
    """
    rows = connection.execute(
        f"SELECT login, real_name, status, updated_at, updated_by FROM accounts WHERE {PLAIN}"
    ).fetchall()
    accounts = LazyAccounts(zip(map(itemgetter(0), rows), rows))
    del rows  # a second list of up to a million entries need not outlive the dict
    keys: dict[str, tuple[str, ...]] = {}
    for login, line in connection.execute("SELECT login, line FROM account_keys ORDER BY login, position"):
        keys[login] = keys.get(login, ()) + (line,)
    for login, lines in keys.items():
        plain = dict.get(accounts, login)
        if plain is not None:
            dict.__setitem__(accounts, login, full_account(plain, lines))
    if len(accounts) == connection.execute("SELECT count(*) FROM accounts").fetchone()[0]:
        return accounts  # all plain: spare a scan of the whole table for nothing
    new = tuple.__new__  # skips the Python frame of the generated Account.__new__: values complete, in order
    accounts.update(
        (login, new(Account, (login, real_name, status, plan, office, phone, bool(hidden), intern(role),
                              keys.get(login, ()), updated_at, intern(updated_by), fediverse, plan_signature)))
        for (login, real_name, status, plan, office, phone, hidden, role, updated_at, updated_by, fediverse,
             plan_signature)
        in connection.execute(f"{SELECT_ACCOUNT} WHERE NOT ({PLAIN})")
    )  # fmt: skip
    return accounts
