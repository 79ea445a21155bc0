"""
Tests for L{sshfinger.ssh.checkers}: the bcrypt passwd file checker, the store's authorized keys, the key line
validator and the bytes-username adapter.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import TypeVar

import bcrypt
from cryptography.hazmat.primitives.asymmetric import dsa
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker
from twisted.conch.ssh.keys import Key
from twisted.cred import strcred
from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider
from zope.interface.verify import verifyObject

from sshfinger.model.account import Account, Actor
from sshfinger.ssh.checkers import (
    BcryptFileChecker,
    BytesUsernameChecker,
    StoreKeysDB,
    check_passwd_file,
    parse_authorized_key,
    plaintext_warnings,
    review_passwd_file,
)
from sshfinger.ssh.passwd import DEFAULT_ROUNDS, set_password
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend

T = TypeVar("T")

SSH_KEYGEN = "/usr/bin/ssh-keygen"
HAVE_SSH_KEYGEN = os.access(SSH_KEYGEN, os.X_OK)

#: bcrypt hashes at cost 4, to keep the suite fast.
ALICE_HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4))
ALICE_HASH_2 = bcrypt.hashpw(b"new secret", bcrypt.gensalt(4))
COST5_HASH = bcrypt.hashpw(b"other", bcrypt.gensalt(5))


def run_now(function: Callable[[], T]) -> Deferred[T]:
    """
    A synchronous C{run_in_thread}: run C{function} at once.
    """
    return maybeDeferred(function)


class QueueExecutor:
    """
    A C{run_in_thread} that only queues functions; L{run} runs them, as a thread pool would later.

    @ivar queue: the functions handed over and not run yet, with their L{Deferred}s.
    """

    def __init__(self) -> None:
        """
        Start with an empty queue.
        """
        self.queue: list[tuple[Callable[[], object], Deferred[object]]] = []

    def __call__(self, function: Callable[[], T]) -> Deferred[T]:
        """
        Queue C{function}.
        """
        d: Deferred[T] = Deferred()
        self.queue.append((function, d))  # type: ignore[arg-type]
        return d

    def run(self) -> None:
        """
        Run every queued function and fire its L{Deferred}.
        """
        queue, self.queue = self.queue, []
        for function, d in queue:
            maybeDeferred(function).chainDeferred(d)


class RecordingCheckpw:
    """
    A C{checkpw} that records each hash it is asked to check against, then runs the real bcrypt check.

    @ivar hashes: the hashes checked against, in order.
    """

    def __init__(self) -> None:
        """
        Start with no calls recorded.
        """
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        """
        Record C{hashed} and check C{password} against it with bcrypt.
        """
        self.hashes.append(hashed)
        return bcrypt.checkpw(password, hashed)


def ssh_keygen(*args: str) -> str:
    """
    Run the real C{ssh-keygen} and return its standard output.
    """
    return subprocess.run([SSH_KEYGEN, *args], check=True, capture_output=True, text=True).stdout


class LogCapture:
    """
    Collect the events of one namespace from the global log publisher for the length of a test.

    @ivar events: the events seen.
    """

    def __init__(self, test: SynchronousTestCase, namespace: str) -> None:
        """
        Start observing; stop when C{test} is cleaned up.
        """
        self.events: list[dict] = []

        @provider(ILogObserver)
        def observe(event: dict) -> None:
            if event.get("log_namespace") == namespace:
                self.events.append(event)

        globalLogPublisher.addObserver(observe)
        test.addCleanup(globalLogPublisher.removeObserver, observe)


class BcryptFileCheckerTests(SynchronousTestCase):
    """
    Tests for L{BcryptFileChecker}.
    """

    def setUp(self) -> None:
        """
        A passwd file path, a recording C{checkpw} and a capture of the checker's log events.
        """
        self.path = self.mktemp()
        self.checkpw = RecordingCheckpw()
        self.logged = LogCapture(self, "sshfinger.ssh.checkers.BcryptFileChecker")

    def write(self, *lines: bytes) -> None:
        """
        Write the passwd file.
        """
        with open(self.path, "wb") as f:
            f.write(b"".join(line + b"\n" for line in lines))

    def checker(self, run_in_thread: Callable[[Callable[[], T]], Deferred[T]] = run_now) -> BcryptFileChecker:
        """
        A checker of the passwd file using C{run_in_thread} and the recording C{checkpw}.
        """
        return BcryptFileChecker(self.path, run_in_thread, checkpw=self.checkpw)

    def attempt(self, username: bytes, password: bytes, checker: BcryptFileChecker | None = None) -> Deferred[bytes]:
        """
        Ask a checker to check a username and password.
        """
        return (checker or self.checker()).requestAvatarId(UsernamePassword(username, password))

    def errors(self) -> list[dict]:
        """
        The error events the checker logged.
        """
        return [event for event in self.logged.events if event["log_level"] is LogLevel.error]

    def test_interface(self) -> None:
        """
        The checker provides L{ICredentialsChecker} for username/password credentials.
        """
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker()))

    def test_right_password(self) -> None:
        """
        The right password gives the login as the avatar id, checked against the entry's own hash.
        """
        self.write(b"alice:" + ALICE_HASH)
        self.assertEqual(self.successResultOf(self.attempt(b"alice", b"secret")), b"alice")
        self.assertEqual(self.checkpw.hashes, [ALICE_HASH])

    def test_set_password_entries(self) -> None:
        """
        Entries written by L{sshfinger.ssh.passwd.set_password} (what C{sshfinger passwd} runs) are accepted.
        """
        set_password(self.path, "carol", "tea party", rounds=4)
        self.assertEqual(self.successResultOf(self.attempt(b"carol", b"tea party")), b"carol")
        self.failureResultOf(self.attempt(b"carol", b"tea"), UnauthorizedLogin)

    def test_login_any_case(self) -> None:
        """
        Logins are case-insensitive; the avatar id is the lower-case login.
        """
        self.write(b"Alice:" + ALICE_HASH)
        self.assertEqual(self.successResultOf(self.attempt(b"ALICE", b"secret")), b"alice")

    def test_wrong_password(self) -> None:
        """
        A wrong password fails with L{UnauthorizedLogin} and logs no error.
        """
        self.write(b"alice:" + ALICE_HASH)
        self.failureResultOf(self.attempt(b"alice", b"wrong"), UnauthorizedLogin)
        self.assertEqual(self.errors(), [])

    def test_unknown_login_uses_dummy_hash(self) -> None:
        """
        An unknown login fails, after one bcrypt check against a dummy hash of the file's cost: the same work
        as a wrong password.
        """
        self.write(b"alice:" + ALICE_HASH)
        checker = self.checker()
        self.failureResultOf(self.attempt(b"mallory", b"secret", checker), UnauthorizedLogin)
        self.assertEqual(self.checkpw.hashes, [checker.dummy_hash(4)])
        self.assertTrue(checker.dummy_hash(4).startswith(b"$2b$04$"))

    def test_dummy_hash_highest_cost(self) -> None:
        """
        The dummy hash has the highest cost found among the file's entries.
        """
        self.write(b"alice:" + ALICE_HASH, b"bob:" + COST5_HASH)
        self.failureResultOf(self.attempt(b"mallory", b"x"), UnauthorizedLogin)
        [hashed] = self.checkpw.hashes
        self.assertTrue(hashed.startswith(b"$2b$05$"))

    def test_dummy_hash_default_cost(self) -> None:
        """
        Without any bcrypt entry, the dummy hash has the default cost (12).
        """
        self.write(b"bob:hunter2")
        self.failureResultOf(self.attempt(b"mallory", b"x"), UnauthorizedLogin)
        [hashed] = self.checkpw.hashes
        self.assertTrue(hashed.startswith(b"$2b$%02d$" % (DEFAULT_ROUNDS,)))

    def test_dummy_hash_cached(self) -> None:
        """
        The dummy hash of a cost is made once: every unknown login checks against the same hash.
        """
        self.write(b"alice:" + ALICE_HASH)
        checker = self.checker()
        self.failureResultOf(self.attempt(b"mallory", b"a", checker), UnauthorizedLogin)
        self.failureResultOf(self.attempt(b"eve", b"b", checker), UnauthorizedLogin)
        self.assertEqual(len(self.checkpw.hashes), 2)
        self.assertIs(self.checkpw.hashes[0], self.checkpw.hashes[1])

    def test_empty_file(self) -> None:
        """
        An empty file lets nobody in and is not an error.
        """
        self.write()
        self.failureResultOf(self.attempt(b"alice", b"secret"), UnauthorizedLogin)
        self.assertEqual(self.errors(), [])

    def test_missing_file(self) -> None:
        """
        A missing file fails closed and logs exactly one error event naming the path and the error.
        """
        self.failureResultOf(self.attempt(b"alice", b"secret"), UnauthorizedLogin)
        [event] = self.errors()
        self.assertEqual(event["path"], self.path)
        self.assertEqual(event["error"], "No such file or directory")
        self.assertEqual(self.checkpw.hashes, [])

    def test_unreadable_file(self) -> None:
        """
        A path that cannot be read as a file (here a directory, since tests may run as root) fails closed
        with one error event.
        """
        os.mkdir(self.path)
        self.failureResultOf(self.attempt(b"alice", b"secret"), UnauthorizedLogin)
        [event] = self.errors()
        self.assertEqual((event["path"], event["error"]), (self.path, "Is a directory"))

    def test_file_restored(self) -> None:
        """
        After a failure to read the file, the checker keeps working once the file is back.
        """
        checker = self.checker()
        self.failureResultOf(self.attempt(b"alice", b"secret", checker), UnauthorizedLogin)
        self.write(b"alice:" + ALICE_HASH)
        self.assertEqual(self.successResultOf(self.attempt(b"alice", b"secret", checker)), b"alice")

    def test_corrupted_hash(self) -> None:
        """
        A malformed bcrypt hash (bcrypt raises L{ValueError} on it) fails with L{UnauthorizedLogin} only,
        logs one error naming the line, and still costs a dummy bcrypt check.
        """
        for secret in (b"$2b$04$garbage", b"$2b$04$" + b"!" * 53, b"$2b$99$" + ALICE_HASH[7:], b"$2b$"):
            del self.logged.events[:], self.checkpw.hashes[:]
            self.write(b"# accounts", b"alice:" + secret, b"bob:" + ALICE_HASH)
            checker = self.checker()
            self.failureResultOf(self.attempt(b"alice", b"secret", checker), UnauthorizedLogin)
            [event] = self.errors()
            self.assertEqual(event["path"], self.path)
            self.assertEqual(event["error"], "line 2: malformed bcrypt hash for 'alice'")
            self.assertEqual(self.checkpw.hashes[-1], checker.dummy_hash(4))

    def test_plaintext_entry(self) -> None:
        """
        A plaintext entry accepts its password and refuses others, each after a dummy bcrypt check.
        """
        self.write(b"alice:" + ALICE_HASH, b"bob:hunter2")
        checker = self.checker()
        self.assertEqual(self.successResultOf(self.attempt(b"bob", b"hunter2", checker)), b"bob")
        self.failureResultOf(self.attempt(b"bob", b"hunter3", checker), UnauthorizedLogin)
        self.assertEqual(self.checkpw.hashes, [checker.dummy_hash(4)] * 2)

    def test_empty_plaintext_never_matches(self) -> None:
        """
        An entry with an empty password lets nobody in, not even with an empty password.
        """
        self.write(b"bob:")
        self.failureResultOf(self.attempt(b"bob", b""), UnauthorizedLogin)

    def test_file_reread(self) -> None:
        """
        The file is read on every attempt: a changed password applies at once.
        """
        self.write(b"alice:" + ALICE_HASH)
        checker = self.checker()
        self.assertEqual(self.successResultOf(self.attempt(b"alice", b"secret", checker)), b"alice")
        self.write(b"alice:" + ALICE_HASH_2)
        self.failureResultOf(self.attempt(b"alice", b"secret", checker), UnauthorizedLogin)
        self.assertEqual(self.successResultOf(self.attempt(b"alice", b"new secret", checker)), b"alice")

    def test_runs_in_thread(self) -> None:
        """
        Reading the file and bcrypt both happen in the function handed to C{run_in_thread}: nothing is read
        or checked, and the L{Deferred} has no result, until that function runs.
        """
        executor = QueueExecutor()
        checker = self.checker(executor)
        d = self.attempt(b"alice", b"secret", checker)
        self.assertNoResult(d)
        self.assertEqual(len(executor.queue), 1)
        self.assertEqual(self.checkpw.hashes, [])
        self.write(b"alice:" + ALICE_HASH)  # only now does the file exist
        executor.run()
        self.assertEqual(self.successResultOf(d), b"alice")
        self.assertEqual(self.checkpw.hashes, [ALICE_HASH])

    def test_executor_failure(self) -> None:
        """
        If C{run_in_thread} itself fails, the attempt fails closed with L{UnauthorizedLogin} and the failure
        is logged.
        """

        def broken(function: Callable[[], T]) -> Deferred[T]:
            raise RuntimeError("thread pool stopped")

        self.write(b"alice:" + ALICE_HASH)
        self.failureResultOf(self.attempt(b"alice", b"secret", self.checker(broken)), UnauthorizedLogin)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_long_password(self) -> None:
        """
        A password longer than bcrypt's 72 bytes does not raise: as with classic bcrypt, only its first 72
        bytes count.
        """
        self.write(b"alice:" + bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(4)))
        self.assertEqual(self.successResultOf(self.attempt(b"alice", b"x" * 100)), b"alice")
        self.failureResultOf(self.attempt(b"alice", b"y" * 100), UnauthorizedLogin)
        self.failureResultOf(self.attempt(b"nobody", b"y" * 100), UnauthorizedLogin)
        self.assertEqual(self.errors(), [])

    def test_non_utf8_username(self) -> None:
        """
        A username that is not UTF-8 is simply unknown.
        """
        self.write(b"alice:" + ALICE_HASH)
        self.failureResultOf(self.attempt(b"\xffalice", b"secret"), UnauthorizedLogin)
        self.assertEqual(self.errors(), [])


class PasswdFileWarningTests(SynchronousTestCase):
    """
    Tests for L{plaintext_warnings} and L{check_passwd_file}.
    """

    def test_plaintext_warnings(self) -> None:
        """
        Each plaintext entry gets one message naming the file and line; bcrypt entries, comments and blank
        lines get none.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"# users\nalice:" + ALICE_HASH + b"\nbob:hunter2\n\ncarol:\n")
        self.assertEqual(
            plaintext_warnings(path),
            [
                f"{path}:3: plaintext password for 'bob'; use 'sshfinger passwd' to store a bcrypt hash",
                f"{path}:5: empty password for 'carol'; the entry is ignored",
            ],
        )

    def test_no_warnings(self) -> None:
        """
        A file of bcrypt entries gives no warning.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"alice:" + ALICE_HASH + b"\n")
        self.assertEqual(plaintext_warnings(path), [])

    def test_readable_by_others_warned(self) -> None:
        """
        L{review_passwd_file} (what the start and SIGHUP check) warns about a passwd file others may read, whose
        hashes would then be open to offline guessing; one kept to its group (0640) is fine.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"alice:" + ALICE_HASH + b"\n")
        os.chmod(path, 0o644)
        [warning] = review_passwd_file(path)
        self.assertIn("readable by others (mode 644)", warning)
        os.chmod(path, 0o640)
        self.assertEqual(review_passwd_file(path), [])

    def test_missing_file(self) -> None:
        """
        A missing file is a L{ValueError} with one line naming it, from both functions.
        """
        path = self.mktemp()
        for function in (check_passwd_file, plaintext_warnings):
            error = self.assertRaises(ValueError, function, path)
            self.assertEqual(str(error), f"cannot read passwd file {path}: No such file or directory")

    def test_readable_file(self) -> None:
        """
        L{check_passwd_file} accepts a readable file, even an empty one.
        """
        path = self.mktemp()
        open(path, "wb").close()
        self.assertIsNone(check_passwd_file(path))


