"""
L{PostgreSQLBackend}: an L{IStoreBackend} keeping accounts, keys, shell history and the audit trail in a
PostgreSQL database that several nodes share.

Every write is one transaction: it takes an advisory transaction lock (so writers are serialised and sequence
order is commit order), reads the current row, writes the account, appends its changes to C{change_log} under
the next sequence numbers (kept in the one-row C{feed} table), sends a C{NOTIFY} carrying only the newest number,
and commits.  The edit is acknowledged only once C{COMMIT} has returned.

Queries go through a C{psycopg_pool} connection pool that checks a connection before handing it out, so a node
whose database restarted reconnects on its next query; connections use TCP keepalives.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from zope.interface import implementer

from sshfinger.model.account import Account, Actor, Change, diff
from sshfinger.model.errors import AccountExists, NoSuchAccount, StoreError, StoreUnavailable
from sshfinger.store.interfaces import FeedBatch, IStoreBackend, IStoreMaintenance
from sshfinger.store.lazy import LazyAccounts
from sshfinger.store.limits import CHANGES_KEEP, CHANGES_MAX_BYTES, change_size, check_retention
from sshfinger.store.postgresql.extras import MaintenanceMixin, PasswordsMixin
from sshfinger.store.postgresql.feed import PostgreSQLFeed, describe_error, read_batch
from sshfinger.store.postgresql.rows import (
    CHANGE_COLUMNS,
    LOG_CHANGES,
    PLAIN,
    PRUNE_CHANGES,
    SELECT_ACCOUNT,
    UPSERT_ACCOUNT,
    account_from_row,
    account_values,
    change_from_row,
    migration_scripts,
)
from sshfinger.store.postgresql.tuning import (
    CONNECT_OPTIONS,
    LOAD_CHUNK,
    NOTIFY_CHANNEL,
    POOL_MAX,
    POOL_TIMEOUT,
    PRUNE_EVERY,
    SCHEMA_VERSION,
    UNREACHABLE_TIMEOUT,
    WRITE_LOCK,
)
from sshfinger.store.registry import redact_spec

T = TypeVar("T")

# The pool logs every failed connection attempt through the standard library, which twistd shows on stderr once
# per retry; the feed says once that the database is unreachable and once that it is back.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


@implementer(IStoreBackend, IStoreMaintenance)
class PostgreSQLBackend(MaintenanceMixin, PasswordsMixin):
    """
    Keep the accounts in a PostgreSQL database shared by every node.

    L{open} connects, creates or upgrades the schema and loads every account; later calls come from the store's
    writer thread (or any thread: the pool is thread-safe).  L{feed} is the L{PostgreSQLFeed} over the same
    database, which the L{sshfinger.store.cached.CachedStore} follows (its own writes included).

    @ivar url: the libpq connection URL.
    @ivar description: the URL without its password.
    @ivar feed: the change feed.
    """

    def __init__(
        self,
        url: str,
        changes_keep: int = CHANGES_KEEP,
        changes_max_bytes: int = CHANGES_MAX_BYTES,
        pool_timeout: float = POOL_TIMEOUT,
        pool_max: int = POOL_MAX,
        connect_options: Mapping[str, Any] | None = None,
        reactor: Any = None,
    ) -> None:
        """
        @param url: a libpq connection URL (C{postgresql://user@host/db}, C{postgresql:///db?host=/run/postgresql},
            multi-host URLs...).
        @param changes_keep: how many of the newest changes to keep (pruned in batches of L{PRUNE_EVERY}).
        @param changes_max_bytes: bytes of changes to keep, as L{change_size} counts them (pruned on every write
            that passes it; the newest change always stays).
        @param pool_timeout: seconds a query waits for a working connection before failing.
        @param pool_max: connections the pool may open.
        @param connect_options: libpq parameters added to every connection (default L{CONNECT_OPTIONS}).
        @param reactor: the reactor the feed watches its LISTEN connection with (default: the global one).
        """
        check_retention(changes_keep, changes_max_bytes)
        self.url = url
        self.description = redact_spec(url)
        self._changes_keep = changes_keep
        self._changes_max_bytes = changes_max_bytes
        self._pool_timeout = pool_timeout
        self._pool_max = pool_max
        self.connect_options = dict(CONNECT_OPTIONS if connect_options is None else connect_options)
        self._pool: ConnectionPool | None = None
        self.feed = PostgreSQLFeed(self, reactor)
        self.password_hashes = {}
        #: The node registry as this node's last heartbeat read it (L{sshfinger.store.postgresql.nodes.NodeRow}s),
        #: or L{None} before the first one: the shell's C{nodes} command reads it without waiting.
        self.known_nodes: list[Any] | None = None
        #: Whether the feed's LISTEN connection is up: while it is not, queries wait less for a connection.
        self.reachable = True

    # Connections.

    def connect(self, purpose: str = "") -> psycopg.Connection[Any]:
        """
        Open one autocommit connection of its own (the feed's LISTEN connection, the offline tool).

        @param purpose: added to the application name the server shows (C{sshfinger-listen}).
        @raise StoreUnavailable: with libpq's reason, on one line.
        """
        options = dict(self.connect_options)
        if purpose:
            options["application_name"] = f"{options.get('application_name', 'sshfinger')}-{purpose}"
        try:
            return psycopg.connect(self.url, autocommit=True, **options)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to {self.description}: {describe_error(e)}") from e

    def set_reachable(self, reachable: bool) -> None:
        """
        The feed found the database unreachable (or back): while it is, an edit fails after
        L{UNREACHABLE_TIMEOUT} instead of waiting the pool's whole timeout.
        """
        self.reachable = reachable

    def run(self, work: Callable[[psycopg.Connection[Any]], T], what: str = "cannot read the store") -> T:
        """
        Run C{work} with a pooled connection (autocommit: C{work} opens its own transaction).

        @raise StoreUnavailable: if the database cannot be reached or fails, as C{what} and the reason.
        """
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(f"the store {self.description} is not open")
        try:
            timeout = self._pool_timeout if self.reachable else min(self._pool_timeout, UNREACHABLE_TIMEOUT)
            with pool.connection(timeout=timeout) as connection:
                return work(connection)
        except PoolTimeout as e:
            raise StoreUnavailable(f"{what}: the database {self.description} is unreachable") from e
        except psycopg.Error as e:
            raise StoreUnavailable(f"{what}: {describe_error(e)}") from e

    # Opening and closing.

    def open(self) -> LazyAccounts:
        """
        See L{IStoreBackend.open}: connect (creating or upgrading the schema) the first time, and load every
        account; called again on the store's thread to reload after a L{FeedGap}.

        @raise StoreError: with a one-line message if the database cannot be reached, is not an sshfinger
            database or was written by a newer version.
        """
        if self._pool is not None:
            accounts = self.run(self.load_all)
            self.password_hashes = self.run(self.load_password_hashes)
            return accounts
        connection = self.connect()
        try:
            self._migrate(connection)
            accounts = self.load_all(connection)
            self.password_hashes = self.load_password_hashes(connection)
        except psycopg.Error as e:
            raise StoreError(f"cannot open {self.description}: {describe_error(e)}") from e
        finally:
            connection.close()
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_max,
            kwargs={"autocommit": True, **self.connect_options},
            open=False,
            check=ConnectionPool.check_connection,
            timeout=self._pool_timeout,
            reconnect_timeout=365 * 86400.0,
            name="sshfinger",
        )
        self._pool.open(wait=False)
        return accounts

    def close(self) -> None:
        """
        See L{IStoreBackend.close}.
        """
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=1.0)

    def _migrate(self, connection: psycopg.Connection[Any]) -> None:
        with connection.transaction():
            # One node migrates; the others wait here and then find the latest version.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK + 1,))
            version = self.schema_version(connection)
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.description} has schema version {version}, newer than this sshfinger supports"
                    f" ({SCHEMA_VERSION}): upgrade sshfinger"
                )
            for target, script in migration_scripts(version):
                connection.execute(script.encode("utf-8"))
                connection.execute("UPDATE schema_version SET version = %s", (target,))

    def schema_version(self, connection: psycopg.Connection[Any]) -> int | None:
        """
        Return the database's schema version, or L{None} if it holds no sshfinger tables.

        @raise StoreError: if it holds other tables of the same names (not an sshfinger database).
        """
        version_table, accounts_table = connection.execute(
            "SELECT to_regclass('schema_version'), to_regclass('accounts')"
        ).fetchone()  # type: ignore[misc]
        if version_table is None:
            if accounts_table is not None:
                raise StoreError(f"{self.description} is not an sshfinger database (it has no schema_version table)")
            return None
        rows = connection.execute("SELECT version FROM schema_version").fetchall()
        if len(rows) != 1:
            raise StoreError(f"{self.description} has a damaged schema_version table")
        return int(rows[0][0])

    def head(self) -> int:
        """
        The feed's head (see L{IChangeFeed.head}); before L{open}, through a connection of its own (0 for a
        database sshfinger has not written yet).
        """
        if self._pool is not None:
            return int(self.run(lambda c: c.execute("SELECT head FROM feed").fetchone()[0]))  # type: ignore[index]
        connection = self.connect()
        try:
            if self.schema_version(connection) is None:
                return 0
            return int(connection.execute("SELECT head FROM feed").fetchone()[0])  # type: ignore[index]
        except psycopg.Error as e:
            raise StoreError(f"cannot open {self.description}: {describe_error(e)}") from e
        finally:
            connection.close()

    @staticmethod
    def load_all(connection: psycopg.Connection[Any]) -> LazyAccounts:
        """
        Read every account, by login, from one snapshot.  Plain accounts come as the rows themselves (see
        L{LazyAccounts}), put in the dict without a line of Python per row, in chunks.
        """
        with connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            accounts = LazyAccounts()
            # A server-side cursor read in chunks: the whole result never sits in libpq's memory at once.
            with connection.cursor(name="sshfinger_load") as cursor:
                cursor.execute(f"SELECT login, real_name, status, updated_at, updated_by FROM accounts WHERE {PLAIN}")
                while rows := cursor.fetchmany(LOAD_CHUNK):
                    accounts.update(zip(map(itemgetter(0), rows), rows))
            del rows
            for row in connection.execute(f"{SELECT_ACCOUNT} WHERE NOT ({PLAIN})"):
                accounts[row[0]] = account_from_row(row)
        return accounts

    # Writing: one transaction each.

    def _write(self, work: Callable[[psycopg.Connection[Any]], tuple[T, list[Change]]]) -> tuple[T, list[Change]]:
        def transaction(connection: psycopg.Connection[Any]) -> tuple[T, list[Change], list[int]]:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                result, changes = work(connection)
                seqs = self._log(connection, changes)
            return result, changes, seqs

        result, changes, _seqs = self.run(transaction, "cannot save change")
        return result, changes

    def _log(self, connection: psycopg.Connection[Any], changes: list[Change]) -> list[int]:
        """
        Append C{changes} to the change log under the next sequence numbers and notify the followers, in one
        statement (one round trip); prune by count now and then, and by size whenever the log passes it.
        """
        if not changes:
            return []
        sizes = [change_size(c) for c in changes]
        columns = list(zip(*(
            (c.at, c.actor.login, c.actor.channel, c.actor.peer, c.login, c.action, c.field, c.old, c.new)
            for c in changes
        )))  # fmt: skip
        parameters = (len(changes), sum(sizes), len(changes), *map(list, columns), sizes, NOTIFY_CHANNEL)
        head, total, _ = connection.execute(LOG_CHANGES, parameters).fetchone()  # type: ignore[misc]
        first = head - len(changes) + 1
        keep = self._changes_keep
        through = 0
        # A small log (under PRUNE_EVERY) is kept exact; a large one is pruned each time the head crosses a
        # multiple of PRUNE_EVERY (it then holds between keep and keep + PRUNE_EVERY changes).
        if head > keep and (keep < PRUNE_EVERY or head // PRUNE_EVERY != (first - 1) // PRUNE_EVERY):
            through = head - keep
        if total > self._changes_max_bytes:
            through = max(through, self._byte_cutoff(connection, head, total))
        if through:
            connection.execute(PRUNE_CHANGES, (through, through))
        return list(range(first, head + 1))

    def _byte_cutoff(self, connection: psycopg.Connection[Any], head: int, total: int) -> int:
        """
        The newest sequence number to prune so that the log (of C{total} bytes) keeps at most
        C{changes_max_bytes}, oldest first, never the head.
        """
        cutoff = 0
        while total > self._changes_max_bytes:
            rows = connection.execute(
                "SELECT seq, size FROM change_log WHERE seq > %s AND seq < %s ORDER BY seq LIMIT 256", (cutoff, head)
            ).fetchall()
            if not rows:
                break
            for seq, size in rows:
                cutoff, total = seq, total - size
                if total <= self._changes_max_bytes:
                    break
        return cutoff

    @staticmethod
    def _load(connection: psycopg.Connection[Any], login: str) -> Account | None:
        row = connection.execute(f"{SELECT_ACCOUNT} WHERE login = %s", (login,)).fetchone()
        return None if row is None else account_from_row(row)

    def create(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.create}.
        """

        def work(connection: psycopg.Connection[Any]) -> tuple[Account, list[Change]]:
            if self._load(connection, login) is not None:
                raise AccountExists(login)
            account = Account(login).with_changes(values, actor.login, at)
            connection.execute(UPSERT_ACCOUNT, account_values(account))
            return account, diff(None, account, actor, at)

        return self._write(work)

    def update(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        See L{IStoreBackend.update}.
        """

        def work(connection: psycopg.Connection[Any]) -> tuple[Account, list[Change]]:
            old = self._load(connection, login)
            if old is None:
                raise NoSuchAccount(login)
            account = old.with_changes(values, actor.login, at)
            connection.execute(UPSERT_ACCOUNT, account_values(account))
            return account, diff(old, account, actor, at)

        return self._write(work)

    def delete(self, login: str, actor: Actor, at: float) -> list[Change]:
        """
        See L{IStoreBackend.delete}.  The account's shell history goes with it.
        """

        def work(connection: psycopg.Connection[Any]) -> tuple[None, list[Change]]:
            old = self._load(connection, login)
            if old is None:
                raise NoSuchAccount(login)
            connection.execute("DELETE FROM history WHERE login = %s", (login,))
            connection.execute("DELETE FROM accounts WHERE login = %s", (login,))
            return None, diff(old, None, actor, at)

        changes = self._write(work)[1]
        self.password_hashes.pop(login, None)
        return changes

    # Shell history and the audit trail.

    def history(self, login: str) -> builtins.list[str]:
        """
        See L{IStoreBackend.history}.
        """
        return self.run(
            lambda connection: [
                line
                for (line,) in connection.execute("SELECT line FROM history WHERE login = %s ORDER BY id", (login,))
            ]
        )

    def add_history(self, login: str, line: str, keep: int) -> None:
        """
        See L{IStoreBackend.add_history}.
        """

        def work(connection: psycopg.Connection[Any]) -> None:
            with connection.transaction():
                connection.execute("INSERT INTO history (login, line) VALUES (%s, %s)", (login, line))
                if keep > 0:
                    connection.execute(
                        "DELETE FROM history WHERE login = %s AND id NOT IN"
                        " (SELECT id FROM history WHERE login = %s ORDER BY id DESC LIMIT %s)",
                        (login, login, keep),
                    )

        self.run(work, "cannot save history")

    def record(self, changes: builtins.list[Change]) -> None:
        """
        See L{IStoreBackend.record}.
        """
        self._write(lambda connection: (None, list(changes)))

    def recent_changes(self, limit: int, login: str | None) -> builtins.list[Change]:
        """
        See L{IStoreBackend.recent_changes}.
        """
        if limit <= 0:
            return []

        def work(connection: psycopg.Connection[Any]) -> list[Change]:
            if login is None:
                rows = connection.execute(
                    f"SELECT {CHANGE_COLUMNS} FROM change_log ORDER BY seq DESC LIMIT %s", (limit,)
                ).fetchall()
            else:
                rows = connection.execute(
                    f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE login = %s ORDER BY seq DESC LIMIT %s",
                    (login, limit),
                ).fetchall()
            return [change_from_row(row) for row in reversed(rows)]

        return self.run(work)

    # The node registry.

    def node_heartbeat(self, store: Any, name: str, host_keys: builtins.list[str]) -> Any:
        """
        Return the service that registers this node as C{name} serving C{host_keys} (fingerprints) and keeps
        its row fresh while it runs (see L{sshfinger.store.postgresql.nodes.NodeHeartbeat}).

        @param store: the cached view over this backend (its C{seq} is the node's progress).
        """
        from sshfinger.store.postgresql.nodes import NodeHeartbeat

        reactor = self.feed.reactor
        if reactor is None:
            from twisted.internet import reactor
        return NodeHeartbeat(self, lambda: int(store.seq), name, host_keys, reactor)

    def doctor_findings(self) -> builtins.list[tuple[str, str]]:
        """
        What C{sshfinger doctor} adds about this open store: the node registry's warnings.
        """
        from sshfinger.store.postgresql.nodes import registry_findings

        return registry_findings(self)

    # Following the feed.

    def read_after(self, seq: int, limit: int) -> FeedBatch:
        """
        Read the feed (see L{PostgreSQLFeed.read_after}) through the pool, and refresh the password hashes in
        memory of the logins whose password changed or that were created or deleted.
        """
        batch = self.run(lambda connection: read_batch(connection, seq, limit))
        touched = {
            change.login
            for _seq, change in batch.changes
            if change.field == "password" or change.action in ("create", "delete")
        }
        self.refresh_password_hashes(sorted(touched))
        return batch


__all__ = ["PostgreSQLBackend"]
