"""
The PostgreSQL store on a real, throwaway PostgreSQL (L{tests.pgcluster}): the shared store suite, the change
feed's contract (several stores on one database follow each other in order, none skipped, interleaved writers,
a follower that reconnects, one behind the horizon), the LISTEN connection and the errors an operator sees.

Skipped, with the reason, only when PostgreSQL or psycopg is missing or the cluster cannot start.
"""

from __future__ import annotations

import threading
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from sshfinger.model.account import Change
from sshfinger.model.errors import StoreError, StoreUnavailable
from sshfinger.store.cached import CachedStore
from sshfinger.store.interfaces import FeedGap, IChangeFeed, IStoreBackend, IStoreMaintenance
from sshfinger.store.limits import change_size
from sshfinger.store.postgresql.tuning import SCHEMA_VERSION
from tests.pgcluster import shared_cluster
from tests.unit.test_store import ALICE, ROOT, StoreTestsMixin


def new_backend(url: str | None = None, **options: Any) -> Any:
    """
    Make a backend on a new database of the shared cluster (or on C{url}).

    @raise SkipTest: if PostgreSQL cannot be used here.
    """
    try:
        from sshfinger.store.postgresql.backend import PostgreSQLBackend
    except ImportError as e:
        raise SkipTest(f"the postgresql extra is not installed: {e}") from None
    return PostgreSQLBackend(url or shared_cluster().new_database(), **options)


class PostgreSQLStoreTests(StoreTestsMixin, SynchronousTestCase):
    """
    The shared store suite over a L{PostgreSQLBackend}, plus persistence across reopening.
    """

    def make_backend(self, changes_keep: int | None = None, changes_max_bytes: int | None = None) -> IStoreBackend:
        """
        Make a backend on a new database (the first call in a test), or another one on the same database.
        """
        limits = {"changes_keep": changes_keep, "changes_max_bytes": changes_max_bytes}
        options = {name: value for name, value in limits.items() if value is not None}
        backend = new_backend(getattr(self, "url", None), **options)
        self.url = backend.url
        return backend  # type: ignore[no-any-return]

    def test_description(self) -> None:
        """
        The description is the URL (without a password), and the backend is its own maintenance provider.
        """
        self.assertEqual(self.store.description, self.url)
        self.assertTrue(verifyObject(IStoreMaintenance, self.backend))
        self.assertTrue(verifyObject(IChangeFeed, self.backend.feed))  # type: ignore[attr-defined]

    def test_maintenance(self) -> None:
        """
        The integrity check finds nothing wrong with a used database, the size is that of a real database, and
        backup and restore name PostgreSQL's own tools.
        """
        self.create("alice")
        maintenance: Any = self.backend
        self.assertEqual(maintenance.check(), [])
        self.assertGreater(maintenance.size(), 1_000_000)
        self.assertIn("pg_dump", str(self.assertRaises(StoreError, maintenance.backup, "/tmp/x")))
        self.assertIn("pg_restore", str(self.assertRaises(StoreError, maintenance.restore, "/tmp/x")))

    def test_password_hash(self) -> None:
        """
        A password hash is kept with the account and seen by another backend on the same database.
        """
        self.create("alice")
        backend: Any = self.backend
        self.assertIsNone(backend.password_hash("alice"))
        backend.set_password_hash("alice", b"$2b$04$hash", ROOT, 1.0)
        other = new_backend(self.url)
        other.open()
        self.addCleanup(other.close)
        self.assertEqual(other.password_hash("alice"), b"$2b$04$hash")
        self.assertEqual(other.cached_password_hash("ALICE"), b"$2b$04$hash")


class FeedTests(SynchronousTestCase):
    """
    The change feed's contract: stores on one database see each other's changes in commit order, none skipped.
    """

    def setUp(self) -> None:
        """
        Open two stores, A and B, on one new database.
        """
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.url = shared_cluster().new_database()
        self.a = self.open_store()
        self.b = self.open_store()

    def open_store(self, **options: Any) -> CachedStore:
        """
        Open one more store on the database.
        """
        store = CachedStore(new_backend(self.url, **options), self.clock.seconds)
        store.open()
        self.addCleanup(store.close)
        return store

    def test_two_stores_follow_each_other(self) -> None:
        """
        What A commits B sees after catching up, with its changes told to B's subscribers in order, and the other way
        round; a store does not hear of its own writes twice.
        """
        heard_a: list[Change] = []
        heard_b: list[Change] = []
        self.a.subscribe(heard_a.append)
        self.b.subscribe(heard_b.append)
        self.successResultOf(self.a.create("alice", ROOT, {"status": "in"}))
        self.assertEqual(self.successResultOf(self.b.catch_up()), 2)  # the create and its status
        self.assertEqual(self.b.peek("alice"), self.a.peek("alice"))
        self.successResultOf(self.b.update("alice", {"status": "out"}, ALICE))
        self.successResultOf(self.b.delete("alice", ROOT))
        self.successResultOf(self.a.catch_up())
        self.assertIsNone(self.a.peek("alice"))
        self.assertEqual(heard_a, heard_b)
        self.assertEqual([c.action for c in heard_a], ["create", "update", "update", "delete"])
        self.assertEqual(self.successResultOf(self.a.catch_up()), 0)
        self.assertEqual(self.successResultOf(self.b.catch_up()), 0)

    def test_read_after(self) -> None:
        """
        The feed hands out every change after a sequence number, numbered 1, 2, 3... in commit order, in
        batches of the size asked, with the current state of the accounts they touch; the head is the last one.
        """
        feed: Any = self.a.backend.feed  # type: ignore[attr-defined]
        self.assertEqual(feed.head(), 0)
        self.successResultOf(self.a.create("alice", ROOT, {"status": "1"}))
        self.successResultOf(self.b.create("bob", ROOT))
        self.successResultOf(self.a.update("alice", {"status": "2"}, ROOT))
        self.assertEqual(feed.head(), 4)
        first = feed.read_after(0, 3)
        self.assertEqual([seq for seq, _ in first.changes], [1, 2, 3])
        self.assertEqual(first.head, 3)
        self.assertEqual(first.accounts["alice"].status, "2")
        rest = feed.read_after(first.head, 3)
        self.assertEqual([(seq, c.login, c.new) for seq, c in rest.changes], [(4, "alice", "2")])
        self.assertEqual(feed.read_after(4, 3).changes, [])
        self.assertEqual(feed.read_after(4, 3).head, 4)
        self.successResultOf(self.b.delete("bob", ROOT))
        self.assertEqual(dict(feed.read_after(4, 10).accounts), {"bob": None})
        self.assertEqual(
            [c for _, c in feed.read_after(0, 100).changes], self.successResultOf(self.a.recent_changes(100))
        )

    def test_interleaved_writers(self) -> None:
        """
        Four writers on four connections commit at once while a reader follows the feed: the reader sees every
        sequence number exactly once, in order, and every write; both stores converge.
        """
        for login in ("w0", "w1", "w2", "w3"):
            self.successResultOf(self.a.create(login, ROOT))
        writers = [new_backend(self.url) for _ in range(4)]
        for backend in writers:
            backend.open()
            self.addCleanup(backend.close)
        reader: Any = self.b.backend.feed  # type: ignore[attr-defined]
        start = reader.head()
        done = threading.Event()
        seen: list[int] = []

        def write(index: int) -> None:
            for n in range(40):
                writers[index].update(f"w{index}", {"status": str(n)}, ROOT, float(n))

        def follow() -> None:
            last = start
            while True:
                finished = done.is_set()
                batch = reader.read_after(last, 7)
                seen.extend(seq for seq, _ in batch.changes)
                last = batch.head
                if finished and not batch.changes:
                    return

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        follower = threading.Thread(target=follow)
        follower.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        follower.join()
        self.assertEqual(seen, list(range(start + 1, start + 161)))
        self.successResultOf(self.a.catch_up())
        self.successResultOf(self.b.catch_up())
        for index in range(4):
            self.assertEqual(self.a.peek(f"w{index}").status, "39")  # type: ignore[union-attr]
            self.assertEqual(self.b.peek(f"w{index}"), self.a.peek(f"w{index}"))

    def test_same_field_at_once(self) -> None:
        """
        Two stores edit one field at once: both edits are in the audit trail, in order, each with the value it
        replaced, and both stores end with the last one.
        """
        self.successResultOf(self.a.create("alice", ROOT, {"status": "0"}))
        self.successResultOf(self.b.catch_up())
        writers = [new_backend(self.url) for _ in range(2)]
        for backend in writers:
            backend.open()
            self.addCleanup(backend.close)
        threads = [
            threading.Thread(
                target=lambda b=b, i=i: [b.update("alice", {"status": f"{i}-{n}"}, ROOT, 1.0) for n in range(20)]
            )
            for i, b in enumerate(writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        trail = [c for c in self.successResultOf(self.a.recent_changes(1000, "alice")) if c.field == "status"]
        self.assertEqual(len(trail), 41)
        for before, after in zip(trail, trail[1:]):
            self.assertEqual(after.old, before.new)
        self.successResultOf(self.a.catch_up())
        self.successResultOf(self.b.catch_up())
        self.assertEqual(self.a.peek("alice").status, trail[-1].new)  # type: ignore[union-attr]
        self.assertEqual(self.b.peek("alice"), self.a.peek("alice"))

    def test_reconnecting_follower(self) -> None:
        """
        B's connections are killed by the server while A commits: B's next poll reconnects and finds every
        change A made meanwhile.
        """
        self.successResultOf(self.a.create("alice", ROOT))
        self.successResultOf(self.b.catch_up())
        database = self.url.split("/")[3].split("?")[0]
        killed = shared_cluster().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        self.assertTrue(killed)
        for n in range(5):
            self.successResultOf(self.a.update("alice", {"status": str(n)}, ROOT))
        self.successResultOf(self.a.create("bob", ROOT))
        heard: list[Change] = []
        self.b.subscribe(heard.append)
        self.successResultOf(self.b.catch_up())
        self.assertEqual(self.b.peek("alice").status, "4")  # type: ignore[union-attr]
        self.assertIsNotNone(self.b.peek("bob"))
        self.assertEqual([c.new for c in heard if c.field == "status"], ["0", "1", "2", "3", "4"])

    def test_behind_the_horizon(self) -> None:
        """
        A follower whose next change was pruned (L{FeedGap}) reloads every account as it catches up, says so in
        the log, and follows on from there.
        """
        writer = self.open_store(changes_keep=5)
        follower_store = self.open_store()
        self.successResultOf(writer.create("alice", ROOT))
        self.successResultOf(writer.create("bob", ROOT))
        for n in range(12):
            self.successResultOf(writer.update("alice", {"status": str(n)}, ROOT))
        self.successResultOf(writer.delete("bob", ROOT))
        self.assertRaises(FeedGap, writer.backend.feed.read_after, 0, 10)  # type: ignore[attr-defined]

        logged: list[dict[str, Any]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.successResultOf(follower_store.catch_up())
        self.assertEqual(follower_store.peek("alice").status, "11")  # type: ignore[union-attr]
        self.assertIsNone(follower_store.peek("bob"))
        self.assertTrue(any("reloaded" in event.get("log_format", "") for event in logged))
        self.successResultOf(writer.update("alice", {"status": "after"}, ROOT))
        self.successResultOf(follower_store.catch_up())
        self.assertEqual(follower_store.peek("alice").status, "after")  # type: ignore[union-attr]

    def test_password_hash_follows(self) -> None:
        """
        A password hash set through A is in B's memory after B follows the feed (and gone once A removes it, or
        deletes the account); the audit trail says the password changed, never the hash.
        """
        self.successResultOf(self.a.create("alice", ROOT))
        self.successResultOf(self.b.catch_up())
        a: Any = self.a.backend
        b: Any = self.b.backend
        a.set_password_hash("alice", b"$2b$04$first", ALICE, 5.0)
        self.assertIsNone(b.cached_password_hash("alice"))
        self.successResultOf(self.b.catch_up())
        self.assertEqual(b.cached_password_hash("alice"), b"$2b$04$first")
        trail = self.successResultOf(self.b.recent_changes(1, "alice"))
        self.assertEqual((trail[0].field, trail[0].old, trail[0].new), ("password", None, "(set)"))
        a.set_password_hash("alice", None, ALICE, 6.0)
        self.successResultOf(self.b.catch_up())
        self.assertIsNone(b.cached_password_hash("alice"))
        a.set_password_hash("alice", b"$2b$04$again", ALICE, 7.0)
        self.successResultOf(self.b.catch_up())
        self.successResultOf(self.b.delete("alice", ROOT))
        self.assertIsNone(b.cached_password_hash("alice"))
        self.successResultOf(self.a.catch_up())
        self.assertIsNone(a.cached_password_hash("alice"))

    def test_other_database_is_a_gap(self) -> None:
        """
        Asking for changes after a sequence number beyond the head (the database was replaced) is a gap too.
        """
        self.assertRaises(FeedGap, self.a.backend.feed.read_after, 50, 10)  # type: ignore[attr-defined]


class OpenErrorTests(SynchronousTestCase):
    """
    What an operator sees when the database is not what it should be.
    """

    def test_unreachable(self) -> None:
        """
        A server that is not there: one line naming the database.
        """
        shared_cluster()
        backend = new_backend("postgresql:///nothing?host=/nonexistent&connect_timeout=1")
        error = self.assertRaises(StoreError, backend.open)
        self.assertIn("cannot connect to postgresql:///nothing", str(error))
        self.assertNotIn("\n", str(error))

    def test_not_sshfinger(self) -> None:
        """
        A database with an unrelated C{accounts} table is refused, and left alone.
        """
        url = shared_cluster().new_database()
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE accounts (id int)")
        error = self.assertRaises(StoreError, new_backend(url).open)
        self.assertIn("not an sshfinger database", str(error))

    def test_newer_version(self) -> None:
        """
        A database written by a newer sshfinger is refused with the versions named.
        """
        url = shared_cluster().new_database()
        backend = new_backend(url)
        backend.open()
        backend.close()
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("UPDATE schema_version SET version = 99")
        error = self.assertRaises(StoreError, new_backend(url).open)
        self.assertIn(f"schema version 99, newer than this sshfinger supports ({SCHEMA_VERSION})", str(error))

    def test_password_redacted(self) -> None:
        """
        A password in the URL never shows in the description.
        """
        shared_cluster()
        backend = new_backend("postgresql://sshfinger:secret@db.example/sshfinger")
        self.assertNotIn("secret", backend.description)
        self.assertIn("db.example", backend.description)

    def test_closed(self) -> None:
        """
        A closed backend refuses writes with L{StoreUnavailable}.
        """
        backend = new_backend()
        self.assertRaises(StoreUnavailable, backend.update, "alice", {}, ROOT, 1.0)


class ListenTests(TestCase):
    """
    The LISTEN connection and the store service on the real reactor: a commit on one node wakes the other at
    once, and a killed LISTEN connection comes back and catches up.
    """

    timeout = 30

    @inlineCallbacks
    def test_service_follows(self) -> Any:
        """
        Two store services on one database: what one commits, the other's memory shows within a fraction of a
        second (well before the timer would read); after the other's LISTEN backend is terminated it
        reconnects and catches up, and says so in the log once.
        """
        from sshfinger.store.service import make_store

        url = shared_cluster().new_database()
        a = make_store(url, global_reactor)
        b = make_store(url, global_reactor)
        for service in (a, b):
            service.startService()
            self.addCleanup(service.stopService)
        yield self.until(lambda: b.store.backend.feed.listener.connected)
        started = global_reactor.seconds()
        yield a.store.create("alice", ROOT, {"status": "hello"})
        yield self.until(lambda: b.store.peek("alice") is not None)
        self.assertLess(global_reactor.seconds() - started, 1.0)

        shared_cluster().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sshfinger-listen'"
            f" AND datname = '{url.split('/')[3].split('?')[0]}'"
        )
        yield self.until(lambda: not b.store.backend.feed.listener.connected)
        yield a.store.update("alice", {"status": "while away"}, ROOT)
        yield self.until(lambda: b.store.backend.feed.listener.connected)
        yield self.until(lambda: b.store.peek("alice").status == "while away")  # type: ignore[union-attr]

    @inlineCallbacks
    def test_shared_penalties(self) -> Any:
        """
        Failed logins counted on node A are counted on node B too (through NOTIFY): after ten failures from one
        source on A, B refuses it as well; A does not count its own announcements twice.
        """
        from sshfinger.ssh.penalties import SourcePenalties
        from sshfinger.store.service import make_store

        url = shared_cluster().new_database()
        a = make_store(url, global_reactor)
        b = make_store(url, global_reactor)
        run = lambda f: deferToThread(f)  # noqa: E731
        shared_a = a.store.backend.feed.share_penalties(SourcePenalties(global_reactor), run)
        shared_b = b.store.backend.feed.share_penalties(SourcePenalties(global_reactor), run)
        for service in (a, b):
            service.startService()
            self.addCleanup(service.stopService)
        yield self.until(lambda: a.store.backend.feed.listener.connected and b.store.backend.feed.listener.connected)
        for _ in range(9):
            self.assertEqual(shared_a.failed("192.0.2.7"), 0.0)
        yield deferLater(global_reactor, 0.3, lambda: None)
        self.assertEqual(shared_a.blocked("192.0.2.7"), 0.0)
        self.assertEqual(shared_b.blocked("192.0.2.7"), 0.0)
        self.assertGreater(shared_a.failed("192.0.2.7"), 0.0)
        yield self.until(lambda: shared_b.blocked("192.0.2.7") > 0)
        self.assertEqual(shared_b.blocked("192.0.2.8"), 0.0)

    @inlineCallbacks
    def test_half_open(self) -> Any:
        """
        A LISTEN connection whose server stops answering (its backend process frozen with SIGSTOP, as a
        half-open TCP connection behaves) is dropped when a liveness query goes unanswered, and replaced by a
        new one, which wakes the follower.
        """
        import os
        import signal

        from sshfinger.store.postgresql.listener import Listener

        if os.environ.get("SSHFINGER_TEST_PG"):
            raise SkipTest("freezes a server process: needs the throwaway cluster")
        backend = new_backend()
        backend.open()
        self.addCleanup(backend.close)
        wakes: list[float] = []
        states: list[bool] = []
        listener = Listener(lambda: backend.connect("listen"), lambda: wakes.append(1), global_reactor,
                            backend.description, interval=0.2, on_state=states.append, liveness_timeout=0.5)  # fmt: skip
        listener.start()
        self.addCleanup(listener.stop)
        yield self.until(lambda: listener.connected)
        database = backend.url.split("/")[3].split("?")[0]
        query = (
            f"SELECT pid FROM pg_stat_activity WHERE application_name = 'sshfinger-listen' AND datname = '{database}'"
        )
        [(frozen,)] = shared_cluster().execute(query)
        os.kill(frozen, signal.SIGSTOP)
        self.addCleanup(lambda: (os.kill(frozen, signal.SIGCONT), shared_cluster().execute(
            f"SELECT pg_terminate_backend({frozen})")))  # fmt: skip
        yield self.until(lambda: states[:1] == [False])
        yield self.until(lambda: states == [False, True] and listener.connected)
        pids = {pid for (pid,) in shared_cluster().execute(query)}
        self.assertIn(frozen, pids)  # still there, frozen: the node did not wait for it
        self.assertEqual(len(pids), 2)
        before = len(wakes)
        yield self.until(lambda: len(wakes) > before)

    @inlineCallbacks
    def until(self, condition: Any, timeout: float = 10.0) -> Any:
        """
        Wait (on the reactor) until C{condition()} holds.
        """
        deadline = global_reactor.seconds() + timeout
        while not condition():
            if global_reactor.seconds() > deadline:
                self.fail("condition not met in time")
            yield deferLater(global_reactor, 0.01, lambda: None)

    def test_feed_interface(self) -> None:
        """
        The feed provides L{IChangeFeed}.
        """
        self.assertTrue(verifyObject(IChangeFeed, new_backend().feed))


class SharedPenaltiesTests(SynchronousTestCase):
    """
    What a node does with the failures other nodes announce.
    """

    def test_heard(self) -> None:
        """
        Another node's failure counts; this node's own, and malformed payloads, do not.
        """
        from sshfinger.ssh.penalties import SourcePenalties
        from sshfinger.store.postgresql.penalties import SharedPenalties

        clock = Clock()
        published: list[str] = []
        shared = SharedPenalties(SourcePenalties(clock, threshold=2), lambda p: published.append(p))  # type: ignore[arg-type,func-returns-value]
        shared.failed("192.0.2.1")
        self.assertEqual(published, [f"{shared.node_id} 192.0.2.1"])
        shared.heard(published[0])
        for payload in ("", "other", "other \x1b[2J", "other " + "x" * 100):
            shared.heard(payload)
        self.assertEqual(shared.blocked("192.0.2.1"), 0.0)
        shared.heard("other 192.0.2.1")
        self.assertGreater(shared.blocked("192.0.2.1"), 0.0)

    def test_attempt_ended_failed_is_announced(self) -> None:
        """
        A password attempt the SSH server counted with C{begin} and ended as failed is announced too (the SSH
        server ends counted attempts with C{end}, not C{failed}); one that succeeded is not.
        """
        from sshfinger.ssh.penalties import SourcePenalties
        from sshfinger.store.postgresql.penalties import SharedPenalties

        published: list[str] = []
        shared = SharedPenalties(SourcePenalties(Clock()), lambda p: published.append(p))  # type: ignore[arg-type,func-returns-value]
        self.assertTrue(shared.begin("192.0.2.2"))
        shared.end("192.0.2.2", failed=False)
        self.assertEqual(published, [])
        self.assertTrue(shared.begin("192.0.2.2"))
        shared.end("192.0.2.2", failed=True)
        self.assertEqual(published, [f"{shared.node_id} 192.0.2.2"])


class NodeRegistryTests(SynchronousTestCase):
    """
    The registry of nodes: heartbeats in the database, and the warnings C{sshfinger nodes} prints.
    """

    def test_heartbeat_and_list(self) -> None:
        """
        A heartbeat registers a node with its lag behind the feed's head; a second one updates it.
        """
        from sshfinger.store.postgresql.nodes import heartbeat, list_nodes

        store = CachedStore(new_backend(), Clock().seconds)
        store.open()
        self.addCleanup(store.close)
        for login in ("a", "b", "c"):
            self.successResultOf(store.create(login, ROOT))
        backend: Any = store.backend
        backend.run(lambda c: heartbeat(c, "node-1", "0.1.0", ["SHA256:k"], 100.0, 1))
        backend.run(lambda c: heartbeat(c, "node-2", "0.1.0", ["SHA256:k"], 100.0, 1))
        backend.run(lambda c: heartbeat(c, "node-1", "0.2.0", ["SHA256:k"], 100.0, 3))
        nodes = backend.run(list_nodes)
        self.assertEqual([(n.name, n.version, n.lag) for n in nodes], [("node-1", "0.2.0", 0), ("node-2", "0.1.0", 2)])

    def test_warnings(self) -> None:
        """
        Different host keys among live nodes, a lagging node and a silent one are each worth a warning; a
        healthy cluster none.
        """
        from sshfinger.store.postgresql.nodes import NodeRow, node_warnings

        def node(name: str, keys: str = "SHA256:a", beat: float = 1000.0, lag: int = 0) -> NodeRow:
            return NodeRow(name, "0.1.0", keys, 0.0, beat, 10, lag)

        self.assertEqual(node_warnings([node("n1"), node("n2")], 1001.0), [])
        warnings = node_warnings(
            [node("n1"), node("n2", keys="SHA256:b"), node("n3", lag=500), node("n4", beat=0)], 1001.0
        )
        self.assertEqual(len(warnings), 3, warnings)
        self.assertIn("node n4 has been silent", warnings[0])
        self.assertIn("different host keys", warnings[1])
        self.assertIn("node n3 is 500 changes behind", warnings[2])

    def test_upgrade_from_v1(self) -> None:
        """
        A database at schema version 1 is upgraded to the current one when opened, keeping its accounts and its
        change log, whose entries then count their bytes (for C{--audit-max-bytes}) as new ones do.
        """
        import psycopg

        from sshfinger.store.migrations import schema_script

        url = shared_cluster().new_database()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(schema_script("sshfinger.store.postgresql", "v1.sql").encode())
            connection.execute("INSERT INTO accounts (login, status) VALUES ('old', 'from v1')")
            connection.execute(
                "INSERT INTO change_log (seq, at, actor_login, actor_channel, login, action, field, old, new)"
                " VALUES (1, 0, 'root', 'cli', 'old', 'update', 'status', 'été', 'from v1')"
            )
            connection.execute("UPDATE feed SET head = 1")
        store = CachedStore(new_backend(url, changes_max_bytes=10_000), Clock().seconds)
        store.open()
        self.addCleanup(store.close)
        self.assertEqual(store.peek("old").status, "from v1")  # type: ignore[union-attr]
        backend: Any = store.backend
        self.assertEqual(backend.run(backend.schema_version), SCHEMA_VERSION)
        self.assertEqual(backend.run(lambda c: c.execute("SELECT count(*) FROM nodes").fetchone()[0]), 0)
        [old] = self.successResultOf(store.recent_changes(10))
        self.assertEqual(self.log_bytes(backend), (change_size(old), change_size(old)))
        for number in range(12):
            self.successResultOf(store.update("old", {"plan": f"{number:02d}" + "p" * 998}, ROOT))
        kept = self.successResultOf(store.recent_changes(100))
        sizes = [change_size(change) for change in kept]
        self.assertEqual(kept[-1].new[:2], "11")  # type: ignore[index]
        self.assertLessEqual(sum(sizes), 10_000)
        self.assertGreater(sum(sizes) + max(sizes), 10_000)  # no room for one more
        self.assertEqual(self.log_bytes(backend), (sum(sizes), sum(sizes)))

    @staticmethod
    def log_bytes(backend: Any) -> tuple[int, int]:
        """
        The change log's bytes as the feed row counts them, and as its entries' sizes add up.
        """
        return backend.run(  # type: ignore[no-any-return]
            lambda c: c.execute("SELECT bytes, (SELECT sum(size) FROM change_log) FROM feed").fetchone()
        )

    def test_heartbeat_service(self) -> None:
        """
        The service the backend gives for this node registers it at start with its progress (the view's
        C{seq}), and each beat reads the registry into C{known_nodes} (what the shell's C{nodes} shows); the
        doctor's findings name the registered nodes.
        """
        store = CachedStore(new_backend(), Clock().seconds)
        store.open()
        self.addCleanup(store.close)
        self.successResultOf(store.create("alice", ROOT))
        backend: Any = store.backend
        from sshfinger.store.postgresql.nodes import NodeHeartbeat

        self.assertIsInstance(backend.node_heartbeat(store, "node-a", ["SHA256:k"]), NodeHeartbeat)
        clock = Clock()
        service = NodeHeartbeat(backend, lambda: store.seq, "node-a", ["SHA256:k"], clock, lambda f, *a: succeed(f(*a)))
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual([(n.name, n.host_keys, n.lag) for n in backend.known_nodes], [("node-a", "SHA256:k", 0)])
        findings = backend.doctor_findings()
        self.assertIn(("ok", "nodes: 1 registered (node-a)"), findings)


class RegistryTests(SynchronousTestCase):
    """
    The backend registry opens C{postgresql://} and C{postgres://} stores, and the feed's head works before the
    backend is opened.
    """

    def test_registry(self) -> None:
        """
        Both schemes open a PostgreSQL backend through the registry; a URL libpq cannot parse is one line.
        """
        from sshfinger.store.registry import check_store_spec, open_backend

        url = shared_cluster().new_database()
        for spec in (url, url.replace("postgresql://", "postgres://", 1)):
            backend: Any = open_backend(spec)
            self.assertEqual(type(backend).__name__, "PostgreSQLBackend")
            self.assertEqual(backend.head(), 0)  # before opening, on an empty database
        error = self.assertRaises(ValueError, check_store_spec, "postgresql://host/db?nosuchoption=1")
        self.assertNotIn("\n", str(error))

    def test_head_before_open(self) -> None:
        """
        A second backend's feed reads the head of a used database before it is opened.
        """
        store = CachedStore(new_backend(), Clock().seconds)
        store.open()
        self.addCleanup(store.close)
        self.successResultOf(store.create("alice", ROOT, {"status": "x"}))
        other: Any = new_backend(store.backend.url)  # type: ignore[attr-defined]
        self.assertEqual(other.feed.head(), store.seq)
        self.assertGreater(store.seq, 0)
