"""
Tests for L{sshfinger.ssh.passwd}: locked, atomic edits of the passwd file, deletion, the byte order mark and the
password strength rule.
"""

from __future__ import annotations

import os
import stat
import threading

import bcrypt
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.account import Account, Actor, check_password_strength
from sshfinger.ssh import passwd
from sshfinger.ssh.checkers import plaintext_warnings
from sshfinger.ssh.service import forget_passwords
from sshfinger.store.cached import CachedStore, run_now
from sshfinger.store.memory import MemoryBackend


class StrengthTests(SynchronousTestCase):
    """
    L{sshfinger.model.account.check_password_strength}.
    """

    def test_minimum_length(self) -> None:
        """
        A password shorter than 10 characters is refused with one line naming the minimum; 10 are enough.
        """
        with self.assertRaises(ValueError) as caught:
            check_password_strength("x")
        self.assertEqual(str(caught.exception), "password too short: at least 10 characters required")
        check_password_strength("0123456789")

    def test_configured_length(self) -> None:
        """
        The minimum is configurable.
        """
        check_password_strength("abcd", min_length=4)
        self.assertRaises(ValueError, check_password_strength, "0123456789", min_length=12)

    def test_blank(self) -> None:
        """
        A password of spaces only is refused as empty, whatever its length.
        """
        with self.assertRaises(ValueError) as caught:
            check_password_strength(" " * 20)
        self.assertEqual(str(caught.exception), "empty password refused")


class EditTests(SynchronousTestCase):
    """
    L{passwd.set_password} and L{passwd.delete_password}.
    """

    def setUp(self) -> None:
        """
        A passwd file path in a fresh directory.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "passwd")

    def test_concurrent_changes_all_kept(self) -> None:
        """
        Sixteen changes made at once from eight threads (each a separate lock holder, as two processes are)
        are all in the file afterwards: none overwrote another's.
        """
        logins = [f"user{number}" for number in range(8)]
        barrier = threading.Barrier(len(logins))

        def change(login: str) -> None:
            barrier.wait()
            for round_ in range(2):
                passwd.set_password(self.path, login, f"{login}-password-{round_}", rounds=4)

        threads = [threading.Thread(target=change, args=(login,)) for login in logins]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with open(self.path, "rb") as f:
            entries = passwd.parse(f.read())
        self.assertEqual(sorted(entries), logins)
        for login in logins:
            self.assertTrue(bcrypt.checkpw(f"{login}-password-1".encode(), entries[login].secret))

    def test_modes(self) -> None:
        """
        A new passwd file and its lock file are created 0600.
        """
        passwd.set_password(self.path, "alice", "long-enough-pw", rounds=4)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(passwd.lock_path(self.path)).st_mode), 0o600)

    def test_missing_directory(self) -> None:
        """
        A passwd file in a missing directory is one clear L{ValueError}, not a traceback.
        """
        with self.assertRaises(ValueError) as caught:
            passwd.set_password(os.path.join(self.path, "nowhere", "passwd"), "alice", "long-enough-pw", rounds=4)
        self.assertIn("cannot lock", str(caught.exception))

    def test_delete(self) -> None:
        """
        Deleting a login's entry removes it (any case) and keeps the others and the comments; deleting it again,
        or from a missing file, finds nothing.
        """
        with open(self.path, "wb") as f:
            f.write(b"# comment\nbob:plain\n")
        passwd.set_password(self.path, "alice", "long-enough-pw", rounds=4)
        self.assertTrue(passwd.delete_password(self.path, "Alice"))
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"# comment\nbob:plain\n")
        self.assertFalse(passwd.delete_password(self.path, "alice"))
        self.assertFalse(passwd.delete_password(self.path + ".missing", "alice"))
        self.assertFalse(os.path.exists(self.path + ".missing"))


class ForgetPasswordsTests(SynchronousTestCase):
    """
    The SSH service removes a deleted account's password (issue 18 #4), whoever deleted it.
    """

    def test_deleted_account_loses_its_password(self) -> None:
        """
        When the store deletes bob, his entry leaves the passwd file and alice's stays; a re-created bob then
        has no password, so the old one no longer logs in.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "passwd")
        passwd.set_password(path, "alice", "alice-password", rounds=4)
        passwd.set_password(path, "bob", "old-bob-password", rounds=4)
        store = CachedStore(MemoryBackend([Account("alice"), Account("bob")]), Clock().seconds)
        store.open()
        store.subscribe(forget_passwords([path], run_now))
        admin = Actor("root", "shell")
        self.successResultOf(store.delete("bob", admin))
        self.successResultOf(store.create("bob", admin))
        self.assertEqual(sorted(passwd.parse(open(path, "rb").read())), ["alice"])

    def test_other_changes_leave_the_file(self) -> None:
        """
        An update or a creation does not touch the passwd file.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "passwd")
        passwd.set_password(path, "alice", "alice-password", rounds=4)
        before = open(path, "rb").read()
        store = CachedStore(MemoryBackend([Account("alice")]), Clock().seconds)
        store.open()
        store.subscribe(forget_passwords([path], run_now))
        self.successResultOf(store.update("alice", {"status": "here"}, Actor("alice", "shell")))
        self.assertEqual(open(path, "rb").read(), before)


class ByteOrderMarkTests(SynchronousTestCase):
    """
    A passwd file saved by an editor with a UTF-8 byte order mark.
    """

    def test_first_entry_read_and_warned(self) -> None:
        """
        The first entry is read as if there were no mark, the start-up warnings say so in one line, and a
        change drops the mark.
        """
        path = self.mktemp()
        hashed = passwd.hash_password("long-enough-pw", rounds=4)
        with open(path, "wb") as f:
            f.write(passwd.BOM + b"alice:" + hashed + b"\n")
        with open(path, "rb") as f:
            self.assertEqual(list(passwd.parse(f.read())), ["alice"])
        self.assertEqual(
            plaintext_warnings(path),
            [f"{path}:1: the file starts with a UTF-8 byte order mark; it is skipped (save without BOM)"],
        )
        passwd.set_password(path, "bob", "long-enough-pw", rounds=4)
        with open(path, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"alice:"))
        self.assertEqual(sorted(passwd.parse(data)), ["alice", "bob"])
