"""
The files of a SQLite store: created 0600 whatever the umask, and a sidecar lock file that tells whether any
process has the store open.

Every process that opens the store holds a shared C{flock} on C{PATH.lock} while it is open; a restore (anything
that replaces the file) needs the exclusive lock, so it is refused while a server or a tool has the store open,
instead of renaming a file from under a process that would keep writing to the deleted inode.
"""

from __future__ import annotations

import errno
import fcntl
import os

from sshfinger.model.errors import StoreError

#: The mode of every file the store creates: it holds shell history, manhole input and peers' addresses.
PRIVATE = 0o600


def lock_path(path: str) -> str:
    """
    The sidecar lock file of the store at C{path}.
    """
    return path + ".lock"


def journal_paths(path: str) -> list[str]:
    """
    The files SQLite keeps beside a store in WAL mode.
    """
    return [path + "-wal", path + "-shm"]


def create_private(path: str, exclusive: bool = True) -> None:
    """
    Create an empty file with mode 0600 (not subject to the umask: the mode is set on the descriptor).

    @param exclusive: fail if the file exists (else leave an existing file as it is).
    @raise OSError: as C{os.open} does.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, PRIVATE)
    try:
        if exclusive:
            os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)


def _open_lock(path: str) -> int:
    name = lock_path(path)
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
    except OSError as e:
        raise StoreError(f"cannot open the lock file {name}: {e.strerror}") from None
    return fd


def lock_shared(path: str) -> int:
    """
    Take the shared lock that says the store at C{path} is open; return its descriptor (close it to release).

    @raise StoreError: if a restore holds the exclusive lock.
    """
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StoreError(f"{path} is being restored; try again when that is done") from None
        raise StoreError(f"cannot lock {lock_path(path)}: {e.strerror}") from None
    return fd


def lock_exclusive(path: str) -> int:
    """
    Take the exclusive lock on the store at C{path}, which no process may hold open; return its descriptor.

    @raise StoreError: with one line, if any process has the store open.
    """
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StoreError(
                f"{path} is open in another process (a running server?): stop it first, then restore"
            ) from None
        raise StoreError(f"cannot lock {lock_path(path)}: {e.strerror}") from None
    return fd


def unlock(fd: int | None) -> None:
    """
    Release a lock taken by L{lock_shared} or L{lock_exclusive} (closing its descriptor).
    """
    if fd is not None:
        os.close(fd)
