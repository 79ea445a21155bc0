"""
What a L{sshfinger.store.postgresql.backend.PostgreSQLBackend} offers besides L{IStoreBackend}: the maintenance
operations of L{IStoreMaintenance}, and password hashes kept with the accounts (C{--auth store}), shared by
every node and held in memory so that logins keep working while the database is away.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from sshfinger.model.account import Actor, Change
from sshfinger.model.errors import NoSuchAccount, StoreError
from sshfinger.store.postgresql.tuning import SCHEMA_VERSION

T = TypeVar("T")

#: The audit trail's new value for a password change (never the hash).
PASSWORD_SET = "(set)"
PASSWORD_REMOVED = "(removed)"


class MaintenanceMixin:
    """
    L{IStoreMaintenance} for a PostgreSQL store.
    """

    run: Callable[..., Any]
    schema_version: Callable[[psycopg.Connection[Any]], int | None]

    def check(self) -> builtins.list[str]:
        """
        See L{IStoreMaintenance.check}: the schema version, the feed's bookkeeping and the change log agree.
        """

        def work(connection: psycopg.Connection[Any]) -> list[str]:
            problems = []
            version = self.schema_version(connection)
            if version != SCHEMA_VERSION:
                problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
            head, pruned, newest, rows = connection.execute(
                "SELECT f.head, f.pruned_through, (SELECT max(seq) FROM change_log), (SELECT count(*) FROM feed)"
                " FROM feed f"
            ).fetchone()  # type: ignore[misc]
            if rows != 1:
                problems.append(f"the feed table has {rows} rows, expected 1")
            if newest is not None and newest > head:
                problems.append(f"change log holds seq {newest} beyond the feed's head {head}")
            if pruned > head:
                problems.append(f"pruned through {pruned}, beyond the head {head}")
            return problems

        return self.run(work)

    def size(self) -> int:
        """
        See L{IStoreMaintenance.size}: the database's size in bytes.
        """
        return int(self.run(lambda c: c.execute("SELECT pg_database_size(current_database())").fetchone()[0]))

    def files(self) -> builtins.list[str]:
        """
        See L{IStoreMaintenance.files}: none (the data lives on the database server).
        """
        return []

    def backup(self, destination: str) -> None:
        """
        See L{IStoreMaintenance.backup}: PostgreSQL has its own tools for this.

        @raise StoreError: always, naming them.
        """
        raise StoreError(f"back up a PostgreSQL store with pg_dump (pg_dump -Fc -f {destination} DBNAME)")

    def restore(self, source: str) -> None:
        """
        See L{IStoreMaintenance.restore}: PostgreSQL has its own tools for this.

        @raise StoreError: always, naming them.
        """
        raise StoreError(f"restore a PostgreSQL store with pg_restore (pg_restore -d DBNAME {source})")


class PasswordsMixin:
    """
    Password hashes kept in the C{accounts} table: written in a change of its own (field C{password}, the hash
    never in the audit trail), loaded at open and refreshed from the feed into L{password_hashes}.
    """

    run: Callable[..., Any]
    _write: Callable[..., Any]
    #: The bcrypt hash of every login that has one, in memory (read by the SSH checker, never blocking).
    password_hashes: dict[str, bytes]

    def cached_password_hash(self, login: str) -> bytes | None:
        """
        Return C{login}'s bcrypt hash from memory, or L{None}.  Never blocks.
        """
        return self.password_hashes.get(login.lower())

    def set_password_hash(self, login: str, hashed: bytes | None, actor: Actor, at: float) -> None:
        """
        Store (or with L{None}, remove) C{login}'s bcrypt hash; every node's memory follows through the feed.

        @raise NoSuchAccount: if there is no such account.
        @raise StoreUnavailable: if the database cannot be reached.
        """
        text = None if hashed is None else hashed.decode("ascii")

        def work(connection: psycopg.Connection[Any]) -> tuple[None, list[Change]]:
            cursor = connection.execute("UPDATE accounts SET password_hash = %s WHERE login = %s", (text, login))
            if cursor.rowcount != 1:
                raise NoSuchAccount(login)
            new = PASSWORD_SET if hashed is not None else PASSWORD_REMOVED
            return None, [Change(at, actor, login, "update", "password", None, new)]

        self._write(work)
        if hashed is None:
            self.password_hashes.pop(login, None)
        else:
            self.password_hashes[login] = hashed

    def password_hash(self, login: str) -> bytes | None:
        """
        Read C{login}'s bcrypt hash from the database, or L{None}.
        """

        def work(connection: psycopg.Connection[Any]) -> bytes | None:
            row = connection.execute("SELECT password_hash FROM accounts WHERE login = %s", (login,)).fetchone()
            return None if row is None or row[0] is None else str(row[0]).encode("ascii")

        return self.run(work)

    @staticmethod
    def load_password_hashes(
        connection: psycopg.Connection[Any], logins: builtins.list[str] | None = None
    ) -> dict[str, bytes]:
        """
        Read the hashes of every login that has one (or of C{logins} only).
        """
        query = "SELECT login, password_hash FROM accounts WHERE password_hash IS NOT NULL"
        rows = connection.execute(query + (" AND login = ANY(%s)" if logins is not None else ""),
                                  (logins,) if logins is not None else None).fetchall()  # fmt: skip
        return {login: hashed.encode("ascii") for login, hashed in rows}

    def refresh_password_hashes(self, logins: builtins.list[str]) -> None:
        """
        Re-read the hashes of C{logins} (their password changed on another node, or they were deleted).
        """
        if not logins:
            return
        fresh = self.run(lambda connection: self.load_password_hashes(connection, logins))
        for login in logins:
            hashed = fresh.get(login)
            if hashed is None:
                self.password_hashes.pop(login, None)
            else:
                self.password_hashes[login] = hashed


__all__ = ["MaintenanceMixin", "PASSWORD_REMOVED", "PASSWORD_SET", "PasswordsMixin"]
