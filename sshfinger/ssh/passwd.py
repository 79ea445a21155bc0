"""
The passwd file behind C{--auth file:PATH}: one C{login:hash} line per account.

A hash is a bcrypt string (C{$2b$...}) as C{sshfinger passwd} writes it.  A line whose second field is not a
bcrypt hash is a plaintext password, accepted for compatibility with Twisted's C{FilePasswordDB} but warned about
loudly.  Blank lines and lines starting with C{#} are ignored.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bcrypt

#: The bcrypt cost C{sshfinger passwd} uses unless told otherwise.
DEFAULT_ROUNDS = 12

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")

#: The fewest characters a new password may have.
MIN_PASSWORD_LENGTH = 10


def check_password_strength(password: str) -> None:
    """
    Refuse a new password that is too weak: shorter than L{MIN_PASSWORD_LENGTH} characters.

    @raise ValueError: with one line saying why.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


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


def set_password(path: str, login: str, password: str, rounds: int = DEFAULT_ROUNDS) -> None:
    """
    Write (or replace) the entry of C{login} in the passwd file at C{path}, atomically.

    A new file is created with mode 0600; an existing file keeps its mode, and its owner and group where this
    process may set them (root editing a file that the server reads through its group).
    """
    if not 4 <= rounds <= 31:
        raise ValueError("bcrypt rounds must be between 4 and 31")
    target = Path(path)
    try:
        old = target.read_bytes()
        status = target.stat()
        mode, owner = status.st_mode & 0o777, (status.st_uid, status.st_gid)
    except FileNotFoundError:
        old, mode, owner = b"", 0o600, None
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    lines = [
        raw
        for raw in old.splitlines()
        if raw.strip().partition(b":")[0].decode("utf-8", "replace").lower() != login
    ]
    lines.append(login.encode("utf-8") + b":" + hash_password(password, rounds))
    directory = target.parent
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    try:
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, *owner)
            except PermissionError:
                pass  # not root: the file we may replace is ours to own anyway
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise
