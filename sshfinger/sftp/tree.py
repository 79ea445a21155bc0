"""
The virtual tree one SFTP login sees, and how its files map onto account fields.

Every login's root holds its own account::

    plan  .plan  plan.sig  status  name  office  phone  .ssh/authorized_keys

and an admin's root also holds C{users/LOGIN/...}, the same files of every account.  No path leaves the tree and
no real file system is touched.  Reading a file gives the stored text (with a final newline); writing one
replaces the field through the store.  Other names in a writable directory are temporary files (an editor's
save, C{ssh-copy-id}'s upload): they live in the session only, and renaming one over a field file commits it.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.conch.ssh.filetransfer import FX_FAILURE, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, SFTPError

from sshfinger.model.account import Account
from sshfinger.model.sshsig import SignatureError, check_plan_signature, plan_bytes

#: Largest file (field or temporary) a session may write, in bytes.
MAX_FILE_BYTES = 64 * 1024
#: Most temporary files one session may hold at once.
MAX_TEMP_FILES = 16
#: Most files one session may hold open at once.
MAX_OPEN_FILES = 32
#: Longest path accepted, in bytes.
MAX_PATH_BYTES = 1024

#: Field files of an account directory, and the account field each one holds.
FIELD_FILES = {
    "plan": "plan",
    ".plan": "plan",
    "status": "status",
    "name": "real_name",
    "office": "office",
    "phone": "phone",
}
#: The plan's signature (C{ssh-keygen -Y sign} output); present only while the account has one.
SIGNATURE_FILE = "plan.sig"
#: The directory and file of the account's keys.
KEYS_DIR = ".ssh"
KEYS_FILE = "authorized_keys"
#: The directory of every account, in an admin's root.
USERS_DIR = "users"

#: Fields a user (not an admin) may change on their own account through files, as in the shell.
USER_WRITABLE = frozenset({"plan", "status", "real_name", "keys", "plan_signature"})


class Node(NamedTuple):
    """
    What a path names.

    @ivar kind: C{"root"} (a login's own account directory, or for an admin its root with C{users}),
        C{"users"} (the admin's list of accounts), C{"account"} (C{users/LOGIN}), C{"keysdir"} (C{.ssh}),
        C{"field"} (a field file), or C{"other"} (any other name: a temporary file, or nothing).
    @ivar owner: the account the path is in (empty for C{"users"}).
    @ivar field: for a C{"field"}, the account field: one of L{FIELD_FILES}' values, C{"keys"} or
        C{"plan_signature"}.
    @ivar parts: the normalized path, as components under the root.
    """

    kind: str
    owner: str
    field: str
    parts: tuple[str, ...]

    @property
    def is_dir(self) -> bool:
        """
        Whether the node is a directory.
        """
        return self.kind in ("root", "users", "account", "keysdir")

    @property
    def path(self) -> str:
        """
        The node's absolute path in the tree (C{"/plan"}).
        """
        return "/" + "/".join(self.parts)


def split_path(raw: bytes) -> tuple[str, ...]:
    """
    Turn a client's path into components under the root: absolute and relative paths both start at the root,
    empty components and C{.} are dropped.

    @raise SFTPError: for a path that is too long, not UTF-8, holds control characters, or C{..}.
    """
    if len(raw) > MAX_PATH_BYTES:
        raise SFTPError(FX_FAILURE, f"path longer than {MAX_PATH_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SFTPError(FX_NO_SUCH_FILE, "path is not UTF-8") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise SFTPError(FX_NO_SUCH_FILE, "path holds control characters")
    parts = tuple(part for part in text.split("/") if part not in ("", "."))
    if ".." in parts:
        raise SFTPError(FX_PERMISSION_DENIED, "'..' is not allowed in paths")
    return parts


def real_path(raw: bytes) -> str:
    """
    The canonical absolute form of a path (C{REALPATH}): C{..} is resolved lexically, never above the root.

    @raise SFTPError: for a path that would leave the root, or that L{split_path} refuses.
    """
    if len(raw) > MAX_PATH_BYTES:
        raise SFTPError(FX_FAILURE, f"path longer than {MAX_PATH_BYTES} bytes")
    parts: list[str] = []
    for part in raw.split(b"/"):
        if part == b"..":
            if not parts:
                raise SFTPError(FX_PERMISSION_DENIED, "'..' would leave your directory")
            parts.pop()
        elif part not in (b"", b"."):
            parts.extend(split_path(part))
    return "/" + "/".join(parts)


def locate(parts: tuple[str, ...], login: str, admin: bool, exists: Callable[[str], bool]) -> Node:
    """
    Say what C{parts} names for C{login}.

    @param admin: whether the login sees C{users/}.
    @param exists: tells whether an account exists (for C{users/LOGIN}).
    @raise SFTPError: C{FX_NO_SUCH_FILE} for a path under no account, or too deep to be anything.
    """
    base: tuple[str, ...] = ()
    owner, rest = login, parts
    if admin and parts and parts[0] == USERS_DIR:
        if len(parts) == 1:
            return Node("users", "", "", parts)
        owner, rest, base = parts[1], parts[2:], parts[:2]
        if not exists(owner):
            raise SFTPError(FX_NO_SUCH_FILE, f"no account {owner!r}")
        if not rest:
            return Node("account", owner, "", parts)
    if not rest:
        return Node("root", owner, "", parts)
    if len(rest) == 1:
        name = rest[0]
        if name in FIELD_FILES:
            return Node("field", owner, FIELD_FILES[name], parts)
        if name == SIGNATURE_FILE:
            return Node("field", owner, "plan_signature", parts)
        if name == KEYS_DIR:
            return Node("keysdir", owner, "", parts)
        return Node("other", owner, "", parts)
    if len(rest) == 2 and rest[0] == KEYS_DIR:
        if rest[1] == KEYS_FILE:
            return Node("field", owner, "keys", parts)
        return Node("other", owner, "", parts)
    raise SFTPError(FX_NO_SUCH_FILE, f"no such file: /{'/'.join(base + rest)}")


def field_content(account: Account, field: str) -> bytes:
    """
    The bytes of a field file: the stored text with a final newline (nothing for an empty field).
    """
    if field == "plan":
        return plan_bytes(account.plan)
    if field == "keys":
        return "".join(line + "\n" for line in account.keys).encode("utf-8")
    if field == "plan_signature":
        return account.plan_signature.encode("utf-8")
    value: str = getattr(account, field)
    return (value + "\n").encode("utf-8") if value else b""


def field_exists(account: Account, field: str) -> bool:
    """
    Whether a field file is listed and can be read: C{plan.sig} only while there is a signature.
    """
    return field != "plan_signature" or bool(account.plan_signature)


def may_write(field: str, is_own: bool, admin: bool) -> bool:
    """
    Whether a login may replace C{field}: an admin any account's field, a user their own L{USER_WRITABLE}.
    """
    return admin or (is_own and field in USER_WRITABLE)


def field_changes(
    account: Account, field: str, data: bytes, parse_key: Callable[[str], tuple[Any, str]] | None
) -> dict[str, object]:
    """
    The store change that writing C{data} to a field file makes.

    Text must be UTF-8; one-line fields lose their final newline (the plan's trailing newlines are dropped by the
    store); C{authorized_keys} takes one key per line (blank and C{#} lines skipped), each checked with
    C{parse_key}; C{plan.sig} must verify against the stored plan and one of the account's keys (an empty one
    removes the signature).

    @raise SFTPError: C{FX_FAILURE} with a one-line reason.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SFTPError(FX_FAILURE, "file is not UTF-8 text") from None
    if field == "keys":
        if parse_key is None:
            raise SFTPError(FX_PERMISSION_DENIED, "keys cannot be changed on this server")
        lines = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                lines.append(parse_key(line)[1])
            except ValueError as e:
                raise SFTPError(FX_FAILURE, f"authorized_keys line {number}: {e}") from None
        return {"keys": tuple(dict.fromkeys(lines))}
    if field == "plan_signature":
        if not text.strip():
            return {"plan_signature": ""}
        try:
            check_plan_signature(account.plan, text, account.keys)
        except SignatureError as e:
            raise SFTPError(FX_FAILURE, f"plan.sig refused: {e}") from None
        return {"plan_signature": text}
    if field != "plan":
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
    return {field: text}


def file_mode(node: Node, writable: bool) -> int:
    """
    The POSIX mode reported for a node.
    """
    if node.is_dir:
        return stat.S_IFDIR | (0o700 if writable else 0o500)
    return stat.S_IFREG | (0o600 if writable else 0o400)


__all__ = [
    "FIELD_FILES",
    "KEYS_DIR",
    "KEYS_FILE",
    "MAX_FILE_BYTES",
    "MAX_OPEN_FILES",
    "MAX_PATH_BYTES",
    "MAX_TEMP_FILES",
    "SIGNATURE_FILE",
    "USERS_DIR",
    "Node",
    "field_changes",
    "field_content",
    "field_exists",
    "file_mode",
    "locate",
    "may_write",
    "real_path",
    "split_path",
]
