"""
Tests for L{sshfinger.cli.system_users}: importing system users and their dot files from a fake password database
and home directories built by the test, hostile files included.
"""

from __future__ import annotations

import io
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sshfinger.cli.main import main, wait
from sshfinger.cli.system_users import (
    CHANNEL,
    FILE_CAP,
    PasswdEntry,
    SystemUsersService,
    apply,
    clean,
    scan,
    uid_range,
)
from sshfinger.model.account import Actor
from sshfinger.store.cached import CachedStore
from sshfinger.store.service import open_offline

ME = os.getuid()
IMPORT = Actor("root@local", CHANNEL)


class FakeSystem:
    """
    A password database and home directories under a temporary directory; every user's UID is the test's own
    (so the homes and files are theirs), except where a test says otherwise.
    """

    def __init__(self, root: str) -> None:
        """
        @param root: an empty directory for the homes.
        """
        self.root = root
        self.entries: list[PasswdEntry] = []

    def user(self, name: str, gecos: str = "", files: dict[str, str] | None = None, uid: int = ME) -> str:
        """
        Add a user with a home holding C{files}; return the home.
        """
        home = os.path.join(self.root, name)
        os.makedirs(home)
        for filename, content in (files or {}).items():
            with open(os.path.join(home, filename), "w", encoding="utf-8") as f:
                f.write(content)
        self.entries.append(PasswdEntry(name, uid, gecos, home))
        return home

    def passwd_file(self) -> str:
        """
        Write the database as a C{passwd(5)} file; return its path.
        """
        path = os.path.join(self.root, "passwd")
        with open(path, "w") as f:
            for e in self.entries:
                f.write(f"{e.name}:x:{e.uid}:{e.uid}:{e.gecos}:{e.home}:/bin/sh\n")
        return path