_keys: dict[str, tuple[str, str]] = {}


def keygen(test: SynchronousTestCase, kind: str, bits: str, comment: str = "alice@laptop") -> tuple[str, str]:
    """
    A key pair made by the real ssh-keygen (once per kind, size and comment): the private key file and the
    public key line.
    """
    name = f"{kind}-{bits}-{comment}"
    if name not in _keys:
        directory = os.path.abspath(test.mktemp())
        os.mkdir(directory)
        path = os.path.join(directory, "key")
        ssh_keygen("-q", "-t", kind, "-b", bits, "-N", "", "-C", comment, "-f", path)
        with open(path + ".pub") as f:
            _keys[name] = (path, f.read().strip())
    return _keys[name]


class ParseAuthorizedKeyTests(SynchronousTestCase):
    """
    Tests for L{parse_authorized_key}.
    """

    if not HAVE_SSH_KEYGEN:
        skip = f"{SSH_KEYGEN} is not installed"

    def assertRefused(self, line: str, message: str) -> None:
        """
        Assert that C{line} is refused with exactly C{message}.
        """
        error = self.assertRaises(ValueError, parse_authorized_key, line)
        self.assertEqual(str(error), message)

    def test_accepts_ssh_keygen_keys(self) -> None:
        """
        ed25519, ECDSA (256, 384, 521) and RSA 3072 public keys made by ssh-keygen are accepted; the key is
        the one in the line and the normalized line is the .pub line.
        """
        for kind, bits in [("ed25519", "256"), ("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521"), ("rsa", "3072")]:
            _, line = keygen(self, kind, bits)
            key, normalized = parse_authorized_key(line)
            self.assertEqual(key, Key.fromString(line))
            self.assertTrue(key.isPublic())
            self.assertEqual(normalized, line)

    def test_normalizes(self) -> None:
        """
        Surrounding and separating whitespace is normalized; spaces inside the comment are kept; an empty
        comment leaves no trailing space.
        """
        _, line = keygen(self, "ed25519", "256")
        key_type, data, _ = line.split(" ", 2)
        self.assertEqual(
            parse_authorized_key(f"  {key_type}\t {data}   my  laptop key \n")[1], f"{key_type} {data} my  laptop key"
        )
        self.assertEqual(parse_authorized_key(f"{key_type} {data}")[1], f"{key_type} {data}")

    def test_refuses_small_rsa(self) -> None:
        """
        An RSA key below 2048 bits is refused, naming its size.
        """
        _, line = keygen(self, "rsa", "1024")
        self.assertRefused(line, "RSA key is 1024 bits; at least 2048 bits required")

    def test_refuses_dsa(self) -> None:
        """
        A DSA key is refused as an unsupported type.
        """
        line = Key(dsa.generate_private_key(key_size=1024)).public().toString("openssh").decode()
        self.assertRefused(
            line + " old",
            "unsupported key type ssh-dss; use one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, "
            "ecdsa-sha2-nistp521, ssh-rsa",
        )

    def test_refuses_other_types(self) -> None:
        """
        Security-key and certificate types are refused as unsupported.
        """
        for key_type in ("sk-ssh-ed25519@openssh.com", "ssh-ed25519-cert-v01@openssh.com", "ssh-foo"):
            error = self.assertRaises(ValueError, parse_authorized_key, f"{key_type} AAAA comment")
            self.assertTrue(str(error).startswith(f"unsupported key type {key_type}; "), str(error))

    def test_refuses_garbage(self) -> None:
        """
        Lines that are not key lines are refused with one clear line.
        """
        for line in ("hello world", "AAAAC3NzaC1lZDI1NTE5AAAAID7J", "ssh_ed25519 AAAA"):
            self.assertRefused(
                line, "not an OpenSSH public key line (expected 'type base64 [comment]', as in a .pub file)"
            )
        self.assertRefused("   ", "empty key line")
        self.assertRefused("ssh-ed25519", "ssh-ed25519 key line has no key data")
        self.assertRefused("ssh-ed25519 not-base64!", "ssh-ed25519 key data is not base64")
        self.assertRefused("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5A", "ssh-ed25519 key data is not valid base64")
        self.assertRefused("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID7J", "ssh-ed25519 key data is corrupted")
        self.assertRefused("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "ssh-ed25519 key data is corrupted")

    def test_refuses_type_mismatch(self) -> None:
        """
        Key data of another type than the line declares is refused.
        """
        _, line = keygen(self, "ed25519", "256")
        self.assertRefused("ssh-rsa " + line.split()[1], "key data is not a ssh-rsa public key")

    def test_refuses_options(self) -> None:
        """
        An option sshfinger cannot honour is refused by name rather than stored and ignored; C{from=} and
        C{expiry-time=} are kept in the normalized line.
        """
        _, line = keygen(self, "ed25519", "256")
        for options, name in (('command="echo hi",no-pty', "command"), ("restrict", "restrict"),
                              ('from="10.0.0.1",no-pty', "no-pty")):  # fmt: skip
            self.assertRefused(
                f"{options} {line}",
                f"authorized_keys option {name!r} is not supported (sshfinger honours only from= and expiry-time=)",
            )
        normalized = parse_authorized_key(f'from="10.0.0.1",expiry-time="20300101" {line}')[1]
        self.assertEqual(normalized, f'from="10.0.0.1",expiry-time="20300101" {line}')

    def test_refuses_private_key(self) -> None:
        """
        A pasted private key is refused with a hint.
        """
        path, _ = keygen(self, "ed25519", "256")
        with open(path) as f:
            private = f.read()
        self.assertRefused(
            private.splitlines()[0], "that is a private key; paste the public key (the .pub file) instead"
        )

    def test_refuses_control_characters(self) -> None:
        """
        Lines with control characters (several lines pasted, terminal escapes) are refused.
        """
        _, line = keygen(self, "ed25519", "256")
        self.assertRefused(line + "\x1b[2J", "key line contains control characters (paste a single line)")
        self.assertRefused(line + "\n" + line, "key line contains control characters (paste a single line)")


class StoreKeysDBTests(SynchronousTestCase):
    """
    Tests for L{StoreKeysDB}.
    """

    if not HAVE_SSH_KEYGEN:
        skip = f"{SSH_KEYGEN} is not installed"

    def setUp(self) -> None:
        """
        A store with alice (two good keys), carol (hidden, one key), bob (a bad line and a good key) and dave
        (no keys), and a capture of the database's log events.
        """
        self.ed_path, self.ed_line = keygen(self, "ed25519", "256")
        _, self.rsa_line = keygen(self, "rsa", "3072")
        _, self.ecdsa_line = keygen(self, "ecdsa", "256")
        self.store = CachedStore(
            MemoryBackend(
                [
                    Account("alice", keys=(self.ed_line, self.rsa_line)),
                    Account("carol", hidden=True, keys=(self.ecdsa_line,)),
                    Account("bob", keys=("ssh-ed25519 garbage", self.ecdsa_line)),
                    Account("dave"),
                ]
            ),
            lambda: 0.0,
        )
        self.store.open()
        self.db = StoreKeysDB(self.store)
        self.logged = LogCapture(self, "sshfinger.ssh.checkers.StoreKeysDB")

    def test_interface(self) -> None:
        """
        The database provides L{IAuthorizedKeysDB}.
        """
        self.assertTrue(verifyObject(IAuthorizedKeysDB, self.db))

    def test_keys_of_account(self) -> None:
        """
        An account's key lines are returned as keys, in order, whatever the case of the login.
        """
        expected = [Key.fromString(self.ed_line), Key.fromString(self.rsa_line)]
        self.assertEqual(list(self.db.getAuthorizedKeys(b"alice")), expected)
        self.assertEqual(list(self.db.getAuthorizedKeys(b"ALICE")), expected)

    def test_unknown_and_keyless(self) -> None:
        """
        An unknown login and an account without keys have no keys.
        """
        self.assertEqual(list(self.db.getAuthorizedKeys(b"mallory")), [])
        self.assertEqual(list(self.db.getAuthorizedKeys(b"\xff")), [])
        self.assertEqual(list(self.db.getAuthorizedKeys(b"dave")), [])

    def test_hidden_account(self) -> None:
        """
        A hidden account's keys work: only finger hides it.
        """
        self.assertEqual(list(self.db.getAuthorizedKeys(b"carol")), [Key.fromString(self.ecdsa_line)])

    def test_bad_line_skipped_and_logged_once(self) -> None:
        """
        An unusable stored line is skipped; it is logged once, not on every attempt.
        """
        for _ in range(3):
            self.assertEqual(list(self.db.getAuthorizedKeys(b"bob")), [Key.fromString(self.ecdsa_line)])
        [event] = self.logged.events
        self.assertEqual(event["login"], "bob")
        self.assertEqual(event["log_level"], LogLevel.warn)

    def test_sees_store_changes(self) -> None:
        """
        Keys are read from the store's memory on every call: a removed key stops working at once.
        """
        self.successResultOf(self.store.update("alice", {"keys": [self.rsa_line]}, Actor("root", "cli")))
        self.assertEqual(list(self.db.getAuthorizedKeys(b"alice")), [Key.fromString(self.rsa_line)])

    def test_public_key_login(self) -> None:
        """
        Through Conch's L{SSHPublicKeyChecker}, a signature by the account's private key logs in; the same
        key offered for another account does not.
        """
        checker = SSHPublicKeyChecker(self.db)
        private = Key.fromFile(self.ed_path)
        blob = private.public().blob()
        sig_data = b"session data"

        def credentials(username: bytes) -> SSHPrivateKey:
            return SSHPrivateKey(username, b"ssh-ed25519", blob, sig_data, private.sign(sig_data))

        self.assertEqual(self.successResultOf(checker.requestAvatarId(credentials(b"alice"))), b"alice")
        self.failureResultOf(checker.requestAvatarId(credentials(b"carol")), UnauthorizedLogin)


class BytesUsernameCheckerTests(SynchronousTestCase):
    """
    Tests for L{BytesUsernameChecker}.
    """

    def test_interface(self) -> None:
        """
        The adapter provides L{ICredentialsChecker} for username/password credentials.
        """
        checker = BytesUsernameChecker(InMemoryUsernamePasswordDatabaseDontUse())
        self.assertTrue(verifyObject(ICredentialsChecker, checker))

    def test_constructor_users(self) -> None:
        """
        C{InMemoryUsernamePasswordDatabaseDontUse(alice="pw")} (bytes name, str password) accepts the bytes
        credentials SSH presents.
        """
        checker = BytesUsernameChecker(InMemoryUsernamePasswordDatabaseDontUse(alice="pw"))  # type: ignore[arg-type]
        d = checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))
        self.assertEqual(self.successResultOf(d), b"alice")

    def test_auth_memory(self) -> None:
        """
        The checker C{--auth memory:alice:pw} builds (str name, str password) accepts the bytes credentials
        SSH presents, and the avatar id is bytes.
        """
        checker = BytesUsernameChecker(strcred.makeChecker("memory:alice:pw"))
        d = checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))
        self.assertEqual(self.successResultOf(d), b"alice")

    def test_refused(self) -> None:
        """
        A wrong password, an unknown user and a non-UTF-8 username fail with L{UnauthorizedLogin}.
        """
        checker = BytesUsernameChecker(strcred.makeChecker("memory:alice:pw"))
        for username, password in [(b"alice", b"nope"), (b"bob", b"pw"), (b"\xff", b"pw"), (b"alice", b"")]:
            self.failureResultOf(checker.requestAvatarId(UsernamePassword(username, password)), UnauthorizedLogin)
