"""
One behaviour suite for L{sshfinger.store.cached.CachedStore}, run over every L{IStoreBackend}, including the
contract of its L{IChangeFeed}.

Another backend's tests subclass L{StoreTestsMixin} with L{SynchronousTestCase} and define
L{StoreTestsMixin.make_backend}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sshfinger.model.account import LOGIN_RULE, Account, Actor, Change
from sshfinger.model.errors import AccountExists, InvalidValue, NoSuchAccount, StoreUnavailable
from sshfinger.store import cached
from sshfinger.store.cached import HISTORY_LINE_MAX, CachedStore
from sshfinger.store.interfaces import (
    FeedBatch,
    FeedGap,
    IChangeFeed,
    IStoreBackend,
    IStoreMaintenance,
    IUserStore,
    feed_of,
    maintenance_of,
)
from sshfinger.store.limits import change_size
from sshfinger.store.memory import MemoryBackend
from sshfinger.store.sqlite import SQLiteBackend

ROOT = Actor("root", "cli")
ALICE = Actor("alice", "shell", "127.0.0.1:50022")
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@b"


class StoreTestsMixin:
    """
    Tests every store must pass, whatever its backend.  Subclasses define L{make_backend}.

    The feed tests run two or three stores over one storage, as several processes (or nodes) share one database:
    each store follows its own backend's feed and catches up explicitly (C{catch_up}), which is what a wake from
    the feed leads to.

    @ivar clock: the fake clock the store stamps changes with.
    @ivar backend: the backend under test.
    @ivar store: a L{CachedStore} over it, using the synchronous executor.
    """

    clock: Clock
    backend: IStoreBackend
    store: CachedStore

    def make_backend(self, changes_keep: int | None = None, changes_max_bytes: int | None = None) -> IStoreBackend:
        """
        Make an unopened backend over this test's storage: the first call in a test makes fresh, empty storage;
        each later call makes another backend over the same storage (as another process or node would open it).

        @param changes_keep: if given, the audit entries this backend keeps (it prunes the shared storage to that).
        @param changes_max_bytes: if given, the bytes of audit entries this backend keeps.
        """
        raise NotImplementedError()

    def make_store(self, backend: IStoreBackend | None = None) -> CachedStore:
        """
        Open another store (a follower) over this test's storage, closed at cleanup.
        """
        store = CachedStore(backend or self.make_backend(), self.clock.seconds)
        store.open()
        self.addCleanup(store.close)  # type: ignore[attr-defined]
        return store

    def catch_up(self, store: CachedStore) -> int:
        """
        Have C{store} read and apply its feed now; return how many changes (or, after a reload, accounts) it
        applied.
        """
        return self.successResultOf(store.catch_up())  # type: ignore[attr-defined,no-any-return]

    def follow(self, store: CachedStore) -> list[Change]:
        """
        Subscribe to C{store}; return the list its changes are appended to.
        """
        seen: list[Change] = []
        store.subscribe(seen.append)
        return seen

    def setUp(self) -> None:
        """
        Open a store over a fresh backend, with a clock at a known time.
        """
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.backend = self.make_backend()
        self.store = CachedStore(self.backend, self.clock.seconds)
        self.store.open()
        self.addCleanup(self.store.close)  # type: ignore[attr-defined]

    def create(self, login: str, fields: Mapping[str, object] = {}) -> Account:
        """
        Create an account as root and return it.
        """
        return self.successResultOf(self.store.create(login, ROOT, fields))  # type: ignore[attr-defined]

    def changes(self, limit: int = 1000, login: str | None = None) -> list[Change]:
        """
        Return the store's recent changes.
        """
        return self.successResultOf(self.store.recent_changes(limit, login))  # type: ignore[attr-defined]

    def test_interfaces(self) -> None:
        """
        The cached store provides L{IUserStore}, its backend L{IStoreBackend}, the backend's feed L{IChangeFeed},
        and its maintenance, if any, L{IStoreMaintenance}.
        """
        self.assertTrue(verifyObject(IUserStore, self.store))
        self.assertTrue(verifyObject(IStoreBackend, self.backend))
        self.assertEqual(self.store.description, self.backend.description)
        feed = feed_of(self.backend)
        self.assertIsNotNone(feed)
        self.assertTrue(verifyObject(IChangeFeed, feed))
        self.assertIs(self.store.feed, feed)
        maintenance = maintenance_of(self.backend)
        if maintenance is not None:
            self.assertTrue(verifyObject(IStoreMaintenance, maintenance))

    def test_record_audit_event(self) -> None:
        """
        C{record} stores an event that is not an account change: it shows in C{recent_changes} (also per
        login), subscribers hear of it, and no account changes.
        """
        self.create("root")
        heard: list[Change] = []
        self.store.subscribe(heard.append)
        event = Change(5.0, Actor("root", "manhole", "127.0.0.1:9"), "root", "input", "manhole", None, "1 + 1")
        self.clock.advance(42)
        self.successResultOf(self.store.record(event))
        self.assertEqual([(c.at, c.new) for c in heard], [(self.clock.seconds(), "1 + 1")])
        self.assertEqual(self.changes()[-1], heard[0])
        self.assertEqual(self.changes(login="root")[-1].new, "1 + 1")
        self.assertEqual(self.store.logins(), ["root"])

    def test_create_get_peek(self) -> None:
        """
        A created account is returned, and then found by C{get}, C{peek}, C{logins} and C{list}.
        """
        account = self.create("alice", {"name": "Alice Liddell", "status": "down the hole", "plan": "line 1\nline 2"})
        self.assertEqual(account.login, "alice")
        self.assertEqual(account.real_name, "Alice Liddell")
        self.assertEqual(account.status, "down the hole")
        self.assertEqual(account.plan, "line 1\nline 2")
        self.assertEqual(account.role, "user")
        self.assertEqual(self.successResultOf(self.store.get("alice")), account)
        self.assertEqual(self.store.peek("alice"), account)
        self.assertEqual(self.store.logins(), ["alice"])
        self.assertEqual(self.successResultOf(self.store.list()), [account])
        self.assertEqual(len(self.store), 1)

    def test_case_insensitive(self) -> None:
        """
        Logins are stored lower-case and found in any case.
        """
        account = self.create("Alice")
        self.assertEqual(account.login, "alice")
        self.assertEqual(self.store.peek("ALICE"), account)
        self.assertEqual(self.successResultOf(self.store.get("aLiCe")), account)
        updated = self.successResultOf(self.store.update("ALICE", {"status": "up"}, ROOT))
        self.assertEqual(updated.status, "up")
        self.assertEqual(self.store.logins(), ["alice"])

    def test_peek_missing(self) -> None:
        """
        C{peek} of an unknown login is L{None}.
        """
        self.assertIsNone(self.store.peek("nobody"))

    def test_invalid_login(self) -> None:
        """
        A login breaking L{LOGIN_RULE} is refused with L{InvalidValue} quoting the rule, and nothing is stored.
        """
        for login in ["", "9lives", "has space", "a" * 33, "semi;colon"]:
            failure = self.failureResultOf(self.store.create(login, ROOT), InvalidValue)
            self.assertIn(LOGIN_RULE, str(failure.value))
        self.assertEqual(self.store.logins(), [])
        self.assertEqual(self.changes(), [])

    def test_invalid_values_on_update(self) -> None:
        """
        Bad values (multi-line status, too long, unknown field, bad role) fail with L{InvalidValue} and change
        nothing, even when given alongside a valid change.
        """
        before = self.create("alice", {"status": "fine"})
        recorded = self.changes()
        for bad in [
            {"status": "two\nlines"},
            {"status": "x" * 201},
            {"real_name": "n" * 101},
            {"colour": "red"},
            {"role": "emperor"},
            {"hidden": "perhaps"},
            {"status": "ok", "role": "emperor"},
            {},
        ]:
            self.failureResultOf(self.store.update("alice", bad, ROOT), InvalidValue)
        self.assertEqual(self.store.peek("alice"), before)
        self.assertEqual(self.successResultOf(self.store.get("alice")), before)
        self.assertEqual(self.changes(), recorded)

    def test_invalid_values_on_create(self) -> None:
        """
        A create with a bad initial field fails with L{InvalidValue} and creates nothing.
        """
        self.failureResultOf(self.store.create("alice", ROOT, {"status": "a\nb"}), InvalidValue)
        self.failureResultOf(self.store.create("alice", ROOT, {"shoe_size": "9"}), InvalidValue)
        self.assertIsNone(self.store.peek("alice"))
        self.assertEqual(self.changes(), [])
        self.create("alice")

    def test_create_existing(self) -> None:
        """
        Creating a login that exists (in any case) fails with L{AccountExists} and leaves the account alone.
        """
        original = self.create("alice", {"status": "first"})
        for login in ["alice", "ALICE"]:
            failure = self.failureResultOf(self.store.create(login, ROOT, {"status": "second"}), AccountExists)
            self.assertEqual(failure.value.login, "alice")
        self.assertEqual(self.store.peek("alice"), original)
        self.assertEqual(len(self.changes(login="alice")), 2)
        self.create("bob")

    def test_no_such_account(self) -> None:
        """
        Updating, deleting or fetching an unknown login fails with L{NoSuchAccount}.
        """
        self.failureResultOf(self.store.update("ghost", {"status": "boo"}, ROOT), NoSuchAccount)
        self.failureResultOf(self.store.delete("ghost", ROOT), NoSuchAccount)
        failure = self.failureResultOf(self.store.get("ghost"), NoSuchAccount)
        self.assertEqual(str(failure.value), "no such user: ghost")
        self.assertEqual(self.store.logins(), [])

    def test_list_hidden_and_sorted(self) -> None:
        """
        C{list} is sorted by login and leaves hidden accounts out unless asked; C{logins} includes them.
        """
        self.create("zed")
        self.create("bob", {"hidden": "yes"})
        self.create("alice")
        self.assertEqual([a.login for a in self.successResultOf(self.store.list())], ["alice", "zed"])
        self.assertEqual(
            [a.login for a in self.successResultOf(self.store.list(include_hidden=True))], ["alice", "bob", "zed"]
        )
        self.assertEqual(self.store.logins(), ["alice", "bob", "zed"])
        self.assertTrue(self.store.peek("bob").hidden)  # type: ignore[union-attr]

    def test_update_stamps(self) -> None:
        """
        An update applies the values and stamps C{updated_at} from the clock and C{updated_by} from the actor.
        """
        created = self.create("alice")
        self.assertEqual(created.updated_at, 1_700_000_000)
        self.assertEqual(created.updated_by, "root")
        self.clock.advance(42.5)
        updated = self.successResultOf(
            self.store.update("alice", {"status": "busy", "office": "B12", "phone": "555", "role": "admin"}, ALICE)
        )
        self.assertEqual(updated.updated_at, 1_700_000_042.5)
        self.assertEqual(updated.updated_by, "alice")
        self.assertEqual((updated.status, updated.office, updated.phone, updated.role), ("busy", "B12", "555", "admin"))
        self.assertEqual(self.store.peek("alice"), updated)

    def test_version(self) -> None:
        """
        L{CachedStore.version} grows with each committed create, update and delete, and stays the same through
        reads, refused writes and audit events.
        """
        versions = [self.store.version]
        self.create("alice")
        versions.append(self.store.version)
        self.successResultOf(self.store.update("alice", {"status": "out"}, ALICE))
        versions.append(self.store.version)
        self.store.peek("alice")
        self.store.logins()
        list(self.store.visible_accounts())
        self.successResultOf(self.store.list(include_hidden=True))
        self.successResultOf(self.store.get("alice"))
        self.failureResultOf(self.store.update("nobody", {"status": "x"}, ROOT), NoSuchAccount)
        self.failureResultOf(self.store.create("alice", ROOT), AccountExists)
        self.successResultOf(self.store.record(Change(5.0, ROOT, "alice", "input", "manhole", None, "1 + 1")))
        self.assertEqual(self.store.version, versions[-1])
        self.successResultOf(self.store.delete("alice", ROOT))
        versions.append(self.store.version)
        self.assertEqual(sorted(set(versions)), versions)

    def test_keys_round_trip(self) -> None:
        """
        Keys are stored in order and come back as a tuple; they can be replaced and cleared.
        """
        account = self.successResultOf(self.store.update(self.create("alice").login, {"keys": [KEY_A, KEY_B]}, ROOT))
        self.assertEqual(account.keys, (KEY_A, KEY_B))
        self.assertEqual(self.store.peek("alice").keys, (KEY_A, KEY_B))  # type: ignore[union-attr]
        account = self.successResultOf(self.store.update("alice", {"keys": [KEY_B, KEY_A]}, ROOT))
        self.assertEqual(account.keys, (KEY_B, KEY_A))
        account = self.successResultOf(self.store.update("alice", {"keys": []}, ROOT))
        self.assertEqual(account.keys, ())

    def test_subscribers_told_in_order(self) -> None:
        """
        Subscribers receive each L{Change} in commit order, with old and new values as text; after
        unsubscribing they receive nothing.
        """
        seen: list[Change] = []
        unsubscribe = self.store.subscribe(seen.append)
        at = self.clock.seconds()
        self.create("alice", {"status": "in"})
        self.clock.advance(1)
        self.successResultOf(self.store.update("alice", {"status": "out", "hidden": True}, ALICE))
        self.assertEqual(
            seen,
            [
                Change(at, ROOT, "alice", "create"),
                Change(at, ROOT, "alice", "update", "status", "", "in"),
                Change(at + 1, ALICE, "alice", "update", "status", "in", "out"),
                Change(at + 1, ALICE, "alice", "update", "hidden", "no", "yes"),
            ],
        )
        unsubscribe()
        unsubscribe()
        self.successResultOf(self.store.update("alice", {"status": "gone"}, ALICE))
        self.assertEqual(len(seen), 4)

    def test_raising_subscriber(self) -> None:
        """
        A subscriber that raises is logged; the write still succeeds and later subscribers are still told.
        """
        seen: list[Change] = []

        def broken(change: Change) -> None:
            raise ZeroDivisionError("subscriber bug")

        self.store.subscribe(broken)
        self.store.subscribe(seen.append)
        account = self.create("alice")
        self.assertEqual(account.login, "alice")
        self.assertEqual(self.store.peek("alice"), account)
        self.assertEqual([change.action for change in seen], ["create"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)  # type: ignore[attr-defined]

    def test_history(self) -> None:
        """
        History lines come back oldest first, per login; blank and over-long lines are not kept.
        """
        self.create("alice")
        self.create("bob")
        for line in ["finger bob", "  ", "x" * (HISTORY_LINE_MAX + 1), "set status away"]:
            self.successResultOf(self.store.add_history("alice", line))
        self.successResultOf(self.store.add_history("BOB", "help"))
        self.assertEqual(self.successResultOf(self.store.history("ALICE")), ["finger bob", "set status away"])
        self.assertEqual(self.successResultOf(self.store.history("bob")), ["help"])
        self.assertEqual(self.successResultOf(self.store.history("carol")), [])

    def test_history_bound(self) -> None:
        """
        The backend keeps only the newest C{keep} lines of a login, and bounding one login leaves others alone.
        """
        self.backend.add_history("bob", "bob's line", 2)
        for number in range(6):
            self.backend.add_history("alice", f"line {number}", 3)
        self.assertEqual(self.backend.history("alice"), ["line 3", "line 4", "line 5"])
        self.assertEqual(self.backend.history("bob"), ["bob's line"])

    def test_recent_changes(self) -> None:
        """
        C{recent_changes} returns the newest C{limit} changes oldest first, optionally of one login.
        """
        self.create("alice")
        self.create("bob")
        for number in range(3):
            self.clock.advance(1)
            self.successResultOf(self.store.update("alice", {"status": f"s{number}"}, ALICE))
        everything = self.changes()
        self.assertEqual(
            [(c.login, c.action, c.new) for c in everything],
            [("alice", "create", None), ("bob", "create", None)] + [("alice", "update", f"s{n}") for n in range(3)],
        )
        self.assertEqual(self.changes(2), everything[-2:])
        self.assertEqual([c.new for c in self.changes(2, "alice")], ["s1", "s2"])
        self.assertEqual([c.action for c in self.changes(10, "BOB")], ["create"])
        self.assertEqual(self.changes(0), [])
        self.assertEqual(self.changes(5, "nobody"), [])
        self.assertEqual(everything[-1].actor, ALICE)

    def test_delete(self) -> None:
        """
        Deleting an account removes it, its keys and its history, records a C{delete} change, and frees the
        login for a fresh account.
        """
        self.create("alice", {"keys": [KEY_A], "status": "here"})
        self.create("bob")
        self.successResultOf(self.store.add_history("alice", "finger bob"))
        self.successResultOf(self.store.add_history("bob", "help"))
        seen: list[Change] = []
        self.store.subscribe(seen.append)
        self.assertIsNone(self.successResultOf(self.store.delete("ALICE", ROOT)))
        self.assertIsNone(self.store.peek("alice"))
        self.failureResultOf(self.store.get("alice"), NoSuchAccount)
        self.assertEqual(self.store.logins(), ["bob"])
        self.assertEqual(self.successResultOf(self.store.history("alice")), [])
        self.assertEqual(self.successResultOf(self.store.history("bob")), ["help"])
        self.assertEqual(seen, [Change(self.clock.seconds(), ROOT, "alice", "delete")])
        self.assertEqual(self.changes(1, "alice"), seen)
        again = self.create("alice")
        self.assertEqual((again.keys, again.status), ((), ""))


    def test_recreated_login_inherits_nothing(self) -> None:
        """
        After C{del bob} and C{add bob}, the new account has no keys, no history, and its changes (as a user
        sees them) start at its creation; C{everything=True} (admins) still shows the old account's too.
        """
        self.create("bob", {"plan": "old secret plan", "keys": [KEY_A]})
        self.successResultOf(self.store.add_history("bob", "set plan old secret plan"))
        self.successResultOf(self.store.delete("bob", ROOT))
        self.clock.advance(1)
        again = self.create("bob")
        self.assertEqual((again.keys, again.plan), ((), ""))
        self.assertEqual(self.successResultOf(self.store.history("bob")), [])
        mine = self.changes(login="bob")
        self.assertEqual([c.action for c in mine], ["create"])
        self.assertNotIn("old secret plan", repr(mine))
        everything = self.successResultOf(self.store.recent_changes(100, "bob", everything=True))
        self.assertIn("old secret plan", [c.new for c in everything])
        self.assertEqual(everything[-1], mine[-1])

    def test_audit_keep_exact(self) -> None:
        """
        A backend keeping 3 audit entries keeps exactly the newest 3, whatever wrote the others (and its store
        may update an account created elsewhere that it has not read yet).
        """
        writer = self.make_store(self.make_backend(changes_keep=3))
        self.create("alice")
        for number in range(10):
            self.successResultOf(writer.update("alice", {"status": f"s{number}"}, ROOT))
        kept = self.successResultOf(writer.recent_changes(1000))
        self.assertEqual([c.new for c in kept], ["s7", "s8", "s9"])

    def test_audit_max_bytes(self) -> None:
        """
        A backend bounded to 5000 bytes of audit entries keeps the newest entries that fit (and always the
        newest one), so repeated long plans cannot grow the trail without bound.
        """
        writer = self.make_store(self.make_backend(changes_max_bytes=5000))
        self.create("alice")
        for number in range(20):
            self.successResultOf(writer.update("alice", {"plan": f"{number:04d}" + "x" * 996}, ALICE))
        kept = self.successResultOf(writer.recent_changes(1000))
        self.assertLessEqual(sum(map(change_size, kept)), 5000)
        self.assertGreaterEqual(len(kept), 2)
        self.assertTrue(kept[-1].new.startswith("0019"))  # type: ignore[union-attr]
        huge = self.make_store(self.make_backend(changes_max_bytes=10))
        self.successResultOf(huge.update("alice", {"plan": "y" * 2000}, ALICE))
        self.assertEqual([c.new for c in self.successResultOf(huge.recent_changes(1000))], ["y" * 2000])

    # The change feed's contract.

    def test_two_stores_see_each_others_changes(self) -> None:
        """
        Two stores over one storage each see the other's creates, updates and deletes, in commit order, with the
        same accounts, and tell their subscribers of every change exactly once.
        """
        other = self.make_store()
        mine, theirs = self.follow(self.store), self.follow(other)
        self.create("alice", {"status": "in"})
        self.assertEqual(self.catch_up(other), 2)
        self.assertEqual(other.peek("alice"), self.store.peek("alice"))
        self.clock.advance(1)
        self.successResultOf(other.update("alice", {"status": "out"}, ALICE))
        self.successResultOf(other.create("bob", ROOT))
        self.catch_up(self.store)
        self.assertEqual(self.store.peek("alice").status, "out")  # type: ignore[union-attr]
        self.assertEqual(self.store.peek("bob"), other.peek("bob"))
        self.successResultOf(self.store.delete("bob", ROOT))
        self.catch_up(other)
        self.assertIsNone(other.peek("bob"))
        self.assertEqual(other.logins(), ["alice"])
        trail = self.changes()
        self.assertEqual(mine, trail)
        self.assertEqual(theirs, trail)
        self.assertEqual(self.catch_up(self.store), 0)
        self.assertEqual(self.catch_up(other), 0)

    def test_interleaved_writers(self) -> None:
        """
        Three stores write in turn (to the same account and to their own) without catching up in between: once
        each catches up, each has seen every change once, in the order of the audit trail, and all three views
        agree.
        """
        stores = [self.store, self.make_store(), self.make_store()]
        seen = [self.follow(store) for store in stores]
        self.create("shared")
        for store in stores[1:]:
            self.catch_up(store)
        for number in range(30):
            store = stores[number % 3]
            self.clock.advance(0.25)
            self.successResultOf(store.update("shared", {"status": f"n{number}"}, ROOT))
            if number % 7 == 0:
                self.successResultOf(store.create(f"user{number}", ROOT))
        for store in stores:
            self.catch_up(store)
        trail = self.changes()
        self.assertEqual(len(trail), 1 + 30 + 5)
        for view, store in zip(seen, stores):
            self.assertEqual(view, trail)
            self.assertEqual(store.seq, stores[0].seq)
            self.assertEqual(self.successResultOf(store.list()), self.successResultOf(stores[0].list()))
        self.assertEqual(stores[2].peek("shared").status, "n29")  # type: ignore[union-attr]

    def test_follower_reconnects(self) -> None:
        """
        A follower whose backend connection goes away while 50 changes are committed, and comes back, reads all
        of them in order when it catches up.
        """
        backend = self.make_backend()
        other = self.make_store(backend)
        seen = self.follow(other)
        self.create("alice")
        before = len(self.changes())
        backend.close()
        for number in range(50):
            self.successResultOf(self.store.update("alice", {"status": f"s{number}"}, ROOT))
        backend.open()  # reconnected (what it loads is not used: the store follows from where it was)
        self.assertEqual(self.catch_up(other), before + 50)
        self.assertEqual(seen, self.changes())
        self.assertEqual(other.peek("alice").status, "s49")  # type: ignore[union-attr]

    def test_behind_the_horizon_reloads(self) -> None:
        """
        A follower that was away while changes it had not read were pruned gets L{FeedGap} from the feed, so it
        reloads every account (and logs that it did), then follows from the head again.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)  # type: ignore[attr-defined]
        follower = self.make_store()
        self.create("alice")
        self.create("bob")
        self.catch_up(follower)
        writer = self.make_store(self.make_backend(changes_keep=3))
        for number in range(10):
            self.successResultOf(writer.update("alice", {"status": f"s{number}"}, ROOT))
        self.successResultOf(writer.delete("bob", ROOT))
        self.successResultOf(writer.create("carol", ROOT, {"status": "new"}))
        feed = follower.feed
        assert feed is not None
        self.assertRaises(FeedGap, feed.read_after, follower.seq, 100)
        self.assertEqual(self.catch_up(follower), 2)
        self.assertEqual(follower.logins(), ["alice", "carol"])
        self.assertEqual(follower.peek("alice").status, "s9")  # type: ignore[union-attr]
        self.assertEqual(follower.seq, feed.head())
        self.assertTrue([e for e in events if "reloaded" in e.get("log_format", "")], events)
        self.successResultOf(writer.update("carol", {"status": "newer"}, ROOT))
        self.assertEqual(self.catch_up(follower), 1)
        self.assertEqual(follower.peek("carol").status, "newer")  # type: ignore[union-attr]

    def test_reload_then_read_applied_in_order(self) -> None:
        """
        When the store's thread has already run a reload and a later read before the reactor applies either
        (as with a real writer thread), both are applied in order: the change after the reload is not skipped.
        """
        follower_backend = self.make_backend()
        pending: list[tuple[Deferred[Any], Any]] = []

        def later(function: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            pending.append((d, function()))  # runs now, as the thread would; the reactor hears of it later
            return d

        follower = CachedStore(follower_backend, self.clock.seconds, later)
        follower.open()
        self.addCleanup(follower.close)
        seen = self.follow(follower)
        writer = self.make_store(self.make_backend(changes_keep=2))
        self.create("alice")
        for number in range(5):
            self.successResultOf(writer.update("alice", {"status": f"s{number}"}, ROOT))
        reloaded = follower.catch_up()
        self.successResultOf(writer.update("alice", {"status": "after the reload"}, ROOT))
        caught_up = follower.catch_up()
        for d, result in pending:
            d.callback(result)
        self.assertEqual(self.successResultOf(reloaded), 1)
        self.assertEqual(self.successResultOf(caught_up), 1)
        self.assertEqual(follower.peek("alice").status, "after the reload")  # type: ignore[union-attr]
        self.assertEqual([(c.action, c.new) for c in seen], [("reload", None), ("update", "after the reload")])

    def test_head_and_read_after(self) -> None:
        """
        The feed's head is the newest change's sequence number; reading after any retained number returns
        the later changes oldest first, at most C{limit} of them, with each touched account's current state;
        reading after the head returns nothing.
        """
        feed = feed_of(self.backend)
        assert feed is not None
        start = feed.head()
        self.create("alice")
        self.successResultOf(self.store.update("alice", {"status": "a"}, ROOT))
        self.successResultOf(self.store.update("alice", {"status": "b"}, ROOT))
        head = feed.head()
        self.assertGreater(head, start)
        batch = feed.read_after(start, 2)
        self.assertEqual([change.action for _, change in batch.changes], ["create", "update"])
        self.assertEqual(batch.head, batch.changes[-1][0])
        seqs = [seq for seq, _ in batch.changes]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(batch.accounts["alice"], self.store.peek("alice"))
        rest = feed.read_after(batch.head, 100)
        self.assertEqual([change.new for _, change in rest.changes], ["b"])
        self.assertEqual(rest.head, head)
        empty = feed.read_after(head, 100)
        self.assertEqual((empty.head, empty.changes), (head, []))
        self.assertRaises(FeedGap, feed.read_after, head + 1000, 100)

    def test_reopen(self) -> None:
        """
        Accounts, keys, history and changes survive closing the store and opening a new backend on the same
        storage (the file, the database).
        """
        self.create("alice", {"keys": [KEY_A, KEY_B], "plan": "a\nplan", "hidden": True})
        self.clock.advance(5)
        alice = self.successResultOf(self.store.update("alice", {"role": "admin", "status": "s"}, ALICE))
        bob = self.create("bob", {"status": "plain"})
        self.successResultOf(self.store.add_history("alice", "whoami"))
        changes = self.changes()
        self.store.close()
        self.store.close()

        store = CachedStore(self.make_backend(), self.clock.seconds)
        store.open()
        self.addCleanup(store.close)
        self.assertEqual(store.peek("alice"), alice)
        self.assertEqual(store.peek("bob"), bob)
        self.assertEqual(self.successResultOf(store.history("alice")), ["whoami"])
        self.assertEqual(self.successResultOf(store.recent_changes(1000)), changes)


class MemoryStoreTests(StoreTestsMixin, SynchronousTestCase):
    """
    The shared suite over a L{MemoryBackend}.
    """

    def make_backend(self, changes_keep: int | None = None, changes_max_bytes: int | None = None) -> IStoreBackend:
        """
        Make an empty memory backend, or a peer of the first one.
        """
        first: MemoryBackend | None = getattr(self, "_first", None)
        if first is None:
            self._first = first = MemoryBackend()
            if changes_keep is None and changes_max_bytes is None:
                return first
        return first.peer(changes_keep, changes_max_bytes)


class FlakyFeedBackend(MemoryBackend):
    """
    A memory backend whose feed reads fail while C{failing} is set.
    """

    failing = False

    def read_after(self, seq: int, limit: int) -> FeedBatch:
        """
        Fail with L{StoreUnavailable} while C{failing}, else read.
        """
        if self.failing:
            raise StoreUnavailable("cannot read the store: disk I/O error")
        return super().read_after(seq, limit)


class FeedFailureTests(SynchronousTestCase):
    """
    What the cached store does when reading its feed fails.
    """

    def setUp(self) -> None:
        """
        A store over a flaky backend, and the log events.
        """
        self.clock = Clock()
        self.backend = FlakyFeedBackend()
        self.store = CachedStore(self.backend, self.clock.seconds)
        self.store.open()
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_committed_write_acknowledged(self) -> None:
        """
        A write that committed is acknowledged and shown even if reading the feed after it fails; subscribers
        hear of it once the feed reads again.
        """
        seen: list[Change] = []
        self.store.subscribe(seen.append)
        self.backend.failing = True
        account = self.successResultOf(self.store.create("alice", ROOT, {"status": "here"}))
        self.assertEqual(self.store.peek("alice"), account)
        self.assertEqual(seen, [])
        self.backend.failing = False
        self.successResultOf(self.store.catch_up())
        self.assertEqual([c.action for c in seen], ["create", "update"])

    def test_failing_feed_logged_once(self) -> None:
        """
        Wakes while the feed keeps failing log one warning, not one per wake; recovery is logged too.
        """
        other = self.backend.peer()
        self.store.start_following()
        self.backend.failing = True
        for number in range(5):
            other.create(f"user{number}", {}, ROOT, 1.0)
        warnings = [e for e in self.events if "change feed" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1, warnings)
        self.backend.failing = False
        other.create("last", {}, ROOT, 2.0)
        self.assertIn("last", self.store.logins())
        self.assertTrue([e for e in self.events if e.get("log_format") == "Reading the store's change feed again"])


    def test_failed_later_batch_read_again(self) -> None:
        """
        When the feed fails after the first of several batches, nothing read is lost: the next read starts again
        from the last change applied, and every change reaches the view and the subscribers once.
        """
        self.patch(cached, "FEED_BATCH", 2)
        seen: list[Change] = []
        self.store.subscribe(seen.append)
        other = self.backend.peer()
        for number in range(5):
            other.create(f"user{number}", {}, ROOT, 1.0)
        calls = 0
        read_after = self.backend.read_after

        def second_call_fails(seq: int, limit: int) -> FeedBatch:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise StoreUnavailable("cannot read the store: disk I/O error")
            return read_after(seq, limit)

        self.backend.read_after = second_call_fails  # type: ignore[method-assign]
        self.failureResultOf(self.store.catch_up(), StoreUnavailable)
        self.successResultOf(self.store.catch_up())
        self.assertEqual(sorted(self.store.logins()), [f"user{number}" for number in range(5)])
        self.assertEqual([c.login for c in seen if c.action == "create"], [f"user{number}" for number in range(5)])


class SQLiteStoreTests(StoreTestsMixin, SynchronousTestCase):
    """
    The shared suite over an L{SQLiteBackend} in a temporary file, plus persistence across reopening.
    """

    def make_backend(self, changes_keep: int | None = None, changes_max_bytes: int | None = None) -> IStoreBackend:
        """
        Make a backend over a new file, or over the test's file after the first call.
        """
        if not hasattr(self, "path"):
            self.path = self.mktemp()
        limits = {"changes_keep": changes_keep, "changes_max_bytes": changes_max_bytes}
        return SQLiteBackend(self.path, **{name: value for name, value in limits.items() if value is not None})

    def test_description(self) -> None:
        """
        The description names the file.
        """
        self.assertEqual(self.store.description, f"sqlite:{self.path}")