class ScanTests(SynchronousTestCase):
    """
    L{scan}: what is read from the password database and the home directories, and what is refused.
    """

    def setUp(self) -> None:
        """
        A fake system.
        """
        self.system = FakeSystem(os.path.abspath(self.mktemp()))
        os.makedirs(self.system.root)

    def scan(self) -> dict[str, Any]:
        """
        Scan every user (any UID), keyed by login.
        """
        return {user.login: user for user in scan(self.system.entries, 0, 2**32)}

    def test_classic_files(self) -> None:
        """
        GECOS name, office and phone; C{.project}'s first line as the status; C{.plan} then C{.pgpkey} as the plan.
        """
        self.system.user(
            "alice",
            "Alice Liddell,Wonderland 1865,555-1865,,",
            {".plan": "Follow the White Rabbit.\n", ".project": "Tea party\nignored\n", ".pgpkey": "KEY BLOCK\n"},
        )
        alice = self.scan()["alice"]
        self.assertEqual(
            alice.fields,
            {
                "real_name": "Alice Liddell",
                "office": "Wonderland 1865",
                "phone": "555-1865",
                "status": "Tea party",
                "plan": "Follow the White Rabbit.\n\nPGP key:\nKEY BLOCK",
            },
        )
        self.assertEqual(alice.notes, [])

    def test_hostile_files(self) -> None:
        """
        A C{.plan} linked to a secret (as C{/etc/shadow}), a FIFO C{.project} (the scan must not wait on it), a
        1 GB C{.pgpkey}: each skipped and reported; nothing of them is imported.
        """
        secret = os.path.join(self.system.root, "shadow")
        with open(secret, "w") as f:
            f.write("root:SECRET-HASH:19000::::::\n")
        home = self.system.user("mallory", "Mallory")
        os.symlink(secret, os.path.join(home, ".plan"))
        os.mkfifo(os.path.join(home, ".project"))
        with open(os.path.join(home, ".pgpkey"), "wb") as f:
            f.truncate(2**30)
        mallory = self.scan()["mallory"]
        self.assertEqual(mallory.fields, {"real_name": "Mallory"})
        self.assertEqual(
            sorted(mallory.notes),
            [
                "skipped mallory's .pgpkey is larger than 16384 bytes",
                "skipped mallory's .plan is a symbolic link",
                "skipped mallory's .project is not a regular file",
            ],
        )

    def test_escape_codes_removed(self) -> None:
        """
        Escape sequences (CSI, OSC, 8-bit CSI) and control characters are removed from the files and GECOS, and
        that is reported.
        """
        self.system.user(
            "eve",
            "Eve\x1b[5mBlink",
            {".plan": "\x1b[2J\x1b]0;pwned\x07Hello\x1b[31m red\x9b1m\x07\nline two\r\n", ".project": "ok"},
        )
        eve = self.scan()["eve"]
        self.assertEqual(eve.fields["plan"], "Hello red\nline two")
        self.assertEqual(eve.fields["real_name"], "EveBlink")
        self.assertEqual(len(eve.notes), 2)
        self.assertEqual(clean("plain\ttext", multiline=False), ("plain text", True))
        self.assertEqual(clean("plain text", multiline=False), ("plain text", False))

    def test_nofinger(self) -> None:
        """
        A user with C{~/.nofinger} is marked so, and none of their files is read.
        """
        self.system.user("carol", "Carol", {".nofinger": "", ".plan": "secret plans"})
        carol = self.scan()["carol"]
        self.assertTrue(carol.nofinger)
        self.assertEqual(carol.fields, {})

    def test_home_refused(self) -> None:
        """
        A home that is a symbolic link, or (as root) is not owned by its user, is not read; a file not owned by its
        user (a hard link to someone else's file) neither.
        """
        target = self.system.user("real", "", {".plan": "real plan"})
        os.symlink(target, os.path.join(self.system.root, "linked"))
        self.system.entries.append(PasswdEntry("linked", ME, "", os.path.join(self.system.root, "linked")))
        users = self.scan()
        self.assertEqual(users["linked"].notes, [f"skipped linked's files: home {self.system.root}/linked is a symbolic link"])
        if ME != 0:
            raise SkipTest("the ownership checks need root")
        home = self.system.user("dave", "", {".plan": "plan"})
        os.chown(home, 12345, 12345)
        other = self.system.user("frank", "", {".plan": "plan"})
        os.chown(os.path.join(other, ".plan"), 12345, 12345)
        users = self.scan()
        self.assertEqual(users["dave"].notes, [f"skipped dave's files: home {home} is not owned by dave"])
        self.assertEqual(users["frank"].notes, ["skipped frank's .plan is not owned by its user"])

    def test_uid_range_and_logins(self) -> None:
        """
        Only UIDs in the range are read; a login sshfinger cannot hold is skipped with a note.
        """
        self.system.user("daemon", uid=1)
        self.system.user("bob", uid=1000)
        self.system.user("Bad Name", uid=1001)
        users = scan(self.system.entries, 1000, 60000)
        self.assertEqual([user.login for user in users], ["Bad Name", "bob"])
        self.assertEqual(users[0].notes, ["skipped 'Bad Name': not a valid sshfinger login"])

    def test_login_defs(self) -> None:
        """
        The default range comes from C{/etc/login.defs}'s C{UID_MIN}/C{UID_MAX}, else 1000-60000.
        """
        path = os.path.join(self.system.root, "login.defs")
        with open(path, "w") as f:
            f.write("# comment UID_MIN 5\nUID_MIN\t\t 500\nUID_MAX 29999\n")
        self.assertEqual(uid_range(path), (500, 29999))
        self.assertEqual(uid_range(os.path.join(self.system.root, "missing")), (1000, 60000))
        self.assertEqual(FILE_CAP, 16384)


