"""
The server's SSH host keys: generated on first start, reused afterwards, refused when unsafe.

A host key directory holds OpenSSH-style files::

    ssh_host_ed25519_key  ssh_host_ed25519_key.pub   generated if missing
    ssh_host_rsa_key      ssh_host_rsa_key.pub       generated if missing (RSA 3072)
    ssh_host_ecdsa_key    ssh_host_ecdsa_key.pub     loaded if present, never generated

Both an ed25519 and an RSA key are served: with only ed25519, Conch advertises C{server-sig-algs=<ssh-ed25519>}
and OpenSSH clients holding RSA user keys cannot log in.  Private keys are written in the OpenSSH format with mode
0600, atomically; a private key readable or writable by group or others is refused, as sshd refuses it.
"""

from __future__ import annotations

import os
import secrets
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.conch.ssh.keys import Key
from twisted.logger import Logger

from sshfinger.model.sshsig import fingerprint

#: Bits of a generated RSA host key.
RSA_BITS = 3072
#: Smallest RSA host key accepted from disk.
RSA_MIN_BITS = 2048
#: A host key file larger than this is not read (an RSA-16384 key in OpenSSH format is under 13 kB).
_MAX_KEY_FILE = 65536

_log = Logger(namespace="sshfinger.ssh.hostkeys")

#: ssh-keygen's names of key types, as printed in parentheses by C{ssh-keygen -l}.
_TYPE_NAMES = {"Ed25519": "ED25519", "RSA": "RSA", "EC": "ECDSA", "DSA": "DSA"}


class HostKeyError(Exception):
    """
    A host key cannot be loaded, generated or trusted.  The message is one line naming the file, for an admin.
    """


@dataclass(frozen=True)
class _Kind:
    """
    One kind of host key file.

    @ivar filename: the private key's file name; the public key is C{filename + ".pub"}.
    @ivar ssh_types: the SSH key types the file may hold.
    @ivar generate: makes a new private key, or L{None} if this kind is only loaded when present.
    """

    filename: str
    ssh_types: tuple[bytes, ...]
    generate: Callable[[], Key] | None


_KINDS = (
    _Kind("ssh_host_ed25519_key", (b"ssh-ed25519",), lambda: Key(ed25519.Ed25519PrivateKey.generate())),
    _Kind(
        "ssh_host_rsa_key",
        (b"ssh-rsa",),
        lambda: Key(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)),
    ),
    _Kind(
        "ssh_host_ecdsa_key",
        (b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp384", b"ecdsa-sha2-nistp521"),
        None,
    ),
)


def default_comment() -> str:
    """
    The comment written into generated public key files: C{sshfinger@HOSTNAME}.
    """
    return f"sshfinger@{socket.gethostname()}"


def load_host_keys(directory: str, comment: str | None = None) -> dict[bytes, Key]:
    """
    Load the host keys in C{directory}, generating the ed25519 and RSA keys on first start.

    The directory is created (mode 0700) if missing.  A private key without its C{.pub} file gets the C{.pub}
    rewritten from it; if that write fails the server still starts and a warning is logged.

    @param directory: the host key directory.
    @param comment: the comment of newly written C{.pub} files; L{default_comment} if L{None}.
    @return: private keys by SSH key type (C{b"ssh-ed25519"}, C{b"ssh-rsa"}, maybe C{b"ecdsa-sha2-nistp256"}),
        as L{twisted.conch.ssh.factory.SSHFactory.privateKeys} expects.
    @raise HostKeyError: with one line naming the file, if a key file is accessible by group or others, cannot
        be parsed or holds the wrong kind of key, or if the directory is missing and cannot be created, or a key
        must be generated and cannot be written.
    """
    if comment is None:
        comment = default_comment()
    _ensure_directory(directory)
    keys: dict[bytes, Key] = {}
    for kind in _KINDS:
        path = os.path.join(directory, kind.filename)
        if os.path.lexists(path):
            key = _load_private(path, kind)
            if not os.path.lexists(path + ".pub"):
                try:
                    _write_atomically(path + ".pub", _public_line(key, comment), 0o644)
                except OSError as e:
                    _log.warn(
                        "Cannot rewrite the missing public key {path}: {error}", path=path + ".pub", error=e.strerror
                    )
        elif kind.generate is not None:
            key = kind.generate()
            try:
                _write_atomically(path, key.toString("OPENSSH", subtype="v1", comment=comment.encode()), 0o600)
                _write_atomically(path + ".pub", _public_line(key, comment), 0o644)
            except OSError as e:
                raise HostKeyError(f"cannot write host key {path}: {e.strerror}") from None
            _log.info("Generated SSH host key {description}", description=describe(key, path))
        else:
            continue
        keys[key.sshType()] = key
    return keys


def existing_host_keys(directory: str) -> list[tuple[str, Key]]:
    """
    Load the host keys present in C{directory} without generating any (for checks such as C{sshfinger doctor}).

    @return: C{(path of the .pub file, private key)} pairs.
    @raise HostKeyError: as L{load_host_keys} does for a bad key file.
    """
    found = []
    for kind in _KINDS:
        path = os.path.join(directory, kind.filename)
        if os.path.lexists(path):
            found.append((path + ".pub", _load_private(path, kind)))
    return found


def describe(key: Key, comment: str) -> str:
    """
    The whole line C{ssh-keygen -lf} prints for C{key}: C{"256 SHA256:... root@host (ED25519)"}.

    As ssh-keygen does, an empty comment is shown as C{no comment}.
    """
    type_name = _TYPE_NAMES.get(key.type(), key.type().upper())
    return f"{key.size()} {fingerprint(key)} {comment or 'no comment'} ({type_name})"


def _ensure_directory(directory: str) -> None:
    if os.path.isdir(directory):
        return
    if os.path.lexists(directory):
        raise HostKeyError(f"host key directory {directory} is not a directory")
    try:
        os.makedirs(directory, mode=0o700)
    except OSError as e:
        raise HostKeyError(f"cannot create host key directory {directory}: {e.strerror}") from None


def _load_private(path: str, kind: _Kind) -> Key:
    """
    Read and check one private host key file.  Anything but a regular file (a FIFO, a device, a directory) is
    refused before it is opened (opening a FIFO would wait for a writer for ever); the file is then opened
    without following a swap to something else (C{O_NONBLOCK}, and checked again).  No message ever holds the
    file's content: a damaged key's parse error may quote it, so only its kind is named.
    """
    try:
        before = os.stat(path)
    except OSError as e:
        raise HostKeyError(f"cannot read host key {path}: {e.strerror}") from None
    if not stat.S_ISREG(before.st_mode):
        raise HostKeyError(f"host key {path} is not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise HostKeyError(f"cannot read host key {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise HostKeyError(f"host key {path} is not a regular file")
            if mode & 0o077:
                raise HostKeyError(
                    f"host key {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                    f"run: chmod 600 {path}"
                )
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as e:
        raise HostKeyError(f"cannot read host key {path}: {e.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        raise HostKeyError(f"host key {path} is larger than {_MAX_KEY_FILE} bytes: not a key file")
    try:
        key = Key.fromString(data)
    except Exception:
        raise HostKeyError(
            f"cannot parse host key {path}: not a private key in OpenSSH or PEM format (damaged or truncated?)"
        ) from None
    if key.isPublic():
        raise HostKeyError(f"host key {path} holds a public key, not a private key")
    if key.sshType() not in kind.ssh_types:
        raise HostKeyError(
            f"host key {path} holds a {key.sshType().decode()} key, expected {kind.ssh_types[0].decode()}"
        )
    if key.type() == "RSA" and key.size() < RSA_MIN_BITS:
        raise HostKeyError(f"host key {path} is a {key.size()}-bit RSA key; at least {RSA_MIN_BITS} bits required")
    return key


def _public_line(key: Key, comment: str) -> bytes:
    line = key.public().toString("openssh")
    if comment:
        line += b" " + comment.encode("utf-8")
    return line + b"\n"


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    """
    Write C{data} to C{path} through a temporary file in the same directory created with C{mode}, fsynced and
    renamed into place, then fsync the directory.
    """
    directory = os.path.dirname(path) or "."
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
