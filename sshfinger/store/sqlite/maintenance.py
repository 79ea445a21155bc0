"""
L{SQLiteMaintenance}: backup, restore, integrity check and size of a SQLite store, for the offline tool.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from zope.interface import implementer

from sshfinger.model.errors import StoreError
from sshfinger.store.interfaces import IStoreMaintenance
from sshfinger.store.sqlite.files import create_private, journal_paths, lock_exclusive, unlock
from sshfinger.store.sqlite.schema import SCHEMA_VERSION, schema_version

T = TypeVar("T")

if TYPE_CHECKING:
    from sshfinger.store.sqlite.backend import SQLiteBackend


@implementer(IStoreMaintenance)
class SQLiteMaintenance:
    """
    Maintenance of the file of one L{SQLiteBackend}.  L{backup}, L{check} and L{size} open the backend if it is
    not open (and leave it as they found it); L{restore} needs it, and every other process, closed.
    """

    def __init__(self, backend: SQLiteBackend) -> None:
        """
        @param backend: the backend of the store.
        """
        self._backend = backend

    def _with_open(self, work: Callable[[sqlite3.Connection], T]) -> T:
        backend = self._backend
        opened = backend._connection is None
        if opened:
            backend.open()
        try:
            return work(backend.connection())
        finally:
            if opened:
                backend.close()

    def backup(self, destination: str) -> None:
        """
        See L{IStoreMaintenance.backup}: SQLite's online backup API, while the store stays in use; the copy is
        created 0600 and must not exist yet.

        @raise StoreError: with one line if the copy cannot be made.
        """
        try:
            create_private(destination)
        except OSError as e:
            raise StoreError(f"cannot back up to {destination}: {e.strerror}") from None

        def copy(source: sqlite3.Connection) -> None:
            try:
                target = sqlite3.connect(destination)
            except sqlite3.Error as e:
                raise StoreError(f"cannot back up to {destination}: {e}") from e
            try:
                source.backup(target)
            except sqlite3.Error as e:
                raise StoreError(f"cannot back up to {destination}: {e}") from e
            finally:
                target.close()

        try:
            self._with_open(copy)
        except BaseException:
            os.remove(destination)
            raise

    def restore(self, source: str) -> None:
        """
        See L{IStoreMaintenance.restore}: with the store's exclusive lock held (refused while any process has it
        open), the backup is copied to a private file beside the store, opened (upgraded if older) and checked,
        then renamed over the store.
        """
        from sshfinger.store.sqlite.backend import SQLiteBackend

        path = self._backend.path
        if not os.path.isfile(source):
            raise StoreError(f"no backup file {source}")
        self._backend.close()
        lock_fd = lock_exclusive(path)
        temp = path + ".restore"
        try:
            for leftover in [temp, *journal_paths(temp)]:
                if os.path.exists(leftover):
                    os.remove(leftover)
            copy = SQLiteBackend(temp, lock=False)
            try:
                probe = _open_backup(source)
                try:
                    create_private(temp)
                    target = sqlite3.connect(temp)
                    try:
                        probe.backup(target)
                    finally:
                        target.close()
                except (OSError, sqlite3.Error) as e:
                    raise StoreError(f"cannot copy {source}: {e}") from e
                finally:
                    probe.close()
                copy.open()
                problems = _integrity(copy.connection())
                if problems:
                    raise StoreError(f"{source} fails the integrity check: {problems[0]}")
            finally:
                copy.close()
            for leftover in journal_paths(path):
                if os.path.exists(leftover):
                    os.remove(leftover)  # the replaced store's; no process has it open
            os.replace(temp, path)
        except BaseException:
            for leftover in [temp, *journal_paths(temp)]:
                if os.path.exists(leftover):
                    os.remove(leftover)
            raise
        finally:
            unlock(lock_fd)

    def check(self) -> list[str]:
        """
        See L{IStoreMaintenance.check}: C{PRAGMA integrity_check}.
        """
        return self._with_open(_integrity)

    def size(self) -> int:
        """
        See L{IStoreMaintenance.size}: the file and its write-ahead log.
        """
        return sum(os.path.getsize(name) for name in self.files())

    def files(self) -> list[str]:
        """
        See L{IStoreMaintenance.files}: the store and its journal files that exist.
        """
        path = self._backend.path
        return [name for name in [path, *journal_paths(path)] if os.path.exists(name)]


def _open_backup(source: str) -> sqlite3.Connection:
    """
    Connect to a backup file after checking, reading only, that it is a non-empty sshfinger store this code can
    open.

    @raise StoreError: with one line, if it is not.
    """
    try:
        connection = sqlite3.connect(source)
    except sqlite3.Error as e:
        raise StoreError(f"cannot read {source}: {e}") from e
    try:
        version = schema_version(connection, source)
    except sqlite3.Error as e:
        connection.close()
        raise StoreError(f"{source} is not a backup: {e}") from e
    except BaseException:
        connection.close()
        raise
    if version is None or version > SCHEMA_VERSION:
        connection.close()
        why = "it is empty" if version is None else f"its schema version {version} is newer than this sshfinger's"
        raise StoreError(f"{source} cannot be restored: {why}")
    return connection


def _integrity(connection: sqlite3.Connection) -> list[str]:
    try:
        rows = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.Error as e:
        return [str(e)]
    return [] if rows == ["ok"] else rows
