"""
Credential checkers of the SSH service: passwords from a bcrypt passwd file, public keys from the user store.

L{BcryptFileChecker} serves C{--auth file:PATH}.  Unlike Twisted's C{FilePasswordDB} it understands bcrypt hashes
(see L{sshfinger.ssh.passwd}), runs bcrypt off the reactor thread, spends the same bcrypt work on an unknown login as
on a wrong password, and fails closed when the file cannot be read.  L{StoreKeysDB} feeds Conch's
C{SSHPublicKeyChecker} from each account's C{keys}.  L{parse_authorized_key} is the one validator of
C{authorized_keys} lines, used by the command-line tool and the shell as well.
"""

from __future__ import annotations

import binascii
import hmac
import os
import re
from base64 import b64encode
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import bcrypt
from twisted.conch.checkers import IAuthorizedKeysDB
from twisted.conch.ssh.keys import Key
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.model.keyoptions import KeyOptions, format_options, parse_options, split_options
from sshfinger.ssh.hostkeys import RSA_MIN_BITS
from sshfinger.ssh.passwd import BOM, DEFAULT_ROUNDS, Entry, parse
from sshfinger.store.interfaces import IUserStore

T = TypeVar("T")

#: Runs a blocking function in a thread and returns a L{Deferred} of its result, e.g.
#: C{lambda f: deferToThreadPool(reactor, pool, f)}.
RunInThread = Callable[[Callable[[], T]], "Deferred[T]"]

#: Key types L{parse_authorized_key} accepts.
SUPPORTED_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)

#: bcrypt uses at most this many bytes of a password; bcrypt 5 refuses longer ones instead of truncating.
_BCRYPT_MAX_PASSWORD = 72
_COST_RE = re.compile(rb"\$2[aby]\$(\d\d)\$")
#: What the first field of a key line looks like (supported or not): ssh-*, ecdsa-*, sk-*@openssh.com, certs.
_KEY_TYPE_RE = re.compile(
    r"(ssh-[a-z0-9-]+|ecdsa-[a-z0-9-]+|sk-[a-z0-9-]+@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com)\Z"
)
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}\Z")


class _PasswdFileUnusable(Exception):
    """
    The passwd file cannot be read: every password login fails.  Raised in the thread, logged on the calling
    thread.
    """


class _MalformedEntry(Exception):
    """
    The entry of the login trying to log in is a malformed bcrypt hash: that login fails.  Raised in the thread,
    logged on the calling thread.
    """


def _bcrypt_cost(secret: bytes) -> int | None:
    """
    The cost of a bcrypt hash, or L{None} if it does not look like a usable bcrypt hash.
    """
    match = _COST_RE.match(secret)
    if match is None:
        return None
    cost = int(match.group(1))
    return cost if 4 <= cost <= 31 else None


