"""
One behaviour suite for L{sshfinger.store.cached.CachedStore}, run over every L{IStoreBackend}.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sshfinger.model.account import LOGIN_RULE, Account, Actor, Change
from sshfinger.model.errors import AccountExists, InvalidValue, NoSuchAccount
from sshfinger.store.cached import HISTORY_LINE_MAX, CachedStore
from sshfinger.store.interfaces import IStoreBackend, IUserStore
from sshfinger.store.memory import MemoryBackend
from sshfinger.store.sqlite import SQLiteBackend

ROOT = Actor("root", "cli")
ALICE = Actor("alice", "shell", "127.0.0.1:50022")
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@b"


class StoreTestsMixin:
    """
    Tests every store must pass, whatever its backend.  Subclasses define L{make_backend}.

    @ivar clock: the fake clock the store stamps changes with.
    @ivar backend: the backend under test.
    @ivar store: a L{CachedStore} over it, using the synchronous executor.
    """

    clock: Clock
    backend: IStoreBackend
    store: CachedStore

    def make_backend(self) -> IStoreBackend:
        """
        Make a fresh, empty, unopened backend.
        """
        raise NotImplementedError()

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
        The cached store provides L{IUserStore} and its backend L{IStoreBackend}.
        """
        self.assertTrue(verifyObject(IUserStore, self.store))
        self.assertTrue(verifyObject(IStoreBackend, self.backend))
        self.assertEqual(self.store.description, self.backend.description)

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


class MemoryStoreTests(StoreTestsMixin, SynchronousTestCase):
    """
    The shared suite over a L{MemoryBackend}.
    """

    def make_backend(self) -> IStoreBackend:
        """
        Make an empty memory backend.
        """
        return MemoryBackend()


class SQLiteStoreTests(StoreTestsMixin, SynchronousTestCase):
    """
    The shared suite over an L{SQLiteBackend} in a temporary file, plus persistence across reopening.
    """

    def make_backend(self) -> IStoreBackend:
        """
        Make a backend over a new file.
        """
        self.path = self.mktemp()
        return SQLiteBackend(self.path)

    def test_description(self) -> None:
        """
        The description names the file.
        """
        self.assertEqual(self.store.description, f"sqlite:{self.path}")

    def test_reopen(self) -> None:
        """
        Accounts, keys, history and changes survive closing the store and opening a new backend on the file.
        """
        self.create("alice", {"keys": [KEY_A, KEY_B], "plan": "a\nplan", "hidden": True})
        self.clock.advance(5)
        alice = self.successResultOf(self.store.update("alice", {"role": "admin", "status": "s"}, ALICE))
        bob = self.create("bob")
        self.successResultOf(self.store.add_history("alice", "whoami"))
        changes = self.changes()
        self.store.close()
        self.store.close()

        store = CachedStore(SQLiteBackend(self.path), self.clock.seconds)
        store.open()
        self.addCleanup(store.close)
        self.assertEqual(store.peek("alice"), alice)
        self.assertEqual(store.peek("bob"), bob)
        self.assertEqual(self.successResultOf(store.history("alice")), ["whoami"])
        self.assertEqual(self.successResultOf(store.recent_changes(1000)), changes)
