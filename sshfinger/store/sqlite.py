"""
L{SQLiteBackend}: an L{IStoreBackend} keeping accounts, keys, shell history and the audit trail in one SQLite file.

The schema is versioned: a one-row C{version} table names the version of the file, and the SQL scripts in
C{sshfinger/store/schema/} build it.  A new file is made by running C{v1.sql} and then every
C{upgrade-to-vN.sql} in order, so the upgrade path is exercised every time; an older file is upgraded in one
transaction when it is opened.

Every write is one C{BEGIN IMMEDIATE ... COMMIT} transaction that reads the current row from the file (other
processes may share it), writes the account and records its L{Change}s in the C{changes} table.  Other
processes' writes are found by L{SQLiteBackend.poll}, which reads the C{changes} rows past a watermark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from importlib.resources import files
from operator import itemgetter
from sys import intern
from typing import TypeVar

from zope.interface import implementer

from sshfinger.model.account import Account, Actor, Change, PlainAccount, as_account, diff, full_account
from sshfinger.model.errors import AccountExists, NoSuchAccount, StoreError, StoreUnavailable
from sshfinger.store.interfaces import IStoreBackend

T = TypeVar("T")

#: The schema version this code writes; files of a newer version are refused.
SCHEMA_VERSION = 3

#: Rows of the C{changes} table kept by default.
CHANGES_KEEP = 100_000

#: Old C{changes} rows are pruned each time the change ids cross a multiple of this.
PRUNE_EVERY = 1000

_ACCOUNT_COLUMNS = (
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
    "plan_signature",
)
_SELECT_ACCOUNT = f"SELECT {', '.join(_ACCOUNT_COLUMNS)} FROM accounts"
#: Selects the plain accounts: plan, office, phone, hidden flag and role at their defaults (typically most
#: accounts, which set only a name and a status).  As every column is NOT NULL, C{NOT (_PLAIN)} selects the others.
_PLAIN = "plan = '' AND office = '' AND phone = '' AND hidden = 0 AND role = 'user' AND plan_signature = ''"
_INSERT_ACCOUNT = (
    f"INSERT INTO accounts ({', '.join(_ACCOUNT_COLUMNS)}) VALUES ({', '.join('?' * len(_ACCOUNT_COLUMNS))})"
)
_UPDATE_ACCOUNT = (
    f"UPDATE accounts SET {', '.join(f'{name} = ?' for name in _ACCOUNT_COLUMNS[1:])} WHERE login = ?"
)
_CHANGE_COLUMNS = "id, at, actor_login, actor_channel, actor_peer, login, action, field, old, new"


def schema_script(name: str) -> str:
    """
    Read one SQL script shipped in C{sshfinger/store/schema/}.

    @param name: the file name, such as C{"v1.sql"}.
    """
    return files("sshfinger.store").joinpath("schema").joinpath(name).read_text(encoding="utf-8")


def split_statements(script: str) -> list[str]:
    """
    Split an SQL script into statements, each ending at a line that completes it.

    The scripts run inside the caller's transaction, which L{sqlite3.Cursor.executescript} would commit, so they
    are run one statement at a time.  A statement must end with C{;} at the end of a line.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [line for line in pending.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise ValueError(f"unterminated SQL statement: {leftover[0].strip()!r}")
    return statements


def migration_scripts(version: int | None) -> list[tuple[int, str]]:
    """
    List the scripts that bring a file from C{version} to L{SCHEMA_VERSION}.

    @param version: the file's version, or L{None} for an empty file.
    @return: (version reached, script text) pairs, in the order to run them.
    """
    steps: list[tuple[int, str]] = []
    if version is None:
        steps.append((1, schema_script("v1.sql")))
        version = 1
    for target in range(version + 1, SCHEMA_VERSION + 1):
        steps.append((target, schema_script(f"upgrade-to-v{target}.sql")))
    return steps


def _account_from_row(row: tuple, keys: Iterable[str] = ()) -> Account:
    login, real_name, status, plan, office, phone, hidden, role, updated_at, updated_by, plan_signature = row
    # Positional (fields in declaration order) and interned role and author: loading a million accounts is
    # start-up time, and repeated strings are memory.
    return Account(
        login, real_name, status, plan, office, phone, bool(hidden), intern(role), tuple(keys), updated_at,
        intern(updated_by), plan_signature,
    )  # fmt: skip


def _account_values(account: Account) -> tuple:
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
        account.plan_signature,
    )


def _change_from_row(row: tuple) -> Change:
    _id, at, actor_login, actor_channel, actor_peer, login, action, field, old, new = row
    return Change(at, Actor(actor_login, actor_channel, actor_peer), login, action, field, old, new)


