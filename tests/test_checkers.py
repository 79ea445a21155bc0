"""
Tests for L{sshfinger.ssh.checkers}: the bcrypt passwd checker, the store's keys, key-line validation and the
bytes adapter for C{--auth memory:}.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Callable

import bcrypt
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.account import Account
from sshfinger.passwd import hash_password
from sshfinger.ssh.checkers import (
    BcryptFileChecker,
    BytesUsernameChecker,
    StoreKeysDB,
    parse_authorized_key,
    plaintext_warnings,
)
from sshfinger.store.cached import CachedStore, run_now
from sshfinger.store.memory import MemoryBackend


class QueuedExecutor:
    """
    An executor that only queues work until L{run_all}: shows what runs "in the thread".
    """

    def __init__(self) -> None:
        """
        Nothing queued.
        """
        self.queue: list[tuple[Callable[[], Any], Deferred[Any]]] = []

    def __call__(self, function: Callable[[], Any]) -> Deferred[Any]:
        """
        Queue C{function}.
        """
        d: Deferred[Any] = Deferred()
        self.queue.append((function, d))
        return d

    def run_all(self) -> None:
        """
        Run what was queued, firing each Deferred.
        """
        while self.queue:
            function, d = self.queue.pop(0)
            try:
                d.callback(function())
            except Exception as e:
                d.errback(e)


class BcryptFileCheckerTests(SynchronousTestCase):
    """
    L{BcryptFileChecker}.
    """

    def setUp(self) -> None:
        """
        A passwd file: alice with a bcrypt hash at cost 4, bob in plaintext; every bcrypt check recorded.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.path = os.path.join(directory, "passwd")
        self.alice_hash = hash_password("wonderland", rounds=4)
        with open(self.path, "wb") as f:
            f.write(b"alice:" + self.alice_hash + b"\nbob:plain-pw\n")
        self.checked: list[bytes] = []

        def checkpw(password: bytes, hashed: bytes) -> bool:
            self.checked.append(hashed)
            return bcrypt.checkpw(password, hashed)

        self.checker = BcryptFileChecker(self.path, run_now, checkpw)

    def login(self, username: bytes, password: bytes) -> Deferred[bytes]:
        """
        Ask the checker.
        """
        return self.checker.requestAvatarId(UsernamePassword(username, password))

    def test_right_and_wrong(self) -> None:
        """
        The right password gives the lower-cased login; a wrong one is refused.
        """
        self.assertEqual(self.successResultOf(self.login(b"Alice", b"wonderland")), b"alice")
        self.failureResultOf(self.login(b"alice", b"looking-glass"), UnauthorizedLogin)

    def test_unknown_login_costs_a_bcrypt_check(self) -> None:
        """
        An unknown login is checked against a dummy hash of the file's cost, exactly like a wrong password is
        checked against the real one: one bcrypt check each, at the same cost.
        """
        self.failureResultOf(self.login(b"alice", b"wrong"), UnauthorizedLogin)
        self.failureResultOf(self.login(b"nobody", b"wrong"), UnauthorizedLogin)
        self.assertEqual(len(self.checked), 2)
        self.assertEqual(self.checked[0], self.alice_hash)
        self.assertNotEqual(self.checked[1], self.alice_hash)
        self.assertEqual(self.checked[1][:7], self.alice_hash[:7])  # "$2b$04$": same algorithm and cost

    def test_plaintext_entry(self) -> None:
        """
        A plaintext entry still works (and is warned about at start, naming the file and line).
        """
        self.assertEqual(self.successResultOf(self.login(b"bob", b"plain-pw")), b"bob")
        self.failureResultOf(self.login(b"bob", b"plain"), UnauthorizedLogin)
        self.assertEqual(
            plaintext_warnings(self.path),
            [f"{self.path}:2: plaintext password for 'bob'; use 'sshfinger passwd' to store a bcrypt hash"],
        )

    def test_file_reread(self) -> None:
        """
        An edit to the file applies at the next attempt, without a restart.
        """
        with open(self.path, "ab") as f:
            f.write(b"carol:" + hash_password("new", rounds=4) + b"\n")
        self.assertEqual(self.successResultOf(self.login(b"carol", b"new")), b"carol")

    def test_missing_and_corrupted_fail_closed(self) -> None:
        """
        A missing file or a malformed hash refuses the login and logs an error event; nothing raises.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        with open(self.path, "wb") as f:
            f.write(b"alice:$2b$04$notahash\n")
        self.failureResultOf(self.login(b"alice", b"wonderland"), UnauthorizedLogin)
        os.remove(self.path)
        self.failureResultOf(self.login(b"alice", b"wonderland"), UnauthorizedLogin)
        errors = [event for event in events if event.get("path") == self.path and "error" in event]
        self.assertEqual(len(errors), 2)

    def test_runs_in_the_executor(self) -> None:
        """
        Reading the file and bcrypt happen only inside the executor, never on the calling thread.
        """
        queued = QueuedExecutor()
        checker = BcryptFileChecker(self.path, queued)
        d = checker.requestAvatarId(UsernamePassword(b"alice", b"wonderland"))
        self.assertNoResult(d)
        self.assertEqual(len(queued.queue), 1)
        queued.run_all()
        self.assertEqual(self.successResultOf(d), b"alice")


class KeyTests(SynchronousTestCase):
    """
    L{parse_authorized_key} and L{StoreKeysDB}.
    """

    def keygen(self, kind: str, bits: int | None = None) -> str:
        """
        A public key line made by the real C{ssh-keygen}.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "k")
        args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "me@laptop", "-f", path]
        subprocess.run(args + (["-b", str(bits)] if bits else []), check=True)
        with open(path + ".pub") as f:
            return f.read().strip()

    def test_accepts_supported_types(self) -> None:
        """
        ed25519, ECDSA and RSA-3072 lines from ssh-keygen are accepted and normalized with their comment.
        """
        for kind, bits in (("ed25519", None), ("ecdsa", None), ("rsa", 3072)):
            line = self.keygen(kind, bits)
            key, normalized = parse_authorized_key(line)
            self.assertEqual(normalized, line)
            self.assertTrue(key.isPublic())

    def test_refuses(self) -> None:
        """
        Small RSA keys, unsupported types, options, private keys and garbage are refused with a reason.
        """
        for line, expected in [
            (self.keygen("rsa", 1024), "at least 2048 bits"),
            ("ssh-dss AAAAB3NzaC1kc3MAAACBAP comment", "unsupported key type ssh-dss"),
            ('from="10.0.0.1" ' + self.keygen("ed25519"), "options are not supported"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "that is a private key"),
            ("hello world", "not an OpenSSH public key line"),
            ("ssh-ed25519 !!!!", "not base64"),
        ]:
            error = self.assertRaises(ValueError, parse_authorized_key, line)
            self.assertIn(expected, str(error))

    def test_store_keys(self) -> None:
        """
        The store's keys are offered for the account (any case), a bad stored line is skipped, and an unknown
        login has none.
        """
        good = self.keygen("ed25519")
        store = CachedStore(MemoryBackend([Account("alice", keys=("ssh-ed25519 garbage", good))]), Clock().seconds)
        store.open()
        keys = list(StoreKeysDB(store).getAuthorizedKeys(b"ALICE"))
        self.assertEqual([key.toString("openssh").decode() for key in keys], [" ".join(good.split()[:2])])
        self.assertEqual(list(StoreKeysDB(store).getAuthorizedKeys(b"nobody")), [])


class BytesUsernameCheckerTests(SynchronousTestCase):
    """
    L{BytesUsernameChecker}.
    """

    def test_memory_checker_over_ssh(self) -> None:
        """
        Twisted's in-memory checker (str names, as C{--auth memory:} builds it) accepts SSH's bytes.
        """
        inner = InMemoryUsernamePasswordDatabaseDontUse()
        inner.addUser("alice", "pw")
        checker = BytesUsernameChecker(inner)
        self.assertEqual(self.successResultOf(checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))), b"alice")
        self.failureResultOf(checker.requestAvatarId(UsernamePassword(b"alice", b"no")), UnauthorizedLogin)
