"""
The passwd file behind C{--auth file:PATH}: one C{login:hash} line per account.

A hash is a bcrypt string (C{$2b$...}) as C{sshfinger passwd} writes it.  A line whose second field is not a
bcrypt hash is a plaintext password, accepted for compatibility with Twisted's C{FilePasswordDB} but warned about
loudly.  Blank lines and lines starting with C{#} are ignored; a UTF-8 byte order mark at the start is skipped
(and warned about by L{sshfinger.ssh.checkers.plaintext_warnings}).

Every change (L{set_password}, L{delete_password}) holds an exclusive C{fcntl} lock on the sidecar file
C{PATH.lock} while it reads, edits and atomically replaces the file, so that the server's C{passwd} command and
the C{sshfinger passwd} tool, run at the same moment, never lose each other's change.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt

#: The bcrypt cost C{sshfinger passwd} uses unless told otherwise.
DEFAULT_ROUNDS = 12
#: What a UTF-8 editor may put at the start of the file.
BOM = b"\xef\xbb\xbf"

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")

@dataclass(frozen=True, slots=True)
class Entry:
    """
    One line of a passwd file.

    @ivar login: the login, lower-case.
    @ivar secret: the bcrypt hash, or the plaintext password.
    @ivar line: the line number, for messages.
    """

    login: str
    secret: bytes
    line: int

    @property
    def is_bcrypt(self) -> bool:
        """
        Whether the secret is a bcrypt hash (otherwise it is a plaintext password).
        """
        return self.secret.startswith(tuple(prefix.encode() for prefix in _BCRYPT_PREFIXES))


def parse(data: bytes) -> dict[str, Entry]:
    """
    Parse the contents of a passwd file.  Malformed lines (no C{:}) are skipped; a later line for the same
    login wins.
    """
    entries: dict[str, Entry] = {}
    data = data.removeprefix(BOM)
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        login, sep, secret = line.partition(b":")
        if not sep or not login:
            continue
        name = login.decode("utf-8", "replace").lower()
        entries[name] = Entry(name, secret, number)
    return entries


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> bytes:
    """
    Hash a password with bcrypt at cost C{rounds}.
    """
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds))


def lock_path(path: str) -> str:
    """
    The sidecar lock file of the passwd file C{path}.
    """
    return f"{path}.lock"


@contextmanager
def locked(path: str) -> Iterator[None]:
    """
    Hold the exclusive lock of the passwd file C{path} (C{fcntl.flock} on L{lock_path}, created 0600; one that
    another user made is locked through a read-only descriptor).

    @raise ValueError: with one line, if the lock file cannot be opened (say, its directory is missing).
    """
    try:
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except PermissionError:
        # Made by another user (root running the tool): a lock needs only a descriptor, not write access.
        try:
            fd = os.open(lock_path(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ValueError(f"cannot lock {path}: {e.strerror}") from None
    except OSError as e:
        raise ValueError(f"cannot lock {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def set_password(path: str, login: str, password: str, rounds: int = DEFAULT_ROUNDS) -> None:
    """
    Write (or replace) the entry of C{login} in the passwd file at C{path}, under its lock, atomically.

    A new file is created with mode 0600; an existing file keeps its mode, and its owner and group where this
    process may set them (root editing a file that the server reads through its group).
    """
    if not 4 <= rounds <= 31:
        raise ValueError("bcrypt rounds must be between 4 and 31")
    hashed = hash_password(password, rounds)
    entry = login.encode("utf-8") + b":" + hashed
    _edit(path, login, lambda lines: [*lines, entry])


def delete_password(path: str, login: str) -> bool:
    """
    Remove the entry of C{login} from the passwd file at C{path} (under its lock, atomically): called when the
    account is deleted, so that a later account of the same name does not inherit its password.

    @return: whether there was an entry; a missing file has none.
    """
    if not os.path.exists(path):
        return False
    return _edit(path, login, lambda lines: lines)


def _edit(path: str, login: str, change: Callable[[list[bytes]], list[bytes]]) -> bool:
    """
    Under the lock, read the file, drop C{login}'s lines, let C{change} edit the rest, and replace the file.

    @return: whether C{login} had a line.
    """
    target = Path(path)
    with locked(path):
        try:
            old = target.read_bytes()
            status = target.stat()
            mode, owner = status.st_mode & 0o777, (status.st_uid, status.st_gid)
        except FileNotFoundError:
            old, mode, owner = b"", 0o600, None
        except OSError as e:
            raise ValueError(f"cannot read {path}: {e.strerror}") from None
        name = login.lower()
        all_lines = old.removeprefix(BOM).splitlines()
        lines = [raw for raw in all_lines if raw.strip().partition(b":")[0].decode("utf-8", "replace").lower() != name]
        had = len(lines) != len(all_lines)
        _replace(target, change(lines), mode, owner)
    return had


def _replace(target: Path, lines: list[bytes], mode: int, owner: tuple[int, int] | None) -> None:
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise ValueError(f"cannot write {target}: {e.strerror}") from None
    try:
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, *owner)
            except PermissionError:
                pass  # not root: the file we may replace is ours to own anyway
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise
