"""
Tests for L{sshfinger.store.sqlite} beyond the shared store suite: schema migration, refusing foreign files
(untouched), the change feed's polling and horizon, durability, write failures, maintenance (0600 files, restore
refused while the store is open) and the writer thread.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sshfinger.model.account import Account, Actor, Change, normalize_changes
from sshfinger.model.errors import AccountExists, NoSuchAccount, StoreError, StoreUnavailable
from sshfinger.store.cached import CachedStore
from sshfinger.store.interfaces import FeedGap
from sshfinger.store.lazy import LazyAccounts
from sshfinger.store.sqlite import SCHEMA_VERSION, SQLiteBackend, schema_script, split_statements
from sshfinger.store.sqlite import backend as sqlite_module
from sshfinger.store.sqlite import schema as schema_module

ROOT = Actor("root", "cli")
OTHER = Actor("other", "exec", "192.0.2.1:4000")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@a"

#: The repository root, so a child process imports sshfinger from this source tree.
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def schema_version(path: str) -> int:
    """
    Read the version row of a database file directly.
    """
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT version FROM version").fetchone()[0]
    finally:
        connection.close()


def assert_one_line_store_error(case: SynchronousTestCase, backend: SQLiteBackend) -> StoreError:
    """
    Assert that opening C{backend} fails with a L{StoreError} whose message is one line without a traceback.
    """
    error = case.assertRaises(StoreError, backend.open)
    message = str(error)
    case.assertNotIn("\n", message)
    case.assertNotIn("Traceback", message)
    case.assertTrue(message)
    return error


class OpenTests(SynchronousTestCase):
    """
    Making, upgrading and refusing database files.
    """

    def open_backend(self, path: str, **kwargs: object) -> SQLiteBackend:
        """
        Open a backend on C{path}, closed again at cleanup.
        """
        backend = SQLiteBackend(path, **kwargs)  # type: ignore[arg-type]
        backend.open()
        self.addCleanup(backend.close)
        return backend

    def test_fresh_file_is_latest_version(self) -> None:
        """
        A new file is built up to L{SCHEMA_VERSION}, in WAL mode, and passes the integrity check.
        """
        path = self.mktemp()
        backend = self.open_backend(path)
        self.assertEqual(backend.open(), {})
        self.assertEqual(schema_version(path), SCHEMA_VERSION)
        self.assertEqual(backend.integrity_check(), "ok")
        connection = sqlite3.connect(path)
        self.addCleanup(connection.close)
        self.assertEqual(connection.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def make_v1_file(self) -> str:
        """
        Build a version 1 database by hand holding one account, as the first release wrote it.
        """
        path = self.mktemp()
        connection = sqlite3.connect(path, isolation_level=None)
        for statement in split_statements(schema_script("v1.sql")):
            connection.execute(statement)
        connection.execute(
            "INSERT INTO accounts (login, real_name, status, plan, office, phone, hidden, updated_at, updated_by)"
            " VALUES ('alice', 'Alice Liddell', 'reading', 'line 1\nline 2', 'B12', '555', 1, 123.5, 'admin')"
        )
        connection.close()
        self.assertEqual(schema_version(path), 1)
        return path

    def test_migrate_v1(self) -> None:
        """
        Opening a version 1 file upgrades it to the latest version; its account is intact with role C{user},
        and changes to the new columns and tables can be written.
        """
        path = self.make_v1_file()
        backend = self.open_backend(path)
        alice = Account(
            "alice", "Alice Liddell", "reading", "line 1\nline 2", "B12", "555", True, "user", (), 123.5, "admin"
        )
        self.assertEqual(backend.open().accounts(), [alice])
        self.assertEqual(schema_version(path), SCHEMA_VERSION)
        account, changes = backend.update("alice", {"role": "admin", "keys": (KEY,)}, ROOT, 200.0)
        self.assertEqual((account.role, account.keys), ("admin", (KEY,)))
        self.assertEqual([(c.field, c.old, c.new) for c in changes], [("role", "user", "admin"), ("keys", "", KEY)])
        self.assertEqual(backend.recent_changes(10, "alice"), changes)
        backend.add_history("alice", "whoami", 10)
        self.assertEqual(backend.history("alice"), ["whoami"])

    def test_failed_migration_changes_nothing(self) -> None:
        """
        If any step of an upgrade fails, the whole upgrade is rolled back: the file stays at version 1.
        """
        path = self.make_v1_file()
        real = schema_module.migration_scripts

        def broken(version: int | None) -> list[tuple[int, str]]:
            return real(version) + [(SCHEMA_VERSION + 1, "CREATE TABLE broken (;\n")]

        self.patch(schema_module, "migration_scripts", broken)
        assert_one_line_store_error(self, SQLiteBackend(path))
        self.assertEqual(schema_version(path), 1)
        connection = sqlite3.connect(path)
        self.addCleanup(connection.close)
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.assertEqual(tables, {"version", "accounts"})

    def test_newer_version_refused(self) -> None:
        """
        A file written by a newer version is refused with a one-line L{StoreError} and left untouched.
        """
        path = self.mktemp()
        SQLiteBackend(path).open()
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("UPDATE version SET version = ?", (SCHEMA_VERSION + 1,))
        connection.close()
        error = assert_one_line_store_error(self, SQLiteBackend(path))
        self.assertIn("newer", str(error))
        self.assertIn(str(SCHEMA_VERSION + 1), str(error))
        self.assertEqual(schema_version(path), SCHEMA_VERSION + 1)

    def test_garbage_file_refused(self) -> None:
        """
        A file that is not SQLite at all is refused with a one-line L{StoreError}, and not overwritten.
        """
        path = self.mktemp()
        garbage = b"this is not a database, just some text\n" * 200
        Path(path).write_bytes(garbage)
        error = assert_one_line_store_error(self, SQLiteBackend(path))
        self.assertIn(path, str(error))
        self.assertEqual(Path(path).read_bytes(), garbage)

    def test_foreign_sqlite_file_refused(self) -> None:
        """
        An SQLite file of some other program (tables but no version table) is refused.
        """
        path = self.mktemp()
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE recipes (name TEXT)")
        connection.commit()
        connection.close()
        error = assert_one_line_store_error(self, SQLiteBackend(path))
        self.assertIn("not an sshfinger database", str(error))

    def test_unopenable_path_refused(self) -> None:
        """
        A path in a missing directory is refused with a one-line L{StoreError}.
        """
        assert_one_line_store_error(self, SQLiteBackend(os.path.join(self.mktemp(), "missing", "db.sqlite")))

    def test_closed_backend(self) -> None:
        """
        Calls on a closed backend fail with L{StoreUnavailable}; closing twice is harmless.
        """
        backend = SQLiteBackend(self.mktemp())
        backend.open()
        backend.close()
        backend.close()
        self.assertRaises(StoreUnavailable, backend.create, "alice", {}, ROOT, 1.0)
        self.assertRaises(StoreUnavailable, backend.feed.read_after, 0, 10)


class LoadTests(SynchronousTestCase):
    """
    L{SQLiteBackend.open} loads every account exactly as it was written, whichever fields it sets.

    @ivar path: the file that L{write_and_reopen} wrote.
    """

    path: str

    def write_and_reopen(self, accounts: Mapping[str, Mapping[str, object]]) -> tuple[list[Account], list[Account]]:
        """
        Create C{accounts} (login to fields, normalized as the cached store does) through one backend, then open
        a second one on the file.

        @return: the accounts as created, and as the second backend loads them, both sorted by login.
        """
        path = self.path = self.mktemp()
        writer = SQLiteBackend(path)
        writer.open()
        self.addCleanup(writer.close)
        created = [
            writer.create(login, normalize_changes(fields) if fields else {}, OTHER, 1_700_000_000.25)[0]
            for login, fields in accounts.items()
        ]
        reader = SQLiteBackend(path)
        self.addCleanup(reader.close)
        return sorted(created), reader.open().accounts()

    def assert_loaded_as_written(self, accounts: Mapping[str, Mapping[str, object]]) -> list[Account]:
        """
        Assert that C{accounts} load equal to what was created, with values of the same types.
        """
        created, loaded = self.write_and_reopen(accounts)
        self.assertEqual(loaded, created)
        for account, expected in zip(loaded, created):
            self.assertEqual(len(account), len(Account._fields))
            self.assertEqual([type(value) for value in account], [type(value) for value in expected])
        return loaded

    def test_every_field(self) -> None:
        """
        Plain accounts (name and status only, with or without keys) and accounts setting each other field load
        unchanged.
        """
        self.assert_loaded_as_written(
            {
                "plain": {"real_name": "Plain Person", "status": "here"},
                "bare": {},
                "keyed": {"keys": [KEY]},
                "planner": {"plan": "line 1\nline 2"},
                "officer": {"office": "B12"},
                "phoner": {"phone": "555"},
                "hider": {"hidden": True},
                "admin": {"role": "admin", "keys": [KEY, KEY.replace("alice@a", "alice@b")]},
                "everything": {
                    "real_name": "E", "status": "s", "plan": "p", "office": "o", "phone": "1", "hidden": True,
                    "role": "admin", "keys": [KEY],
                },
            }
        )  # fmt: skip

    def test_all_plain_and_none_plain(self) -> None:
        """
        A file holding only plain accounts, or none, loads complete too.
        """
        self.assertEqual(len(self.assert_loaded_as_written({f"user{n}": {"status": str(n)} for n in range(5)})), 5)
        self.assertEqual(len(self.assert_loaded_as_written({f"user{n}": {"plan": str(n)} for n in range(5)})), 5)

    def test_repeated_strings_shared(self) -> None:
        """
        The role and the author of the last change, repeated across accounts that set more than a name and a
        status, are one string each in memory.
        """
        loaded = self.assert_loaded_as_written({"a": {}, "b": {}, "c": {"role": "admin"}, "d": {"role": "admin"}})
        a, b, c, d = loaded
        self.assertIs(a.role, b.role)
        self.assertIs(c.role, d.role)
        self.assertIs(c.updated_by, d.updated_by)

    def test_plain_accounts_by_login(self) -> None:
        """
        L{SQLiteBackend.open} gives each account under its login: one that sets only its name and status
        as a L{PlainAccount} (a plain 5-tuple), any other (authorized keys included) as an L{Account}; each
        stands for the account L{SQLiteBackend.open} loads.
        """
        created, _ = self.write_and_reopen(
            {"plain": {"real_name": "P", "status": "here"}, "bare": {}, "keyed": {"keys": [KEY]},
             "hider": {"hidden": True}}  # fmt: skip
        )
        reader = SQLiteBackend(self.path)
        self.addCleanup(reader.close)
        loaded = reader.open()
        self.assertIsInstance(loaded, LazyAccounts)
        self.assertEqual(sorted(loaded), ["bare", "hider", "keyed", "plain"])
        self.assertEqual({login for login, value in dict.items(loaded) if type(value) is tuple}, {"bare", "plain"})
        self.assertEqual(dict.get(loaded, "plain"), ("plain", "P", "here", 1_700_000_000.25, OTHER.login))
        self.assertIsInstance(loaded["keyed"], Account)
        self.assertEqual(loaded.accounts(), created)
        self.assertIs(loaded.get("plain"), loaded["plain"])

    def test_change_during_load(self) -> None:
        """
        A change another process commits while the accounts load is not in the loaded accounts, and the store's
        next read of the feed applies it.
        """
        path = self.mktemp()
        theirs = SQLiteBackend(path)
        theirs.open()
        self.addCleanup(theirs.close)
        mine = SQLiteBackend(path)
        self.addCleanup(mine.close)
        load_all = sqlite_module.load_all
        created: list[Account] = []

        def load_then_commit(connection: sqlite3.Connection) -> LazyAccounts:
            accounts = load_all(connection)
            created.append(theirs.create("alice", {}, OTHER, 1.0)[0])
            return accounts

        self.patch(sqlite_module, "load_all", load_then_commit)
        store = CachedStore(mine, Clock().seconds)
        store.open()
        self.assertEqual(store.logins(), [])
        self.assertEqual(self.successResultOf(store.catch_up()), 1)
        self.assertEqual(store.peek("alice"), created[0])


class PlainAccountsInCacheTests(SynchronousTestCase):
    """
    A L{CachedStore} over SQLite hands out L{Account}s only, though plain accounts are loaded as
    L{PlainAccount}s: each becomes an L{Account} when first asked for, and stays the same object afterwards.
    """

    def setUp(self) -> None:
        path = self.mktemp()
        writer = SQLiteBackend(path)
        writer.open()
        fields: dict[str, dict[str, object]] = {"alice": {"status": "Down the rabbit hole"}, "bob": {},
                                                "carol": {"hidden": True}, "dave": {"office": "B12"}}  # fmt: skip
        self.created = {
            login: writer.create(login, normalize_changes(f) if f else {}, OTHER, 1.5)[0] for login, f in fields.items()
        }
        writer.close()
        self.store = CachedStore(SQLiteBackend(path), Clock().seconds)
        self.store.open()
        self.addCleanup(self.store.close)

    def test_peek_and_get(self) -> None:
        """
        C{peek} and C{get} return the account as written, an L{Account}, and the same object every time; making
        it an L{Account} is no change (L{CachedStore.version} stays).
        """
        version = self.store.version
        alice = self.store.peek("Alice")
        self.assertIsInstance(alice, Account)
        self.assertEqual(alice, self.created["alice"])
        self.assertIs(self.store.peek("alice"), alice)
        self.assertIs(self.successResultOf(self.store.get("alice")), alice)
        self.assertIsNone(self.store.peek("nobody"))
        self.assertEqual(self.store.version, version)

    def test_listings(self) -> None:
        """
        C{list} and C{visible_accounts} give L{Account}s (hidden ones only where asked for), the same objects
        as C{peek}.
        """
        everyone = self.successResultOf(self.store.list(include_hidden=True))
        self.assertEqual(everyone, [self.created[login] for login in ("alice", "bob", "carol", "dave")])
        self.assertTrue(all(type(account) is Account for account in everyone))
        self.assertEqual([a.login for a in self.successResultOf(self.store.list())], ["alice", "bob", "dave"])
        visible = list(self.store.visible_accounts())
        self.assertEqual([a.login for a in visible], ["alice", "bob", "dave"])
        self.assertTrue(all(type(account) is Account for account in visible))
        self.assertIs(visible[1], self.store.peek("bob"))

    def test_update(self) -> None:
        """
        A plain account never asked for can be changed; the change is what C{peek} shows afterwards.
        """
        actor = Actor("admin", "shell")
        updated = self.successResultOf(self.store.update("bob", {"status": "away"}, actor))
        self.assertIs(self.store.peek("bob"), updated)
        self.assertEqual((updated.status, updated.real_name), ("away", ""))


class FeedTests(SynchronousTestCase):
    """
    The SQLite change feed: woken by a timer, cheap when nothing changed, horizon recorded when pruning.
    """

    def setUp(self) -> None:
        """
        Open two backends, C{mine} (polling with a fake clock) and C{theirs}, on one file.
        """
        self.path = self.mktemp()
        self.clock = Clock()
        self.mine = SQLiteBackend(self.path, clock=self.clock, poll_interval=0.5)
        self.theirs = SQLiteBackend(self.path)
        self.theirs.open()
        self.addCleanup(self.theirs.close)

    def test_wake_by_timer(self) -> None:
        """
        A following store sees another process's change at the next poll tick (0.5 s here), not before, and
        stops looking once it stops following.
        """
        store = CachedStore(self.mine, self.clock.seconds)
        store.open()
        self.addCleanup(store.close)
        seen: list[Change] = []
        store.subscribe(seen.append)
        store.start_following()
        _, changes = self.theirs.create("alice", {"status": "remote"}, OTHER, 5.0)
        self.clock.advance(0.4)
        self.assertIsNone(store.peek("alice"))
        self.clock.advance(0.1)
        self.assertEqual(store.peek("alice").status, "remote")  # type: ignore[union-attr]
        self.assertEqual(seen, changes)
        store.stop_following()
        self.theirs.update("alice", {"status": "later"}, OTHER, 6.0)
        self.clock.advance(5)
        self.assertEqual(store.peek("alice").status, "remote")  # type: ignore[union-attr]
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nothing_changed_is_cheap(self) -> None:
        """
        When no connection committed since the last read, a read is answered without a transaction (one
        C{PRAGMA data_version}); once another connection commits, the next read sees it.
        """
        self.mine.open()
        self.addCleanup(self.mine.close)
        head = self.mine.feed.head()
        self.mine.feed.read_after(head, 10)
        statements: list[str] = []
        self.mine.connection().set_trace_callback(statements.append)
        self.assertEqual(self.mine.feed.read_after(head, 10).changes, [])
        self.assertEqual(statements, ["PRAGMA data_version"])
        self.theirs.create("alice", {}, OTHER, 1.0)
        self.assertEqual([c.login for _, c in self.mine.feed.read_after(head, 10).changes], ["alice"])
        self.mine.create("bob", {}, ROOT, 2.0)
        self.assertEqual([c.login for _, c in self.mine.feed.read_after(head, 10).changes], ["alice", "bob"])

    def test_stale_view(self) -> None:
        """
        A write reads the row from the file, not from memory: updating an account another connection deleted
        fails with L{NoSuchAccount}, creating one it created fails with L{AccountExists}, and the backend still
        writes afterwards.
        """
        self.mine.open()
        self.addCleanup(self.mine.close)
        self.mine.create("alice", {}, ROOT, 1.0)
        self.theirs.delete("alice", OTHER, 2.0)
        self.assertRaises(NoSuchAccount, self.mine.update, "alice", {"status": "x"}, ROOT, 3.0)
        self.theirs.create("bob", {"status": "theirs"}, OTHER, 4.0)
        self.assertRaises(AccountExists, self.mine.create, "bob", {}, ROOT, 5.0)
        bob, _ = self.mine.update("bob", {"phone": "555"}, ROOT, 6.0)
        self.assertEqual((bob.status, bob.phone), ("theirs", "555"))

    def test_horizon_recorded_not_inferred(self) -> None:
        """
        Pruning records how far it went: a follower at exactly that number reads on, one below it gets
        L{FeedGap}; a hole in the ids (a missing row) above the horizon is no gap.
        """
        writer = SQLiteBackend(self.path, changes_keep=4)
        writer.open()
        self.addCleanup(writer.close)
        writer.create("alice", {}, ROOT, 0.0)
        for number in range(9):
            writer.update("alice", {"status": f"s{number}"}, ROOT, float(number))
        self.mine.open()
        self.addCleanup(self.mine.close)
        feed = self.mine.feed
        self.assertEqual(feed.head(), 10)
        self.assertEqual([seq for seq, _ in feed.read_after(6, 100).changes], [7, 8, 9, 10])
        error = self.assertRaises(FeedGap, feed.read_after, 5, 100)
        self.assertEqual((error.asked, error.horizon), (5, 6))
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("DELETE FROM changes WHERE id = 8")
        self.assertEqual([seq for seq, _ in feed.read_after(6, 100).changes], [7, 9, 10])
        raw.execute("DELETE FROM changes WHERE id <= 7")
        self.assertEqual([seq for seq, _ in feed.read_after(6, 100).changes], [9, 10])

    def test_migrated_horizon(self) -> None:
        """
        A version 2 file (pruned the old way, from the oldest) gets its horizon from its oldest change when it
        is upgraded, and the size of each change it holds.
        """
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.execute("DROP TABLE IF EXISTS feed_state")
        for table in ("changes", "history", "account_keys", "accounts", "version", "sqlite_sequence"):
            if table != "sqlite_sequence":
                connection.execute(f"DROP TABLE IF EXISTS {table}")
        for name in ("v1.sql", "upgrade-to-v2.sql"):
            for statement in split_statements(schema_script(name)):
                connection.execute(statement)
        connection.execute("UPDATE version SET version = 2")
        connection.execute("INSERT INTO accounts (login) VALUES ('alice')")
        for row_id in (4, 5, 6):
            connection.execute(
                "INSERT INTO changes (id, at, actor_login, actor_channel, login, action, field, old, new)"
                " VALUES (?, 1.0, 'root', 'cli', 'alice', 'update', 'status', 'a', 'bb')",
                (row_id,),
            )
        connection.close()
        self.mine.open()
        self.addCleanup(self.mine.close)
        self.assertEqual(schema_version(self.path), SCHEMA_VERSION)
        feed = self.mine.feed
        self.assertEqual(feed.head(), 6)
        self.assertRaises(FeedGap, feed.read_after, 2, 10)
        self.assertEqual([seq for seq, _ in feed.read_after(3, 10).changes], [4, 5, 6])
        raw = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(raw.close)
        sizes = [size for (size,) in raw.execute("SELECT size FROM changes")]
        self.assertEqual(sizes, [64 + 1 + 2 + 5 + 6 + 4] * 3)
        self.assertEqual(raw.execute("SELECT pruned_through, bytes FROM feed_state").fetchone(), (3, sum(sizes)))


class ChangesRetentionTests(SynchronousTestCase):
    """
    The C{changes} table is pruned to C{changes_keep} rows, exactly.
    """

    def test_pruned(self) -> None:
        """
        After many changes only the newest C{changes_keep} remain.
        """
        backend = SQLiteBackend(self.mktemp(), changes_keep=5)
        backend.open()
        self.addCleanup(backend.close)
        backend.create("alice", {}, ROOT, 0.0)
        for number in range(30):
            backend.update("alice", {"status": f"s{number}"}, ROOT, float(number))
        kept = backend.recent_changes(1000, None)
        self.assertEqual(len(kept), 5)
        self.assertEqual(kept[-1].new, "s29")
        self.assertNotIn("create", [c.action for c in kept])

    def test_retention_recorded(self) -> None:
        """
        The retention a server opens the file with is recorded there, and the offline tool (which gives none)
        applies it too; a later server's retention replaces it.
        """
        path = self.mktemp()
        server = SQLiteBackend(path, changes_keep=3, changes_max_bytes=100_000)
        server.open()
        server.create("alice", {}, ROOT, 0.0)
        server.close()
        tool = SQLiteBackend(path)
        tool.open()
        self.addCleanup(tool.close)
        for number in range(10):
            tool.update("alice", {"status": f"s{number}"}, ROOT, float(number))
        self.assertEqual([c.new for c in tool.recent_changes(100, None)], ["s7", "s8", "s9"])
        tool.close()
        SQLiteBackend(path, changes_keep=5).open()
        tool.open()
        for number in range(10, 20):
            tool.update("alice", {"status": f"s{number}"}, ROOT, float(number))
        self.assertEqual(len(tool.recent_changes(100, None)), 5)


CHILD = """
import sys
from sshfinger.model.account import Actor
from sshfinger.store.sqlite import SQLiteBackend

backend = SQLiteBackend(sys.argv[1])
backend.open()
actor = Actor("writer", "cli")
for number in range(int(sys.argv[2])):
    backend.update("alice", {"status": f"n{number}"}, actor, float(number))
    print(f"ack {number}", flush=True)
sys.stdin.read()
"""


class DurabilityTests(SynchronousTestCase):
    """
    Acknowledged writes survive the writer being killed.
    """

    def test_killed_writer(self) -> None:
        """
        A child process makes 50 updates, printing a line after each returns; killed with SIGKILL as soon as
        the 50th is acknowledged, every one of them is in the file.
        """
        count = 50
        path = os.path.abspath(self.mktemp())
        setup = SQLiteBackend(path)
        setup.open()
        setup.create("alice", {}, ROOT, 0.0)
        setup.close()

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, path, str(count)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        watchdog = threading.Timer(30, child.kill)
        watchdog.start()
        try:
            acknowledged = 0
            while acknowledged < count:
                line = child.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
                self.assertEqual(line, f"ack {acknowledged}\n")
                acknowledged += 1
            child.send_signal(signal.SIGKILL)
            _, errors = child.communicate()
        finally:
            watchdog.cancel()
        self.assertEqual(acknowledged, count, errors)
        self.assertEqual(child.returncode, -signal.SIGKILL)

        backend = SQLiteBackend(path)
        [alice] = backend.open().accounts()
        self.addCleanup(backend.close)
        self.assertEqual(alice.status, f"n{count - 1}")
        updates = [c.new for c in backend.recent_changes(1000, "alice") if c.action == "update"]
        self.assertEqual(updates, [f"n{number}" for number in range(count)])
        self.assertEqual(backend.integrity_check(), "ok")


class WriteFailureTests(SynchronousTestCase):
    """
    A write SQLite cannot commit fails with L{StoreUnavailable} and changes nothing.

    The fault is simulated by a second connection holding the write lock (C{BEGIN EXCLUSIVE}) with the
    backend's busy timeout set short: making the file read-only is unreliable when the tests run as root.
    """

    def setUp(self) -> None:
        """
        Open a store with a 50 ms busy timeout holding one account.
        """
        self.path = self.mktemp()
        self.clock = Clock()
        self.store = CachedStore(SQLiteBackend(self.path, busy_timeout=0.05), self.clock.seconds)
        self.store.open()
        self.addCleanup(self.store.close)
        self.alice = self.successResultOf(self.store.create("alice", ROOT, {"status": "before"}))

    def lock(self) -> sqlite3.Connection:
        """
        Take the database's write lock from another connection; released at cleanup.
        """
        blocker = sqlite3.connect(self.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        self.addCleanup(blocker.close)
        return blocker

    def test_locked_update(self) -> None:
        """
        An update that cannot take the lock fails with L{StoreUnavailable}; the view and subscribers see
        nothing, and once the lock is released writes work again.
        """
        seen: list[Change] = []
        self.store.subscribe(seen.append)
        blocker = self.lock()
        failure = self.failureResultOf(self.store.update("alice", {"status": "after"}, ROOT), StoreUnavailable)
        self.assertTrue(str(failure.value).startswith("cannot save change: "), str(failure.value))
        self.failureResultOf(self.store.create("bob", ROOT), StoreUnavailable)
        self.failureResultOf(self.store.delete("alice", ROOT), StoreUnavailable)
        self.assertEqual(self.store.peek("alice"), self.alice)
        self.assertEqual(self.store.logins(), ["alice"])
        self.assertEqual(seen, [])

        blocker.execute("ROLLBACK")
        self.assertEqual(self.successResultOf(self.store.update("alice", {"status": "after"}, ROOT)).status, "after")
        self.assertEqual([c.new for c in seen], ["after"])
        check = SQLiteBackend(self.path)
        self.addCleanup(check.close)
        self.assertEqual(sorted(check.open()), ["alice"])


class MaintenanceTests(SynchronousTestCase):
    """
    Backup, restore, integrity check, size and the files of a store: all created 0600 whatever the umask.
    """

    def setUp(self) -> None:
        """
        Run each test under umask 022 (the usual one), restored afterwards.
        """
        self.addCleanup(os.umask, os.umask(0o022))
        self.path = self.mktemp()

    def open_store(self) -> SQLiteBackend:
        """
        Open a backend on the test's file holding two accounts, closed at cleanup.
        """
        backend = SQLiteBackend(self.path)
        backend.open()
        self.addCleanup(backend.close)
        if not backend.open():
            backend.create("alice", {"keys": (KEY,), "status": "here"}, ROOT, 1.0)
            backend.create("bob", {"hidden": True}, ROOT, 2.0)
        return backend

    def test_integrity_and_backup(self) -> None:
        """
        A healthy file checks with no problems, and a backup (made 0600) opens with every account, key and
        change; an existing file is never overwritten.
        """
        backend = self.open_store()
        maintenance = backend.maintenance
        self.assertEqual(maintenance.check(), [])
        self.assertEqual(backend.integrity_check(), "ok")
        destination = self.mktemp()
        maintenance.backup(destination)
        self.assertEqual(stat_mode(destination), 0o600)
        copy = SQLiteBackend(destination)
        self.addCleanup(copy.close)
        self.assertEqual(copy.open(), backend.open())
        self.assertEqual(copy.recent_changes(100, None), backend.recent_changes(100, None))
        self.assertRaises(StoreError, maintenance.backup, destination)

    def test_backup_failure(self) -> None:
        """
        A backup to an impossible path fails with a one-line L{StoreError}.
        """
        backend = self.open_store()
        error = self.assertRaises(
            StoreError, backend.maintenance.backup, os.path.join(self.mktemp(), "no", "dir", "copy.db")
        )
        self.assertNotIn("\n", str(error))

    def test_new_store_private(self) -> None:
        """
        Under umask 022 a new store, its journal files and its lock file are 0600; size counts the files.
        """
        backend = self.open_store()
        files = backend.maintenance.files()
        self.assertIn(self.path, files)
        for name in files + [self.path + ".lock"]:
            self.assertEqual(stat_mode(name), 0o600, name)
        self.assertEqual(backend.maintenance.size(), sum(os.path.getsize(name) for name in files))

    def test_restore_refused_while_open(self) -> None:
        """
        Restore is refused with one line while any backend has the store open (the store unchanged), and works
        once it is closed; the restored file is 0600 and holds the backup's accounts.
        """
        backend = self.open_store()
        backup = self.mktemp()
        backend.maintenance.backup(backup)
        backend.update("alice", {"status": "after the backup"}, ROOT, 3.0)
        restorer = SQLiteBackend(self.path)
        error = self.assertRaises(StoreError, restorer.maintenance.restore, backup)
        self.assertIn("open in another process", str(error))
        self.assertNotIn("\n", str(error))
        self.assertEqual(backend.open()["alice"].status, "after the backup")
        backend.close()
        restorer.maintenance.restore(backup)
        self.assertEqual(stat_mode(self.path), 0o600)
        self.assertEqual(self.open_store().open()["alice"].status, "here")
        self.assertFalse(os.path.exists(self.path + ".restore"))

    def test_restore_refuses_foreign(self) -> None:
        """
        A file that is not an sshfinger store, not SQLite, empty or missing is refused and the store left alone.
        """
        backend = self.open_store()
        backend.close()
        garbage = self.mktemp()
        Path(garbage).write_bytes(b"nope" * 1000)
        foreign = self.mktemp()
        connection = sqlite3.connect(foreign)
        connection.execute("CREATE TABLE recipes (name TEXT)")
        connection.commit()
        connection.close()
        empty = self.mktemp()
        Path(empty).write_bytes(b"")
        for source in (garbage, foreign, empty, self.mktemp()):
            error = self.assertRaises(StoreError, SQLiteBackend(self.path).maintenance.restore, source)
            self.assertNotIn("\n", str(error))
        self.assertEqual(self.open_store().open()["alice"].status, "here")

    def test_foreign_file_untouched(self) -> None:
        """
        Opening an SQLite file of another program (in rollback-journal mode) is refused and leaves it byte for
        byte as it was, with no files created beside it.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        foreign = os.path.join(directory, "recipes.db")
        connection = sqlite3.connect(foreign)
        connection.execute("CREATE TABLE recipes (name TEXT)")
        connection.execute("INSERT INTO recipes VALUES ('tea')")
        connection.commit()
        connection.close()
        before = Path(foreign).read_bytes()
        error = self.assertRaises(StoreError, SQLiteBackend(foreign).open)
        self.assertIn("not an sshfinger database", str(error))
        self.assertEqual(Path(foreign).read_bytes(), before)
        self.assertEqual(os.listdir(directory), ["recipes.db"])


def stat_mode(path: str) -> int:
    """
    The permission bits of C{path}.
    """
    return os.stat(path).st_mode & 0o777


class RecordingBackend(SQLiteBackend):
    """
    An L{SQLiteBackend} noting the thread each write runs on.

    @ivar threads: the thread of each create or update, in order.
    """

    def __init__(self, path: str) -> None:
        """
        @param path: the database file.
        """
        super().__init__(path)
        self.threads: list[threading.Thread] = []

    def create(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        Note the thread, then create.
        """
        self.threads.append(threading.current_thread())
        return super().create(login, values, actor, at)

    def update(self, login: str, values: Mapping[str, object], actor: Actor, at: float) -> tuple[Account, list[Change]]:
        """
        Note the thread, then update.
        """
        self.threads.append(threading.current_thread())
        return super().update(login, values, actor, at)


class WriterThreadTests(TestCase):
    """
    The store runs over SQLite with its writes on a one-thread pool, as in production.
    """

    def test_writes_off_main_thread(self) -> None:
        """
        Writes run on the pool's thread, not the main (reactor) thread, and their results reach the view.
        """
        pool = ThreadPool(minthreads=1, maxthreads=1, name="store-writer")
        pool.start()
        self.addCleanup(pool.stop)
        backend = RecordingBackend(self.mktemp())
        store = CachedStore(backend, reactor.seconds, lambda work: deferToThreadPool(reactor, pool, work))
        store.open()
        self.addCleanup(store.close)

        def created(account: Account) -> Deferred[Account]:
            self.assertEqual(store.peek("alice"), account)
            return store.update("alice", {"status": "threaded"}, ROOT)

        def updated(account: Account) -> None:
            self.assertEqual(store.peek("alice").status, "threaded")  # type: ignore[union-attr]
            self.assertEqual(len(backend.threads), 2)
            for thread in backend.threads:
                self.assertIsNot(thread, threading.main_thread())
            self.assertEqual(backend.recent_changes(10, "alice")[-1].new, "threaded")

        return store.create("alice", ROOT).addCallback(created).addCallback(updated)
