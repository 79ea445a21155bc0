"""
L{SQLiteFeed}: the change feed of a SQLite store, read from its C{changes} table.

A change's sequence number is its row id.  Writers take SQLite's one write lock before giving out an id (see
L{sshfinger.store.sqlite.backend}), so ids follow commit order.  The feed learns of commits by polling: a timer
wakes the follower every C{poll_interval} seconds, and the follower's read (on the store's thread) first asks
C{PRAGMA data_version}, which changes only when another connection commits, so a read when nothing happened
costs one pragma.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.task import LoopingCall
from zope.interface import implementer

from sshfinger.model.account import Account, Change
from sshfinger.store.interfaces import FeedBatch, FeedGap, IChangeFeed
from sshfinger.store.sqlite.rows import CHANGE_COLUMNS, change_from_row, load_account

if TYPE_CHECKING:
    from sshfinger.store.sqlite.backend import SQLiteBackend


def head_of(connection: sqlite3.Connection) -> int:
    """
    The id of the newest change ever committed: C{AUTOINCREMENT}'s counter, which pruning does not lower.
    """
    row = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return int(row[0]) if row else 0


@implementer(IChangeFeed)
class SQLiteFeed:
    """
    The change feed over one L{SQLiteBackend}'s connection (used on the store's thread only).
    """

    def __init__(self, backend: SQLiteBackend, clock: Any, poll_interval: float) -> None:
        """
        @param backend: the backend whose connection the feed reads.
        @param clock: an L{twisted.internet.interfaces.IReactorTime} for the poll timer (L{None}: L{start} is not
            available, as in the offline tool).
        @param poll_interval: seconds between two wakes.
        """
        self._backend = backend
        self._clock = clock
        self._interval = poll_interval
        self._timer: LoopingCall | None = None
        # What the last real read saw: (data_version, the backend's commit count, the head read).
        self._seen: tuple[int, int, int] | None = None

    def forget(self) -> None:
        """
        Forget what the last read saw (the backend made a new connection, whose C{data_version} counts anew).
        """
        self._seen = None

    def start(self, wake: Callable[[], None]) -> None:
        """
        See L{IChangeFeed.start}: C{wake} is called every C{poll_interval} seconds on the reactor thread.
        """
        if self._clock is None:
            raise RuntimeError("this SQLite feed has no clock to poll with")
        self.stop()
        self._timer = LoopingCall(wake)
        self._timer.clock = self._clock
        self._timer.start(self._interval, now=False)

    def stop(self) -> None:
        """
        See L{IChangeFeed.stop}.
        """
        timer, self._timer = self._timer, None
        if timer is not None and timer.running:
            timer.stop()

    def head(self) -> int:
        """
        See L{IChangeFeed.head}.  Before the backend is open, a short-lived connection reads it (0 for a missing
        file, or one that is not a store: opening it then says what is wrong).
        """
        if self._backend._connection is not None:
            return self._backend._read(head_of)
        path = self._backend.path
        if not os.path.isfile(path):
            return 0
        try:
            connection = sqlite3.connect(path)
        except sqlite3.Error:
            return 0
        try:
            return head_of(connection)
        except sqlite3.Error:
            return 0
        finally:
            connection.close()

    def read_after(self, seq: int, limit: int) -> FeedBatch:
        """
        See L{IChangeFeed.read_after}: one read transaction, so the changes and the accounts agree.
        """
        return self._backend._read(lambda connection: self._read_after(connection, seq, limit))

    def _read_after(self, connection: sqlite3.Connection, seq: int, limit: int) -> FeedBatch:
        from sshfinger.store.sqlite.backend import rollback

        data_version = connection.execute("PRAGMA data_version").fetchone()[0]
        if self._seen == (data_version, self._backend.commits, seq):
            return FeedBatch(seq)  # nobody committed since the last read, which ended at seq
        connection.execute("BEGIN")
        try:
            pruned_through = connection.execute("SELECT pruned_through FROM feed_state").fetchone()[0]
            head = head_of(connection)
            if seq < pruned_through or seq > head:
                raise FeedGap(seq, pruned_through)
            rows = connection.execute(
                f"SELECT {CHANGE_COLUMNS} FROM changes WHERE id > ? ORDER BY id LIMIT ?", (seq, limit)
            ).fetchall()
            changes: list[tuple[int, Change]] = [(row[0], change_from_row(row)) for row in rows]
            accounts: dict[str, Account | None] = {}
            for _, change in changes:
                if change.login not in accounts:
                    accounts[change.login] = load_account(connection, change.login)
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection)
            raise
        end = changes[-1][0] if changes else seq
        self._seen = (data_version, self._backend.commits, end) if end == head else None
        return FeedBatch(end, changes, accounts)
