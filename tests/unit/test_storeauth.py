"""
C{--auth store}: SSH passwords checked against bcrypt hashes kept with the accounts in the store.
"""

from __future__ import annotations

import os

import bcrypt
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.account import Actor
from sshfinger.model.errors import StoreUnavailable
from sshfinger.ssh.storeauth import StorePasswordChecker, keeps_passwords, store_password_setter
from sshfinger.store.cached import run_now
from sshfinger.store.memory import MemoryBackend
from sshfinger.tap import Options

HASH = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4))


class FakePasswords:
    """
    A store backend that keeps password hashes in a dict.
    """

    def __init__(self) -> None:
        self.hashes: dict[str, bytes] = {"alice": HASH, "broken": b"$2b$04$not-a-hash"}
        self.fail = False

    def cached_password_hash(self, login: str) -> bytes | None:
        """
        The hash in memory.
        """
        return self.hashes.get(login)

    def set_password_hash(self, login: str, hashed: bytes | None, actor: Actor, at: float) -> None:
        """
        Keep the hash, or fail as an unreachable database does.
        """
        if self.fail:
            raise StoreUnavailable("cannot save change: the database is unreachable")
        assert hashed is not None
        self.hashes[login] = hashed


class CheckerTests(SynchronousTestCase):
    """
    L{StorePasswordChecker} against a fake store.
    """

    def setUp(self) -> None:
        """
        A checker over the fake store, recording which hashes bcrypt was asked about.
        """
        self.store = FakePasswords()
        self.checked: list[bytes] = []

        def checkpw(password: bytes, hashed: bytes) -> bool:
            self.checked.append(hashed)
            return bcrypt.checkpw(password, hashed)

        self.checker = StorePasswordChecker(self.store, run_now, checkpw)

    def test_right_password(self) -> None:
        """
        The right password gives the login, lower-cased, as bytes (whatever the case typed).
        """
        self.assertEqual(self.successResultOf(self.checker.requestAvatarId(UsernamePassword(b"Alice", b"correct horse"))), b"alice")

    def test_wrong_password_and_unknown_login(self) -> None:
        """
        A wrong password is refused; so is an unknown login, after one bcrypt check of its own (timing).
        """
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"alice", b"wrong")), UnauthorizedLogin)
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"nobody", b"x")), UnauthorizedLogin)
        self.assertEqual(len(self.checked), 2)
        self.assertNotEqual(self.checked[1], HASH)

    def test_malformed_hash(self) -> None:
        """
        A malformed stored hash refuses the login (never raises to Conch).
        """
        self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"broken", b"x")), UnauthorizedLogin)

    def test_setter(self) -> None:
        """
        The shell's passwd stores a bcrypt hash of the new password; a store failure becomes a one-line
        L{ValueError} (which the shell reports).
        """
        setter = store_password_setter(self.store, run_now, lambda: 5.0, rounds=4)
        self.successResultOf(setter("Bob", "new secret"))
        self.assertTrue(bcrypt.checkpw(b"new secret", self.store.hashes["bob"]))
        self.store.fail = True
        error = self.failureResultOf(setter("bob", "x"), ValueError).value
        self.assertIn("database is unreachable", str(error))

    def test_keeps_passwords(self) -> None:
        """
        Only backends with password methods keep passwords.
        """
        self.assertTrue(keeps_passwords(self.store))
        self.assertFalse(keeps_passwords(MemoryBackend()))


class OptionTests(SynchronousTestCase):
    """
    C{--auth store} on the command line.
    """

    def test_needs_postgresql(self) -> None:
        """
        C{--auth store} with a SQLite or memory store is refused with one line; with a PostgreSQL URL it is
        accepted.
        """
        keys = self.mktemp()
        os.makedirs(keys)
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--keys", keys, "--store", "memory", "--auth", "store"])
        self.assertIn("--auth store: needs a store that keeps passwords", str(error))
        options = Options()
        options.parseOptions(["--keys", keys, "--store", "postgresql://db.example/sshfinger", "--auth", "store"])
        self.assertTrue(options["auth-store"])