@implementer(IStoreBackend)
class SQLiteBackend:
    """
    Keep the accounts in an SQLite file in WAL mode, shared safely with other processes.

    The connection is made by L{open} (on the main thread) and afterwards used only by the store's single writer
    thread, never concurrently.

    @ivar path: the database file.
    @ivar description: C{"sqlite:"} and the path.
    """

    def __init__(self, path: str, changes_keep: int = CHANGES_KEEP, busy_timeout: float = 5.0) -> None:
        """
        @param path: the database file; made if missing.
        @param changes_keep: how many of the newest C{changes} rows to keep (pruned in batches, so up to
            L{PRUNE_EVERY} more may be present).
        @param busy_timeout: seconds a write waits for another process's lock before failing with
            L{StoreUnavailable}.
        """
        if changes_keep < 1:
            raise ValueError("changes_keep must be at least 1")
        self.path = path
        self.description = f"sqlite:{path}"
        self._changes_keep = changes_keep
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._connection: sqlite3.Connection | None = None
        #: The largest change id this backend has seen or written (see L{poll}).
        self._watermark = 0
        #: Ids of changes this backend wrote past the watermark, which L{poll} must not report again.
        self._own_ids: set[int] = set()
        self._data_version: int | None = None

    # Opening and closing.

    def open(self) -> list[Account]:
        """
        See L{IStoreBackend.open}.

        @raise StoreError: as L{open_by_login} does.
        """
        return [as_account(account) for account in self.open_by_login().values()]

    def open_by_login(self) -> dict[str, Account | PlainAccount]:
        """
        See L{IStoreBackend.open_by_login}.

        @raise StoreError: with a one-line message if the file cannot be opened, is not an sshfinger database or
            was written by a newer version.
        """
        self.close()
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}") from e
        try:
            connection.execute("PRAGMA journal_mode=WAL").fetchone()
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            connection.execute("PRAGMA foreign_keys=ON")
            self._migrate(connection)
            # The accounts and the watermark come from one snapshot, and data_version from before it, so that a
            # change another process commits meanwhile is past the watermark and moves data_version: poll finds it.
            self._data_version = connection.execute("PRAGMA data_version").fetchone()[0]
            connection.execute("BEGIN")
            accounts = self._load_all(connection)
            self._watermark = self._max_change_id(connection)
            connection.execute("COMMIT")
            self._own_ids.clear()
        except sqlite3.Error as e:
            connection.close()
            raise StoreError(f"cannot open {self.path}: {e}") from e
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return accounts

    def close(self) -> None:
        """
        See L{IStoreBackend.close}.
        """
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version(connection)
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this sshfinger supports"
                    f" ({SCHEMA_VERSION}): upgrade sshfinger"
                )
            for target, script in migration_scripts(version):
                for statement in split_statements(script):
                    connection.execute(statement)
                connection.execute("UPDATE version SET version = ?", (target,))
            connection.execute("COMMIT")
        except BaseException:
            _rollback(connection)
            raise

    def _schema_version(self, connection: sqlite3.Connection) -> int | None:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        if "version" not in tables:
            raise StoreError(f"{self.path} is not an sshfinger database (it has no version table)")
        rows = connection.execute("SELECT version FROM version").fetchall()
        if len(rows) != 1 or not isinstance(rows[0][0], int):
            raise StoreError(f"{self.path} has a damaged version table")
        return rows[0][0]

    def _require(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreUnavailable(f"the store {self.path} is not open")
        return self._connection

    # Reading rows.

    @staticmethod
    def _load(connection: sqlite3.Connection, login: str) -> Account | None:
        row = connection.execute(f"{_SELECT_ACCOUNT} WHERE login = ?", (login,)).fetchone()
        if row is None:
            return None
        keys = connection.execute("SELECT line FROM account_keys WHERE login = ? ORDER BY position", (login,))
        return _account_from_row(row, (line for (line,) in keys))

    @staticmethod
    def _load_all(connection: sqlite3.Connection) -> dict[str, Account | PlainAccount]:
        """
        Read every account, by login.

        This is most of the start-up of a large store, and most of that is the sqlite3 module handing over
        columns, at a cost per column and row whether the value is empty or not.  So the plain accounts
        (L{_PLAIN}) are read from the five columns that vary, as the rows themselves (L{PlainAccount}s), and put
        in a dict without a line of Python per row (C{fetchall}, C{map} and C{zip} loop in C); the others, if
        any, are read from all ten columns as L{Account}s, their repeated strings interned.  A plain account with
        authorized keys becomes an L{Account} too.
        """
        rows = connection.execute(
            f"SELECT login, real_name, status, updated_at, updated_by FROM accounts WHERE {_PLAIN}"
        ).fetchall()
        accounts: dict[str, Account | PlainAccount] = dict(zip(map(itemgetter(0), rows), rows))
        del rows  # a second list of up to a million entries need not outlive the dict
        keys: dict[str, tuple[str, ...]] = {}
        for login, line in connection.execute("SELECT login, line FROM account_keys ORDER BY login, position"):
            keys[login] = keys.get(login, ()) + (line,)
        for login, lines in keys.items():
            plain = accounts.get(login)
            if plain is not None:
                accounts[login] = full_account(plain, lines)  # type: ignore[arg-type]
        if len(accounts) == connection.execute("SELECT count(*) FROM accounts").fetchone()[0]:
            return accounts  # all plain: spare a scan of the whole table for nothing
        new = tuple.__new__  # skips the Python frame of the generated Account.__new__: values complete, in order
        accounts.update(
            (login, new(Account, (login, real_name, status, plan, office, phone, bool(hidden), intern(role),
                                  keys.get(login, ()), updated_at, intern(updated_by), plan_signature)))
            for login, real_name, status, plan, office, phone, hidden, role, updated_at, updated_by, plan_signature
            in connection.execute(f"{_SELECT_ACCOUNT} WHERE NOT ({_PLAIN})")
        )  # fmt: skip
        return accounts

    @staticmethod
    def _max_change_id(connection: sqlite3.Connection) -> int:
        return connection.execute("SELECT coalesce(max(id), 0) FROM changes").fetchone()[0]

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._require()
        try:
            return work(connection)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot read the store: {e}") from e

    # Writing: one transaction each.

    def _write(self, work: Callable[[sqlite3.Connection], tuple[T, list[Change]]]) -> tuple[T, list[Change]]:
        """
        Run C{work} and record the changes it returns in one C{BEGIN IMMEDIATE} transaction.

        @raise StoreUnavailable: if SQLite fails; the transaction is rolled back.
        """
        connection = self._require()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result, changes = work(connection)
                previous, ids = self._record(connection, changes)
                connection.execute("COMMIT")
            except BaseException:
                _rollback(connection)
                raise
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot save change: {e}") from e
        if ids:
            if previous == self._watermark and not self._own_ids:
                self._watermark = ids[-1]
            else:
                self._own_ids.update(ids)
        return result, changes

    def _record(self, connection: sqlite3.Connection, changes: list[Change]) -> tuple[int, list[int]]:
        if not changes:
            return 0, []
        previous = self._max_change_id(connection)
        ids = []
        for change in changes:
            cursor = connection.execute(
                "INSERT INTO changes (at, actor_login, actor_channel, actor_peer, login, action, field, old, new)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.at,
                    change.actor.login,
                    change.actor.channel,
                    change.actor.peer,
                    change.login,
                    change.action,
                    change.field,
                    change.old,
                    change.new,
                ),
            )
            ids.append(cursor.lastrowid)
        interval = min(PRUNE_EVERY, self._changes_keep)
        if ids[-1] // interval != previous // interval:
            connection.execute("DELETE FROM changes WHERE id <= ?", (ids[-1] - self._changes_keep,))
        return previous, ids

    @staticmethod
    def _save_keys(connection: sqlite3.Connection, login: str, keys: tuple[str, ...]) -> None:
        connection.execute("DELETE FROM account_keys WHERE login = ?", (login,))
        connection.executemany(
            "INSERT INTO account_keys (login, position, line) VALUES (?, ?, ?)",
            [(login, position, line) for position, line in enumerate(keys)],
        )

    def create(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.create}.
        """

        def work(connection: sqlite3.Connection) -> tuple[Account, list[Change]]:
            if self._load(connection, login) is not None:
                raise AccountExists(login)
            account = Account(login).with_changes(values, actor.login, at)
            connection.execute(_INSERT_ACCOUNT, _account_values(account))
            self._save_keys(connection, login, account.keys)
            return account, diff(None, account, actor, at)

        return self._write(work)

    def update(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.update}.
        """

        def work(connection: sqlite3.Connection) -> tuple[Account, list[Change]]:
            old = self._load(connection, login)
            if old is None:
                raise NoSuchAccount(login)
            account = old.with_changes(values, actor.login, at)
            row = _account_values(account)
            connection.execute(_UPDATE_ACCOUNT, row[1:] + row[:1])
            if account.keys != old.keys:
                self._save_keys(connection, login, account.keys)
            return account, diff(old, account, actor, at)

        return self._write(work)

    def delete(self, login: str, actor: Actor, at: float) -> list[Change]:
        """
        See L{IStoreBackend.delete}.  The account's keys and shell history go with it.
        """

        def work(connection: sqlite3.Connection) -> tuple[None, list[Change]]:
            old = self._load(connection, login)
            if old is None:
                raise NoSuchAccount(login)
            connection.execute("DELETE FROM account_keys WHERE login = ?", (login,))
            connection.execute("DELETE FROM history WHERE login = ?", (login,))
            connection.execute("DELETE FROM accounts WHERE login = ?", (login,))
            return None, diff(old, None, actor, at)

        return self._write(work)[1]

    # Shell history and the audit trail.

    def history(self, login: str) -> list[str]:
        """
        See L{IStoreBackend.history}.
        """
        return self._read(
            lambda connection: [
                line for (line,) in connection.execute("SELECT line FROM history WHERE login = ? ORDER BY id", (login,))
            ]
        )

    def add_history(self, login: str, line: str, keep: int) -> None:
        """
        See L{IStoreBackend.add_history}.
        """

        def work(connection: sqlite3.Connection) -> tuple[None, list[Change]]:
            connection.execute("INSERT INTO history (login, line) VALUES (?, ?)", (login, line))
            if keep > 0:
                connection.execute(
                    "DELETE FROM history WHERE login = ? AND id NOT IN"
                    " (SELECT id FROM history WHERE login = ? ORDER BY id DESC LIMIT ?)",
                    (login, login, keep),
                )
            return None, []

        self._write(work)

    def record(self, changes: list[Change]) -> None:
        """
        See L{IStoreBackend.record}.
        """
        self._write(lambda connection: (None, list(changes)))

    def recent_changes(self, limit: int, login: str | None) -> list[Change]:
        """
        See L{IStoreBackend.recent_changes}.
        """
        if limit <= 0:
            return []

        def work(connection: sqlite3.Connection) -> list[Change]:
            if login is None:
                rows = connection.execute(f"SELECT {_CHANGE_COLUMNS} FROM changes ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = connection.execute(
                    f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE login = ? ORDER BY id DESC LIMIT ?", (login, limit)
                )
            return [_change_from_row(row) for row in reversed(rows.fetchall())]

        return self._read(work)

    # Other processes' changes.

    def poll(self) -> list[tuple[str, Account | None, list[Change]]]:
        """
        See L{IStoreBackend.poll}.

        C{PRAGMA data_version} tells cheaply whether another connection committed since the last call.  If one
        did, the C{changes} rows past the watermark (the largest change id seen), other than this backend's own,
        name the accounts to reload; the watermark then moves to the last row read.
        """

        def work(connection: sqlite3.Connection) -> list[tuple[str, Account | None, list[Change]]]:
            data_version = connection.execute("PRAGMA data_version").fetchone()[0]
            if data_version == self._data_version:
                return []
            connection.execute("BEGIN")
            try:
                rows = connection.execute(
                    f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE id > ? ORDER BY id", (self._watermark,)
                ).fetchall()
                changed: dict[str, list[Change]] = {}
                for row in rows:
                    if row[0] not in self._own_ids:
                        changed.setdefault(row[5], []).append(_change_from_row(row))
                refreshed = [(login, self._load(connection, login), changes) for login, changes in changed.items()]
                connection.execute("COMMIT")
            except BaseException:
                _rollback(connection)
                raise
            if rows:
                self._watermark = rows[-1][0]
                self._own_ids = {own for own in self._own_ids if own > self._watermark}
            self._data_version = data_version
            return refreshed

        return self._read(work)

    # Maintenance.

    def integrity_check(self) -> str:
        """
        Run C{PRAGMA integrity_check}.

        @return: C{"ok"}, or the problems found, one per line.
        """
        return self._read(
            lambda connection: "\n".join(str(row[0]) for row in connection.execute("PRAGMA integrity_check"))
        )

    def backup(self, dest_path: str) -> None:
        """
        Copy the database to C{dest_path} with SQLite's online backup API, while it stays in use.

        @raise StoreError: with a one-line message if the copy fails.
        """
        source = self._require()
        try:
            destination = sqlite3.connect(dest_path)
        except sqlite3.Error as e:
            raise StoreError(f"cannot back up to {dest_path}: {e}") from e
        try:
            source.backup(destination)
        except sqlite3.Error as e:
            raise StoreError(f"cannot back up to {dest_path}: {e}") from e
        finally:
            destination.close()


def _rollback(connection: sqlite3.Connection) -> None:
    """
    Roll back the open transaction, if any, ignoring a failure to do so (the original error matters more).
    """
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass


__all__ = ["CHANGES_KEEP", "SCHEMA_VERSION", "SQLiteBackend", "migration_scripts", "schema_script", "split_statements"]
