"""
Tests for the SSH portal: several checkers of one credential kind combined (L{FirstOfCheckers}), as with the
store's keys plus C{--auth sshkey}, or two C{--auth file:} files.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from twisted.conch.checkers import SSHPublicKeyChecker, UNIXAuthorizedKeysFiles
from twisted.conch.ssh.keys import Key
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.account import Account
from sshfinger.ssh.checkers import BcryptFileChecker, StoreKeysDB
from sshfinger.ssh.service import FirstOfCheckers
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend


def signed(key: Key, username: bytes) -> SSHPrivateKey:
    """
    Public-key credentials for C{username}, signed with C{key} as a client does.
    """
    data = b"session-and-request-data"
    return SSHPrivateKey(username, b"ssh-ed25519", key.public().blob(), data, key.sign(data))


class FirstOfCheckersTests(SynchronousTestCase):
    """
    L{FirstOfCheckers}.
    """

    def setUp(self) -> None:
        """
        Two keys: one stored in the store for alice, one in a fake system home's authorized_keys for bob.
        """
        self.store_key = Key.fromString(_ed25519_private())
        self.home_key = Key.fromString(_ed25519_private())
        store = CachedStore(
            MemoryBackend([Account("alice", keys=(self.store_key.public().toString("openssh").decode(),))]),
            Clock().seconds,
        )
        store.open()
        home = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(home, ".ssh"))
        with open(os.path.join(home, ".ssh", "authorized_keys"), "wb") as f:
            f.write(self.home_key.public().toString("openssh") + b"\n")
        userdb = SimpleNamespace(getpwnam=lambda name: SimpleNamespace(pw_dir=home, pw_uid=os.getuid(), pw_gid=os.getgid()))
        self.checker = FirstOfCheckers(
            [SSHPublicKeyChecker(StoreKeysDB(store)), SSHPublicKeyChecker(UNIXAuthorizedKeysFiles(userdb=userdb))]
        )

    def test_either_source_accepts(self) -> None:
        """
        A key from the store and a key from the system authorized_keys (C{--auth sshkey}) both log in.
        """
        self.assertEqual(self.successResultOf(maybeDeferred(self.checker.requestAvatarId, signed(self.store_key, b"alice"))), b"alice")
        self.assertEqual(self.successResultOf(maybeDeferred(self.checker.requestAvatarId, signed(self.home_key, b"bob"))), b"bob")

    def test_none_accepts(self) -> None:
        """
        A key in neither source is refused with L{UnauthorizedLogin}.
        """
        stranger = Key.fromString(_ed25519_private())
        self.failureResultOf(maybeDeferred(self.checker.requestAvatarId, signed(stranger, b"alice")), UnauthorizedLogin)

    def test_two_passwd_files(self) -> None:
        """
        Two C{--auth file:} files both count.
        """
        from sshfinger.ssh.passwd import set_password
        from sshfinger.store.cached import run_now

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        first, second = os.path.join(directory, "one"), os.path.join(directory, "two")
        set_password(first, "alice", "pw1", 4)
        set_password(second, "bob", "pw2", 4)
        checker = FirstOfCheckers([BcryptFileChecker(first, run_now), BcryptFileChecker(second, run_now)])
        self.assertEqual(self.successResultOf(checker.requestAvatarId(UsernamePassword(b"bob", b"pw2"))), b"bob")
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"bob", b"pw1")), UnauthorizedLogin)


def _ed25519_private() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return Key(ed25519.Ed25519PrivateKey.generate()).toString("OPENSSH")
