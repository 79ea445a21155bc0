"""
L{PostgreSQLFeed}: the L{IChangeFeed} of a PostgreSQL store.

The change log is read with plain queries (L{read_batch}); a dedicated connection C{LISTEN}s for the writers'
notifications (L{sshfinger.store.postgresql.listener.Listener}) and wakes the follower, which then reads.  A
notification is only a hint: the follower also reads on a timer and after every reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from twisted.internet.defer import Deferred
from zope.interface import implementer

from sshfinger.model.account import Account
from sshfinger.store.interfaces import FeedBatch, FeedGap, IChangeFeed
from sshfinger.store.postgresql.rows import CHANGE_COLUMNS, SELECT_ACCOUNT, account_from_row, change_from_row

if TYPE_CHECKING:
    from sshfinger.store.postgresql.backend import PostgreSQLBackend
    from sshfinger.store.postgresql.listener import Listener


def describe_error(error: BaseException) -> str:
    """
    Say what went wrong with the database in one line (libpq's messages may span several).
    """
    text = " ".join(str(error).split())
    return text or type(error).__name__


def read_batch(connection: psycopg.Connection[Any], seq: int, limit: int) -> FeedBatch:
    """
    Read at most C{limit} changes after C{seq}, and the current state of the accounts they touch, from one
    snapshot.

    @raise FeedGap: if changes after C{seq} were pruned, or C{seq} is beyond the head (another database).
    """
    with connection.transaction():
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        head, pruned = connection.execute("SELECT head, pruned_through FROM feed").fetchone()  # type: ignore[misc]
        if seq < pruned or seq > head:
            raise FeedGap(seq, pruned)
        if seq == head or limit <= 0:
            return FeedBatch(seq)
        rows = connection.execute(
            f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq > %s ORDER BY seq LIMIT %s", (seq, limit)
        ).fetchall()
        changes = [(int(row[0]), change_from_row(row)) for row in rows]
        logins = sorted({change.login for _seq, change in changes})
        accounts: dict[str, Account | None] = dict.fromkeys(logins)
        for row in connection.execute(f"{SELECT_ACCOUNT} WHERE login = ANY(%s)", (logins,)):
            accounts[row[0]] = account_from_row(row)
    return FeedBatch(changes[-1][0] if changes else seq, changes, accounts)


@implementer(IChangeFeed)
class PostgreSQLFeed:
    """
    The change feed of a L{PostgreSQLBackend}: reads through its pool, wakes through a LISTEN connection.

    @ivar listener: the running L{Listener}, or L{None} before L{start} and after L{stop}.
    """

    def __init__(self, backend: PostgreSQLBackend, reactor: Any = None) -> None:
        """
        @param backend: the store whose database this feed follows.
        @param reactor: watches the LISTEN connection and runs the timers (default: the global reactor, chosen
            when L{start} is called).
        """
        self._backend = backend
        self.reactor = reactor
        self.listener: Listener | None = None
        #: Other notification channels the LISTEN connection follows (see L{share_penalties}).
        self.channels: dict[str, Callable[[str], None]] = {}

    def start(self, wake: Callable[[], None]) -> None:
        """
        See L{IChangeFeed.start}: connect the LISTEN connection (in a thread), then wake on every notification,
        every few seconds, and after every reconnect.
        """
        from sshfinger.store.postgresql.listener import Listener

        if self.listener is not None:
            raise RuntimeError("the feed is already started")
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        backend = self._backend
        self.listener = Listener(
            lambda: backend.connect("listen"),
            wake,
            reactor,
            backend.description,
            on_state=backend.set_reachable,
            channels=self.channels,
        )
        self.listener.start()

    def stop(self) -> Deferred[None] | None:
        """
        See L{IChangeFeed.stop}.
        """
        listener, self.listener = self.listener, None
        if listener is not None:
            return listener.stop()
        return None

    def share_penalties(self, penalties: Any, run_in_thread: Callable[[Callable[[], None]], Any]) -> Any:
        """
        Share an SSH factory's per-source penalties with every node on the database (call before L{start}).

        @param penalties: the factory's L{sshfinger.ssh.penalties.SourcePenalties}.
        @param run_in_thread: runs the announcing query off the reactor thread.
        @return: the L{SharedPenalties} to put in its place.
        """
        from sshfinger.store.postgresql.penalties import FAILURES_CHANNEL, SharedPenalties

        backend = self._backend

        def publish(payload: str) -> Any:
            if not backend.reachable:
                return None  # never hold a (bcrypt) thread waiting for a database that is away

            def notify() -> None:
                backend.run(lambda c: c.execute("SELECT pg_notify(%s, %s)", (FAILURES_CHANNEL, payload)))

            return run_in_thread(notify)

        shared = SharedPenalties(penalties, publish)
        self.channels[FAILURES_CHANNEL] = shared.heard
        return shared

    def head(self) -> int:
        """
        See L{IChangeFeed.head}.
        """
        return self._backend.head()

    def read_after(self, seq: int, limit: int) -> FeedBatch:
        """
        See L{IChangeFeed.read_after}.
        """
        return self._backend.read_after(seq, limit)


__all__ = ["PostgreSQLFeed", "describe_error", "read_batch"]
