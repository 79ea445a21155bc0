"""
L{SQLiteBackend}: an L{IStoreBackend} keeping accounts, keys, shell history and the audit trail in one SQLite file.

The schema is versioned: a one-row C{version} table names the version of the file, and the SQL scripts in
C{sshfinger/store/schema/} build it.  A new file is made by running C{v1.sql} and then every
C{upgrade-to-vN.sql} in order, so the upgrade path is exercised every time; an older file is upgraded in one
transaction when it is opened.  A file that is not an sshfinger store is refused before anything is written to it.

Every write is one C{BEGIN IMMEDIATE ... COMMIT} transaction that reads the current row from the file (other
processes may share it), writes the account and records its L{Change}s in the C{changes} table, whose ids are the
change feed's sequence numbers (L{sshfinger.store.sqlite.feed}).  C{BEGIN IMMEDIATE} takes SQLite's one write lock
before anything is read or an id is given out, so writers (in any process) run one after another and the
C{AUTOINCREMENT} ids are given out in commit order: a follower reading "ids after N" never skips a change.
"""

from __future__ import annotations

import gc
import os
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from zope.interface import implementer

from sshfinger.model.account import Account, Actor, Change, diff
from sshfinger.model.errors import AccountExists, NoSuchAccount, StoreError, StoreUnavailable
from sshfinger.store.interfaces import IStoreBackend
from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES, change_size, check_retention
from sshfinger.store.sqlite.files import create_private, lock_shared, unlock
from sshfinger.store.sqlite.rows import (
    CHANGE_COLUMNS,
    INSERT_ACCOUNT,
    UPDATE_ACCOUNT,
    LazyAccounts,
    account_values,
    change_from_row,
    load_account,
    load_all,
)
from sshfinger.store.sqlite.schema import SCHEMA_VERSION, migrate, schema_version

T = TypeVar("T")

#: Accounts beyond which a loaded store is moved out of the garbage collector's sight (L{gc.freeze}).
LARGE_STORE = 10_000

@implementer(IStoreBackend)
class SQLiteBackend:
    """
    Keep the accounts in an SQLite file in WAL mode, shared safely with other processes.

    The connection is made by L{open} (on the main thread) and afterwards used only by the store's single writer
    thread, never concurrently; the change feed (L{feed}) and its reads use it on that thread too.

    @ivar path: the database file.
    @ivar description: C{"sqlite:"} and the path.
    @ivar feed: the L{sshfinger.store.sqlite.feed.SQLiteFeed} over this backend's connection.
    @ivar maintenance: the L{sshfinger.store.sqlite.maintenance.SQLiteMaintenance} of the file.
    @ivar commits: how many write transactions this backend committed (the feed's cheap "nothing new" test).
    """

    def __init__(
        self,
        path: str,
        changes_keep: int | None = None,
        busy_timeout: float = 5.0,
        changes_max_bytes: int | None = None,
        clock: Any = None,
        poll_interval: float = 0.5,
        lock: bool = True,
    ) -> None:
        """
        @param path: the database file; made (0600) if missing.
        @param changes_keep: how many of the newest audit entries (C{changes} rows) to keep, exactly; it is
            recorded in the file.  L{None} (the offline tool): what the file records, else L{CHANGES_KEEP}.
        @param busy_timeout: seconds a write waits for another process's lock before failing with
            L{StoreUnavailable}.
        @param changes_max_bytes: bytes of audit entries to keep (the newest entry is always kept); recorded, or
            L{None} as C{changes_keep}, with L{CHANGES_MAX_BYTES} as the default.
        @param clock: an L{twisted.internet.interfaces.IReactorTime} for the feed's poll (L{None} offline).
        @param poll_interval: seconds between the feed's looks at the file.
        @param lock: hold the shared store lock while open (off only for a private copy, such as a restore's).
        """
        from sshfinger.store.sqlite.feed import SQLiteFeed
        from sshfinger.store.sqlite.maintenance import SQLiteMaintenance

        check_retention(changes_keep or 1, changes_max_bytes or 1)
        self.path = path
        self.description = f"sqlite:{path}"
        self._retention = (changes_keep, changes_max_bytes)  # as given
        self._changes_keep = changes_keep or CHANGES_KEEP  # as applied (see _settle_retention)
        self._changes_max_bytes = changes_max_bytes or CHANGES_MAX_BYTES
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._connection: sqlite3.Connection | None = None
        self._lock = lock
        self._lock_fd: int | None = None
        self.commits = 0
        self.feed = SQLiteFeed(self, clock, poll_interval)
        self.maintenance = SQLiteMaintenance(self)

    # Opening and closing.

    def open(self) -> LazyAccounts:
        """
        See L{IStoreBackend.open}: the accounts come as a L{LazyAccounts}.  While they load, the cyclic garbage
        collector is paused (none of the objects can be garbage), and a large store is then moved out of its
        sight for good (L{gc.freeze}), so later collections do not walk it.

        @raise StoreError: with a one-line message if the file cannot be opened, is not an sshfinger database or
            was written by a newer version; such a file is left as it was.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            accounts = self._open()
        finally:
            if was_enabled:
                gc.enable()
        if len(accounts) > LARGE_STORE:
            gc.freeze()
        return accounts

    def _open(self) -> LazyAccounts:
        self.close()
        self._validate()
        lock_fd = lock_shared(self.path) if self._lock else None
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            unlock(lock_fd)
            raise StoreError(f"cannot open {self.path}: {e}") from e
        try:
            connection.execute("PRAGMA journal_mode=WAL").fetchone()
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            connection.execute("PRAGMA foreign_keys=ON")
            migrate(connection, self.path)
            self._settle_retention(connection)
            connection.execute("BEGIN")
            accounts = load_all(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as e:
            connection.close()
            unlock(lock_fd)
            raise StoreError(f"cannot open {self.path}: {e}") from e
        except BaseException:
            connection.close()
            unlock(lock_fd)
            raise
        self._connection = connection
        self._lock_fd = lock_fd
        self.feed.forget()
        return accounts

    def _validate(self) -> None:
        """
        Make a missing file (0600), or check that an existing one is an sshfinger store this code can open,
        reading only: a file that is refused is left byte for byte as it was.
        """
        if not os.path.exists(self.path):
            try:
                create_private(self.path)
            except FileExistsError:
                pass  # another process made it meanwhile
            except OSError as e:
                raise StoreError(f"cannot open {self.path}: {e.strerror}") from None
            return
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open {self.path}: it is a directory")
        try:
            probe = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}") from e
        try:
            version = schema_version(probe, self.path)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}") from e
        finally:
            probe.close()
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this sshfinger supports"
                f" ({SCHEMA_VERSION}): upgrade sshfinger"
            )

    def close(self) -> None:
        """
        See L{IStoreBackend.close}.
        """
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        lock_fd, self._lock_fd = self._lock_fd, None
        unlock(lock_fd)

    def _settle_retention(self, connection: sqlite3.Connection) -> None:
        """
        Record the retention given, or take the one the file records (see C{__init__}).
        """
        keep, max_bytes = self._retention
        if keep is not None or max_bytes is not None:
            connection.execute(
                "UPDATE feed_state SET keep = coalesce(?, keep), max_bytes = coalesce(?, max_bytes)", (keep, max_bytes)
            )
        stored_keep, stored_max = connection.execute("SELECT keep, max_bytes FROM feed_state").fetchone()
        self._changes_keep = stored_keep or CHANGES_KEEP
        self._changes_max_bytes = stored_max or CHANGES_MAX_BYTES

    def _require(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreUnavailable(f"the store {self.path} is not open")
        return self._connection

    # Reading rows.

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._require()
        try:
            return work(connection)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot read the store: {e}") from e

    # Writing: one transaction each.

    def _write(self, work: Callable[[sqlite3.Connection], tuple[T, list[Change]]]) -> tuple[T, list[Change]]:
        """
        Run C{work} and record the changes it returns in one C{BEGIN IMMEDIATE} transaction (see the module
        docstring for why that makes change ids follow commit order).

        @raise StoreUnavailable: if SQLite fails; the transaction is rolled back.
        """
        connection = self._require()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result, changes = work(connection)
                self._record(connection, changes)
                connection.execute("COMMIT")
            except BaseException:
                rollback(connection)
                raise
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot save change: {e}") from e
        self.commits += 1
        return result, changes

    def _record(self, connection: sqlite3.Connection, changes: list[Change]) -> None:
        """
        Insert C{changes} into the audit trail, then prune it to the newest C{changes_keep} entries and to at most
        C{changes_max_bytes} bytes (the newest entry always stays), recording how far it pruned (see the feed).
        """
        if not changes:
            return
        added = 0
        head = 0
        for change in changes:
            size = change_size(change)
            added += size
            cursor = connection.execute(
                "INSERT INTO changes (at, actor_login, actor_channel, actor_peer, login, action, field, old, new, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (change.at, change.actor.login, change.actor.channel, change.actor.peer, change.login,
                 change.action, change.field, change.old, change.new, size),
            )  # fmt: skip
            head = cursor.lastrowid or head
        pruned, total = connection.execute("SELECT pruned_through, bytes FROM feed_state").fetchone()
        total += added
        # The ids kept are a contiguous run ending at head (AUTOINCREMENT never reuses an id, and a rolled-back
        # insert gives its id back), so the newest changes_keep entries are those after head - changes_keep.
        cutoff = max(pruned, head - self._changes_keep)
        if cutoff > pruned:
            total -= connection.execute(
                "SELECT coalesce(sum(size), 0) FROM changes WHERE id > ? AND id <= ?", (pruned, cutoff)
            ).fetchone()[0]
        if total > self._changes_max_bytes:
            cursor = connection.execute(
                "SELECT id, size FROM changes WHERE id > ? AND id < ? ORDER BY id", (cutoff, head)
            )
            while total > self._changes_max_bytes and (rows := cursor.fetchmany(256)):
                for row_id, size in rows:
                    cutoff = row_id
                    total -= size
                    if total <= self._changes_max_bytes:
                        break
            cursor.close()
        if cutoff > pruned:
            connection.execute("DELETE FROM changes WHERE id <= ?", (cutoff,))
        connection.execute("UPDATE feed_state SET pruned_through = ?, bytes = ?", (max(pruned, cutoff), total))

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
            if load_account(connection, login) is not None:
                raise AccountExists(login)
            account = Account(login).with_changes(values, actor.login, at)
            connection.execute(INSERT_ACCOUNT, account_values(account))
            self._save_keys(connection, login, account.keys)
            return account, diff(None, account, actor, at)

        return self._write(work)

    def update(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.update}.
        """

        def work(connection: sqlite3.Connection) -> tuple[Account, list[Change]]:
            old = load_account(connection, login)
            if old is None:
                raise NoSuchAccount(login)
            account = old.with_changes(values, actor.login, at)
            row = account_values(account)
            connection.execute(UPDATE_ACCOUNT, row[1:] + row[:1])
            if account.keys != old.keys:
                self._save_keys(connection, login, account.keys)
            return account, diff(old, account, actor, at)

        return self._write(work)

    def delete(self, login: str, actor: Actor, at: float) -> list[Change]:
        """
        See L{IStoreBackend.delete}.  The account's keys and shell history go with it.
        """

        def work(connection: sqlite3.Connection) -> tuple[None, list[Change]]:
            old = load_account(connection, login)
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
                rows = connection.execute(f"SELECT {CHANGE_COLUMNS} FROM changes ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = connection.execute(
                    f"SELECT {CHANGE_COLUMNS} FROM changes WHERE login = ? ORDER BY id DESC LIMIT ?", (login, limit)
                )
            return [change_from_row(row) for row in reversed(rows.fetchall())]

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

    def connection(self) -> sqlite3.Connection:
        """
        The open connection (for the feed and maintenance, on the store's thread).

        @raise StoreUnavailable: if the backend is not open.
        """
        return self._require()


def rollback(connection: sqlite3.Connection) -> None:
    """
    Roll back the open transaction, if any, ignoring a failure to do so (the original error matters more).
    """
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass


__all__ = ["SQLiteBackend", "rollback"]