@implementer(ICredentialsChecker)
class BcryptFileChecker:
    """
    Check usernames and passwords against a passwd file of C{login:bcrypt-hash} lines (see L{sshfinger.ssh.passwd}).

    The file is re-read on every attempt, so edits apply without a restart.  Reading, parsing and the bcrypt
    check all run in C{run_in_thread}, never on the calling (reactor) thread.  Every attempt costs one bcrypt
    check: an unknown login, a plaintext entry or a corrupted hash is checked against a dummy hash whose cost is
    the highest cost found in the file (L{DEFAULT_ROUNDS} if none), so timing does not reveal which logins
    exist.  Plaintext entries (deprecated; see L{plaintext_warnings}) are compared with
    L{hmac.compare_digest}; an entry with an empty secret never matches.

    A missing or unreadable file fails every attempt (fail closed) and logs one error event per attempt with
    the fields C{path} and C{error}; so does a malformed bcrypt hash, for its own login.  The server keeps
    running either way.

    @ivar path: the passwd file.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(
        self,
        path: str,
        run_in_thread: RunInThread,
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> None:
        """
        @param path: the passwd file.
        @param run_in_thread: runs the blocking check off the reactor thread; in production a thread pool, e.g.
            C{lambda f: deferToThreadPool(reactor, pool, f)}.
        @param checkpw: the bcrypt check, C{bcrypt.checkpw(password, hashed)}; replaceable so tests can see
            which hash each attempt was checked against.
        """
        self.path = path
        self._run_in_thread = run_in_thread
        self._checkpw = checkpw
        self._dummy_hashes: dict[int, bytes] = {}

    def dummy_hash(self, cost: int) -> bytes:
        """
        The hash an attempt is checked against when there is no usable hash for its login: a bcrypt hash of a
        random password at C{cost}, made once per cost and cached.  Blocking (bcrypt): call it in a thread.
        """
        hashed = self._dummy_hashes.get(cost)
        if hashed is None:
            hashed = bcrypt.hashpw(os.urandom(16).hex().encode("ascii"), bcrypt.gensalt(cost))
            self._dummy_hashes[cost] = hashed
        return hashed

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[Any]:
        """
        Check C{credentials} against the passwd file.

        @return: a L{Deferred} firing with the lower-cased login as UTF-8 bytes, or failing with
            L{UnauthorizedLogin}.
        """
        username = _as_bytes(credentials.username)
        password = _as_bytes(credentials.password)
        try:
            d = self._run_in_thread(lambda: self._check(username, password))
        except Exception:
            return fail(self._refused(Failure()))
        return d.addErrback(self._refused)

    def _refused(self, reason: Failure) -> Failure:
        if reason.check(UnauthorizedLogin):
            return reason
        if reason.check(_PasswdFileUnusable):
            self.log.error(
                "Refusing password logins: cannot read passwd file {path}: {error}",
                path=self.path,
                error=str(reason.value),
            )
        elif reason.check(_MalformedEntry):
            self.log.error(
                "Refusing a password login: passwd file {path}: {error}", path=self.path, error=str(reason.value)
            )
        else:
            self.log.failure("Password check against {path} failed", reason, path=self.path)
        return Failure(UnauthorizedLogin("password check failed"))

    def _check(self, username: bytes, password: bytes) -> bytes:
        """
        The blocking part of L{requestAvatarId}: read the file, find the entry, run bcrypt.
        """
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise _PasswdFileUnusable(e.strerror or str(e)) from None
        entries = parse(data)
        login = username.decode("utf-8", "replace").lower()
        entry = entries.get(login)
        if entry is not None and entry.is_bcrypt and _bcrypt_cost(entry.secret) is not None:
            try:
                matched = self._checkpw(password[:_BCRYPT_MAX_PASSWORD], entry.secret)
            except ValueError:
                self._dummy_check(password, entries)
                raise _MalformedEntry(f"line {entry.line}: malformed bcrypt hash for {login!r}") from None
        else:
            self._dummy_check(password, entries)
            if entry is None:
                matched = False
            elif entry.is_bcrypt:
                raise _MalformedEntry(f"line {entry.line}: malformed bcrypt hash for {login!r}")
            else:
                matched = bool(entry.secret) and hmac.compare_digest(password, entry.secret)
        if not matched:
            raise UnauthorizedLogin("wrong login or password")
        return login.encode("utf-8")

    def _dummy_check(self, password: bytes, entries: dict[str, Entry]) -> None:
        """
        Spend the time of one bcrypt check at the file's highest cost, for a login without a usable hash.
        """
        costs = [cost for entry in entries.values() if (cost := _bcrypt_cost(entry.secret)) is not None]
        try:
            self._checkpw(password[:_BCRYPT_MAX_PASSWORD], self.dummy_hash(max(costs, default=DEFAULT_ROUNDS)))
        except ValueError:
            pass


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _read_passwd(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read passwd file {path}: {e.strerror or e}") from None


def check_passwd_file(path: str) -> None:
    """
    Check at startup that the passwd file can be read.

    @raise ValueError: with one line naming the file, if it is missing or unreadable.
    """
    _read_passwd(path)


def plaintext_warnings(path: str) -> list[str]:
    """
    List, for the startup log, one message per entry of the passwd file that is not a bcrypt hash, in line
    order: C{"passwd:3: plaintext password for 'bob'; use 'sshfinger passwd' to store a bcrypt hash"}.  An
    entry with an empty password gets its own message: it never matches.

    @raise ValueError: with one line naming the file, if it is missing or unreadable.
    """
    data = _read_passwd(path)
    warnings = []
    if data.startswith(BOM):
        warnings.append(f"{path}:1: the file starts with a UTF-8 byte order mark; it is skipped (save without BOM)")
    for entry in sorted(parse(data).values(), key=lambda entry: entry.line):
        if entry.is_bcrypt:
            continue
        where = f"{path}:{entry.line}"
        if not entry.secret:
            warnings.append(f"{where}: empty password for {entry.login!r}; the entry is ignored")
        else:
            warnings.append(
                f"{where}: plaintext password for {entry.login!r}; use 'sshfinger passwd' to store a bcrypt hash"
            )
    return warnings


def parse_authorized_key(line: str) -> tuple[Key, str]:
    """
    Validate one OpenSSH C{authorized_keys} line, C{"type base64 [comment]"}.

    Accepted types are L{SUPPORTED_KEY_TYPES}; RSA keys need at least L{RSA_MIN_BITS} bits.  An options prefix
    may hold C{from="..."} and C{expiry-time="..."}, which are enforced at login (L{StoreKeysDB.refusal}); any
    other option (C{command="..."}, C{no-pty} ...) is refused by name rather than stored and ignored.

    @return: the public key and the normalized line C{"type base64 comment"} (without the comment when empty;
        base64 re-encoded canonically, inner spacing of the comment kept).
    @raise ValueError: with one line saying what is wrong, e.g. C{"unsupported key type ssh-dss"} or
        C{"not an OpenSSH public key line"}.
    """
    text = line.strip()
    if not text:
        raise ValueError("empty key line")
    if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text):
        raise ValueError("key line contains control characters (paste a single line)")
    if text.startswith("-----BEGIN"):
        if "PRIVATE KEY" in text:
            raise ValueError("that is a private key; paste the public key (the .pub file) instead")
        raise ValueError("not an OpenSSH public key line (expected 'type base64 [comment]', as in a .pub file)")
    fields = text.split(None, 2)
    key_type = fields[0]
    prefix = ""
    if not _KEY_TYPE_RE.match(key_type) and any(_KEY_TYPE_RE.match(word) for word in text.split()[1:]):
        options, text = split_options(text)
        parse_options(options)  # only from= and expiry-time= are honoured: any other is refused by name
        prefix = format_options(options) + " "
        fields = text.split(None, 2)
        key_type = fields[0]
    if not _KEY_TYPE_RE.match(key_type):
        raise ValueError("not an OpenSSH public key line (expected 'type base64 [comment]', as in a .pub file)")
    if key_type not in SUPPORTED_KEY_TYPES:
        raise ValueError(f"unsupported key type {key_type}; use one of {', '.join(SUPPORTED_KEY_TYPES)}")
    if len(fields) < 2:
        raise ValueError(f"{key_type} key line has no key data")
    encoded = fields[1]
    comment = fields[2].strip() if len(fields) > 2 else ""
    if not _BASE64_RE.match(encoded):
        raise ValueError(f"{key_type} key data is not base64")
    try:
        blob = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key_type} key data is not valid base64") from None
    try:
        key = Key.fromString(blob, type="blob")
    except Exception:
        raise ValueError(f"{key_type} key data is corrupted") from None
    if not key.isPublic() or key.sshType().decode("ascii") != key_type:
        raise ValueError(f"key data is not a {key_type} public key")
    if key.type() == "RSA" and key.size() < RSA_MIN_BITS:
        raise ValueError(f"RSA key is {key.size()} bits; at least {RSA_MIN_BITS} bits required")
    normalized = f"{prefix}{key_type} {b64encode(key.blob()).decode('ascii')}"
    if comment:
        normalized += f" {comment}"
    return key, normalized


def key_options(line: str) -> KeyOptions:
    """
    The restrictions (C{from=}, C{expiry-time=}) of a stored key line; none for a line without options.

    @raise ValueError: if the options cannot be read.
    """
    text = line.strip()
    if _KEY_TYPE_RE.match(text.split(None, 1)[0] if text else ""):
        return KeyOptions()
    return parse_options(split_options(text)[0])


@implementer(IAuthorizedKeysDB)
class StoreKeysDB:
    """
    The authorized keys of each account, from the user store's memory (L{IUserStore.peek}): use it as
    C{SSHPublicKeyChecker(StoreKeysDB(store))}.

    Hidden accounts are hidden from finger only: their keys work.  A stored line that
    L{parse_authorized_key} refuses is skipped, and logged once per account and line.
    """

    log = Logger()

    def __init__(self, store: IUserStore) -> None:
        """
        @param store: the user store.
        """
        self.store = store
        self._reported: set[tuple[str, str]] = set()

    def getAuthorizedKeys(self, username: bytes) -> Iterable[Key]:
        """
        See L{IAuthorizedKeysDB.getAuthorizedKeys}.

        @param username: the login as sent by the client (any case).
        @return: the account's keys; none for an unknown login.
        """
        login = username.decode("utf-8", "replace") if isinstance(username, bytes) else username
        account = self.store.peek(login)
        if account is None:
            return []
        keys = []
        for line in account.keys:
            try:
                key, _ = parse_authorized_key(line)
            except ValueError as e:
                if (account.login, line) not in self._reported:
                    self._reported.add((account.login, line))
                    self.log.warn(
                        "Skipping an unusable key of {login}: {error}", login=account.login, error=str(e)
                    )
                continue
            keys.append(key)
        return keys

    def refusal(self, username: bytes, blob: bytes, address: object, now: float) -> str | None:
        """
        Why the key C{blob} may not log in as C{username} from C{address} at C{now} (its C{from=} or
        C{expiry-time=} options), or L{None} when some line of the account holding that key allows it.
        """
        login = username.decode("utf-8", "replace")
        account = self.store.peek(login)
        if account is None:
            return None
        host = getattr(address, "host", None)
        reasons = []
        for line in account.keys:
            try:
                key, _ = parse_authorized_key(line)
                options = key_options(line)
            except ValueError:
                continue
            if key.blob() != blob:
                continue
            reason = options.refusal(host, now)
            if reason is None:
                return None
            reasons.append(reason)
        return reasons[0] if reasons else None


@implementer(IUsernamePassword)
class _TextCredentials:
    """
    Username/password credentials whose username is of the form the inner checker indexes by, and whose
    password check accepts a stored password as L{str} or L{bytes}.
    """

    def __init__(self, username: str | bytes, password: bytes) -> None:
        """
        @param username: the username in the form the inner checker indexes by.
        @param password: the password as sent.
        """
        self.username = username
        self.password = password

    def checkPassword(self, password: str | bytes) -> bool:
        """
        Compare the stored C{password} (L{str} or L{bytes}) with the one sent, in constant time.
        """
        return hmac.compare_digest(_as_bytes(password), self.password)


@implementer(ICredentialsChecker)
class BytesUsernameChecker:
    """
    Adapt a username/password checker whose users are L{str} (C{--auth memory:alice:pw} builds a Twisted
    C{InMemoryUsernamePasswordDatabaseDontUse} with C{addUser("alice", "pw")}) to SSH, which presents usernames
    and passwords as L{bytes}.

    The inner checker is asked with the username as L{str}; if it refuses, once more with the username as
    L{bytes} (its constructor, unlike C{addUser}, encodes names).  The password is compared as bytes whether the
    inner checker stores it as L{str} or L{bytes}.  A returned L{str} avatar id is encoded to UTF-8 bytes.

    Meant for in-memory checkers, where the second attempt costs nothing; do not wrap expensive checkers.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, inner: ICredentialsChecker) -> None:
        """
        @param inner: the checker to adapt; it must accept L{IUsernamePassword} and call C{checkPassword}.
        """
        self.inner = inner

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[Any]:
        """
        See L{ICredentialsChecker.requestAvatarId}.
        """
        raw = _as_bytes(credentials.username)
        password = _as_bytes(credentials.password)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin("username is not UTF-8"))

        def ask(username: str | bytes) -> Deferred[object]:
            return maybeDeferred(self.inner.requestAvatarId, _TextCredentials(username, password))

        def retry_as_bytes(reason: Failure) -> Deferred[object]:
            reason.trap(UnauthorizedLogin)
            return ask(raw)

        d = ask(text)
        d.addErrback(retry_as_bytes)
        return d.addCallback(lambda avatar: _as_bytes(avatar) if isinstance(avatar, (bytes, str)) else avatar)


def review_passwd_file(path: str) -> list[str]:
    """
    Check a passwd file as the start and SIGHUP do: raise L{ValueError} (one line) if it cannot be used, else
    return its warnings: readable by others (it holds password hashes), and its plaintext entries
    (L{plaintext_warnings}).
    """
    check_passwd_file(path)
    warnings = []
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o004:
        warnings.append(f"{path} is readable by others (mode {mode:o}); it holds password hashes: chmod 640 it")
    return warnings + plaintext_warnings(path)