class ApplyTests(SynchronousTestCase):
    """
    L{apply} and the C{sshfinger import-system} command: what a (later) import changes in the store.
    """

    def setUp(self) -> None:
        """
        A fake system with alice and a memory store.
        """
        self.system = FakeSystem(os.path.abspath(self.mktemp()))
        os.makedirs(self.system.root)
        self.home = self.system.user("alice", "Alice Liddell", {".plan": "first plan", ".project": "first"})
        self.store: CachedStore = open_offline("memory")
        self.addCleanup(self.store.close)

    def run_import(self, overwrite: bool = False) -> list[str]:
        """
        Import every user; return the report.
        """
        return wait(apply(self.store, scan(self.system.entries, 0, 2**32), IMPORT, overwrite))  # type: ignore[no-any-return]

    def write(self, name: str, content: str) -> None:
        """
        Change one of alice's files.
        """
        with open(os.path.join(self.home, name), "w") as f:
            f.write(content)

    def test_later_import_keeps_ssh_edits(self) -> None:
        """
        A later import updates what it wrote itself, keeps a field edited over SSH (and says so), and replaces it
        only with C{overwrite}.
        """
        self.assertEqual(self.run_import(), ["created alice: name, status, plan"])
        self.assertEqual(self.run_import(), [])
        wait(self.store.update("alice", {"plan": "edited over SSH"}, Actor("alice", "shell", "127.0.0.1:5")))
        self.write(".plan", "second plan")
        self.write(".project", "second")
        report = self.run_import()
        self.assertEqual(
            report,
            ["updated alice: status", "kept alice's plan: changed since the last import (--overwrite replaces)"],
        )
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual((alice.plan, alice.status), ("edited over SSH", "second"))
        self.assertEqual(self.run_import(overwrite=True), ["updated alice: plan"])
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual(alice.plan, "second plan")

    def test_existing_account_not_clobbered(self) -> None:
        """
        An account made another way (the demo alice) keeps its fields; an empty field is filled in.
        """
        wait(self.store.create("alice", Actor("admin", "shell"), {"real_name": "Alice L.", "plan": "mine"}))
        self.assertEqual(
            self.run_import(),
            ["updated alice: status", "kept alice's name, plan: changed since the last import (--overwrite replaces)"],
        )

    def test_nofinger_hides(self) -> None:
        """
        A C{~/.nofinger} added later hides the imported account; a new user with one is not imported.
        """
        self.system.user("carol", "Carol", {".nofinger": ""})
        self.assertEqual(self.run_import(), ["created alice: name, status, plan"])
        self.assertIsNone(self.store.peek("carol"))
        self.write(".nofinger", "")
        self.assertEqual(self.run_import(), ["hid alice (~/.nofinger)"])
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertTrue(alice.hidden)

    def test_command(self) -> None:
        """
        C{sshfinger import-system --passwd-file F --uid-min N --uid-max M} imports into a SQLite store and prints
        the report and a summary.
        """
        self.system.user("bob", "Bob", uid=ME, files={".plan": "\x1b[2Jbob's plan"})
        store = os.path.join(self.system.root, "s.db")
        out, err = io.StringIO(), io.StringIO()
        args = ["import-system", "--store", store, "--passwd-file", self.system.passwd_file()]
        status = main([*args, "--uid-min", str(ME), "--uid-max", str(ME)], out, err)
        self.assertEqual(status, 0, err.getvalue())
        self.assertEqual(
            out.getvalue().splitlines(),
            [
                "created alice: name, status, plan",
                "cleaned bob's .plan: escape sequences, control characters or invalid UTF-8 removed",
                "created bob: name, plan",
                f"2 system user(s) with UID {ME}-{ME} read (0 with ~/.nofinger, left out)",
            ],
        )
        out = io.StringIO()
        self.assertEqual(main(["show", "bob", "--store", store], out, err), 0)
        self.assertIn("bob's plan", out.getvalue())
        self.assertNotIn("\x1b", out.getvalue())


class ServiceTests(SynchronousTestCase):
    """
    L{SystemUsersService}: the periodic import in the server.
    """

    def test_refresh_in_a_thread(self) -> None:
        """
        The scan runs through the reactor's thread pool (never inline), then the store is updated and each line
        logged; a refusal found again at the next refresh is not logged again.
        """
        system = FakeSystem(os.path.abspath(self.mktemp()))
        os.makedirs(system.root)
        system.user("alice", "Alice", {".plan": "plan"})
        store = open_offline("memory")
        self.addCleanup(store.close)
        calls: list[Any] = []

        class Pool:
            def callInThreadWithCallback(self, onResult: Any, f: Any, *a: Any, **kw: Any) -> None:
                calls.append(f)
                onResult(True, f(*a, **kw))

        class Reactor(Clock):
            def getThreadPool(self) -> Pool:
                return Pool()

            def callFromThread(self, f: Any, *a: Any, **kw: Any) -> None:
                f(*a, **kw)

        os.symlink("/etc/shadow", os.path.join(system.user("mallory"), ".plan"))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        reactor = Reactor()
        service = SystemUsersService(store, reactor, 60, (0, 2**32), lambda: system.entries)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(len(calls), 1)
        alice = store.peek("alice")
        assert alice is not None
        self.assertEqual(alice.plan, "plan")
        reactor.advance(60)
        self.assertEqual(len(calls), 2)
        lines = [e["line"] for e in events if "line" in e]
        self.assertEqual(lines, ["created alice: name, plan", "skipped mallory's .plan is a symbolic link", "created mallory"])
