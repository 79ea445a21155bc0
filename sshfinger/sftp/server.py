"""
L{ISFTPServer} over the user store: the files of L{sshfinger.sftp.tree}, opened, read, written and renamed.

A write is kept in the open file until the client closes it (or asks for C{fsync}); then the field is replaced
through the store, and the close is answered only once the store has acknowledged it, so a client's success
means durable.  Temporary files live in the session, bounded in number and size, and vanish with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.conch.interfaces import ISFTPServer
from twisted.conch.ssh.filetransfer import (
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPError,
)
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.model.account import Account, Actor
from sshfinger.model.errors import InvalidValue, NoSuchAccount, StoreError
from sshfinger.sftp import tree
from sshfinger.sftp.handles import Listing, VirtualFile, resize
from sshfinger.sftp.tree import MAX_FILE_BYTES, MAX_OPEN_FILES, MAX_TEMP_FILES, Node
from sshfinger.store.interfaces import IUserStore

#: The OpenSSH extensions announced to clients (handled by L{sshfinger.sftp.protocol.SFTPServerProtocol}).
EXTENSIONS = {
    b"posix-rename@openssh.com": b"1",
    b"statvfs@openssh.com": b"2",
    b"fstatvfs@openssh.com": b"2",
    b"fsync@openssh.com": b"1",
}


def _store_error(reason: Failure) -> Failure:
    """
    Turn a store's refusal into the SFTP status a client shows.
    """
    if reason.check(InvalidValue):
        return Failure(SFTPError(FX_FAILURE, str(reason.value)))
    if reason.check(NoSuchAccount):
        return Failure(SFTPError(FX_NO_SUCH_FILE, str(reason.value)))
    if reason.check(StoreError):
        return Failure(SFTPError(FX_FAILURE, "the store is unavailable; try again"))
    return reason


@implementer(ISFTPServer)
class VirtualFiles:
    """
    One SFTP session of one login.

    @ivar login: the login.
    @ivar avatar: the login too (L{ISFTPServer} asks for an avatar).
    @ivar actor: who the store records as making the changes (channel C{sftp}).
    """

    log = Logger()

    def __init__(
        self,
        store: IUserStore,
        login: str,
        is_admin: Callable[[], bool],
        parse_key: Callable[[str], tuple[Any, str]] | None = None,
        peer: str = "",
    ) -> None:
        """
        @param store: the user store.
        @param login: the authenticated login.
        @param is_admin: tells whether the login is an admin now.
        @param parse_key: checks and normalizes an C{authorized_keys} line (raising L{ValueError}).
        @param peer: the client's address, for the audit trail.
        """
        self.store = store
        self.login = login
        self.avatar = login
        self.is_admin = is_admin
        self.parse_key = parse_key
        self.actor = Actor(login, "sftp", peer)
        self.temps: dict[tuple[str, ...], bytearray] = {}
        #: Field files open for writing, by account and field: a file opened meanwhile reads what they hold
        #: (sshfs answers close(2) before it sends the SFTP close, so a read can overtake the commit).
        self.writers: dict[tuple[str, str], VirtualFile] = {}
        self.open_files: set[VirtualFile] = set()
        self.open_listings: set[Listing] = set()
        self.pending: set[Deferred[Any]] = set()
        self._idle: list[Deferred[None]] = []

    # Helpers.

    def locate(self, path: bytes) -> Node:
        """
        Say what a client's path names (see L{tree.locate}).
        """
        return tree.locate(tree.split_path(path), self.login, self.is_admin(), self._exists)

    def _exists(self, login: str) -> bool:
        return self.store.peek(login) is not None

    def account(self, node: Node) -> Account:
        """
        The account a node is in, from memory.

        @raise SFTPError: if it is gone.
        """
        account = self.store.peek(node.owner or self.login)
        if account is None:
            raise SFTPError(FX_NO_SUCH_FILE, f"no account {node.owner!r}")
        return account

    def writable(self, node: Node) -> bool:
        """
        Whether this login may write the node (a field, or a temporary file in a writable directory).
        """
        admin = self.is_admin()
        own = node.owner == self.login
        if node.kind == "field":
            return tree.may_write(node.field, own, admin)
        return node.kind != "users" and (own or admin)

    def commit(self, node: Node, data: bytes) -> Deferred[Any]:
        """
        Replace the node's field with C{data} through the store; fires once the store acknowledged it.
        """
        try:
            if not self.writable(node):
                raise SFTPError(FX_PERMISSION_DENIED, f"{node.path} is read-only for {self.login}")
            if len(data) > MAX_FILE_BYTES:
                raise SFTPError(FX_FAILURE, f"file is larger than {MAX_FILE_BYTES} bytes")
            changes = tree.field_changes(self.account(node), node.field, data, self.parse_key)
        except SFTPError as e:
            self._refused(node, e.message)
            return fail()
        d = self.store.update(node.owner, changes, self.actor)
        d.addCallbacks(self._committed, _store_error, callbackArgs=(node,))

        def refused(reason: Failure) -> Failure:
            if reason.check(SFTPError):
                self._refused(node, reason.value.message)
            return reason

        return self.track(d.addErrback(refused))

    def _refused(self, node: Node, why: str) -> None:
        self.log.info("SFTP write of {path} by {login} refused: {why}", path=node.path, login=self.login, why=why)

    def _committed(self, account: Account, node: Node) -> None:
        self.log.info("SFTP write of {path} by {login} committed", path=node.path, login=self.login, field=node.field)

    def track(self, d: Deferred[Any]) -> Deferred[Any]:
        """
        Remember C{d} as pending until it fires, for L{when_idle}.
        """
        self.pending.add(d)

        def done(result: object) -> object:
            self.pending.discard(d)
            if not self.pending:
                waiters, self._idle = self._idle, []
                for waiter in waiters:
                    waiter.callback(None)
            return result

        return d.addBoth(done)

    def when_idle(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once no commit is pending (at once if none is).
        """
        if not self.pending:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle.append(waiter)
        return waiter

    def end(self) -> None:
        """
        The session is over: temporary files vanish.
        """
        self.temps.clear()

    def attributes(self, node: Node) -> dict[str, Any]:
        """
        The SFTP attributes of an existing node.

        @raise SFTPError: C{FX_NO_SUCH_FILE} if it does not exist.
        """
        writable = self.writable(node)
        if node.kind == "users":
            return {"size": 0, "permissions": tree.file_mode(node, False), "atime": 0, "mtime": 0}
        account = self.account(node)
        mtime = int(account.updated_at)
        if node.is_dir:
            size = 0
        elif (writer := self.writers.get((node.owner, node.field))) is not None:
            size = len(writer.data)
        elif node.kind == "field" and tree.field_exists(account, node.field):
            size = len(tree.field_content(account, node.field))
        elif node.parts in self.temps:
            size = len(self.temps[node.parts])
            mtime = int(time.time())
        else:
            raise SFTPError(FX_NO_SUCH_FILE, f"no such file: {node.path}")
        return {"size": size, "permissions": tree.file_mode(node, writable), "atime": mtime, "mtime": mtime}

    def _new_temp(self, node: Node) -> bytearray:
        if not self.writable(node) or len(node.parts) < 1:
            raise SFTPError(FX_PERMISSION_DENIED, f"cannot create {node.path}")
        if len(self.temps) >= MAX_TEMP_FILES:
            raise SFTPError(FX_FAILURE, f"at most {MAX_TEMP_FILES} temporary files per session")
        data = self.temps[node.parts] = bytearray()
        return data

    # ISFTPServer.

    def gotVersion(self, otherVersion: int, extData: dict[bytes, bytes]) -> dict[bytes, bytes]:
        """
        Announce the OpenSSH extensions sshfinger supports.
        """
        return dict(EXTENSIONS)

    def openFile(self, filename: bytes, flags: int, attrs: dict[str, Any]) -> VirtualFile:
        """
        Open a field file (its current content, or empty with C{TRUNC}) or a temporary file.
        """
        node = self.locate(filename)
        if node.is_dir:
            raise SFTPError(FX_FAILURE, f"{node.path} is a directory")
        if len(self.open_files) >= MAX_OPEN_FILES:
            raise SFTPError(FX_FAILURE, f"at most {MAX_OPEN_FILES} open files per session")
        write = bool(flags & (FXF_WRITE | FXF_APPEND))
        if node.kind == "field":
            account = self.account(node)
            exists = tree.field_exists(account, node.field)
            if flags & FXF_EXCL and exists:
                raise SFTPError(FX_FAILURE, f"{node.path} already exists")
            if not exists and not (write and flags & FXF_CREAT):
                raise SFTPError(FX_NO_SUCH_FILE, f"no such file: {node.path}")
            if write and not self.writable(node):
                raise SFTPError(FX_PERMISSION_DENIED, f"{node.path} is read-only for {self.login}")
            writer = self.writers.get((node.owner, node.field))
            current = writer.data if writer is not None else tree.field_content(account, node.field)
            data = bytearray() if flags & FXF_TRUNC and write else bytearray(current)
            file = VirtualFile(self, node, data, bool(flags & FXF_READ), write, bool(flags & FXF_APPEND))
            file.dirty = len(data) != len(current)  # truncated on opening: an empty upload empties the field
            if write:
                self.writers[(node.owner, node.field)] = file
            return file
        temp = self.temps.get(node.parts)
        if temp is None:
            if not (write and flags & FXF_CREAT):
                raise SFTPError(FX_NO_SUCH_FILE, f"no such file: {node.path}")
            temp = self._new_temp(node)
        elif flags & FXF_EXCL:
            raise SFTPError(FX_FAILURE, f"{node.path} already exists")
        elif flags & FXF_TRUNC and write:
            temp.clear()
        return VirtualFile(self, node, temp, bool(flags & FXF_READ), write, bool(flags & FXF_APPEND), temp=True)

    def removeFile(self, filename: bytes) -> Deferred[Any] | None:
        """
        Remove a temporary file, or C{plan.sig} (which drops the signature); field files cannot be removed.
        """
        node = self.locate(filename)
        if node.kind == "field" and node.field == "plan_signature":
            if not self.account(node).plan_signature:
                raise SFTPError(FX_NO_SUCH_FILE, f"no such file: {node.path}")
            return self.commit(node, b"")
        if node.kind == "other" and node.parts in self.temps:
            if not self.writable(node):
                raise SFTPError(FX_PERMISSION_DENIED, f"cannot remove {node.path}")
            del self.temps[node.parts]
            return None
        if node.kind == "other":
            raise SFTPError(FX_NO_SUCH_FILE, f"no such file: {node.path}")
        raise SFTPError(FX_PERMISSION_DENIED, f"{node.path} cannot be removed; write an empty file instead")

    def renameFile(self, oldpath: bytes, newpath: bytes) -> Deferred[Any] | None:
        """
        Rename a temporary file: over a field file it replaces the field (an editor's save), else it moves.
        Existing targets are replaced, as with C{posix-rename@openssh.com}.
        """
        old, new = self.locate(oldpath), self.locate(newpath)
        if old.kind != "other":
            raise SFTPError(FX_PERMISSION_DENIED, f"{old.path} cannot be renamed; write to it instead")
        if old.parts not in self.temps:
            raise SFTPError(FX_NO_SUCH_FILE, f"no such file: {old.path}")
        if old.owner != new.owner or not self.writable(old):
            raise SFTPError(FX_PERMISSION_DENIED, f"cannot move {old.path} to {new.path}")
        if new.kind == "field":
            data = bytes(self.temps[old.parts])

            def done(result: object) -> None:
                self.temps.pop(old.parts, None)

            return self.commit(new, data).addCallback(done)
        if new.kind != "other":
            raise SFTPError(FX_PERMISSION_DENIED, f"{new.path} is a directory")
        self.temps[new.parts] = self.temps.pop(old.parts)
        return None

    def makeDirectory(self, path: bytes, attrs: dict[str, Any]) -> None:
        """
        Succeed for a directory that exists (C{ssh-copy-id}'s C{mkdir .ssh}); refuse any other.
        """
        node = self.locate(path)
        if not node.is_dir:
            raise SFTPError(FX_PERMISSION_DENIED, "no new directories can be made here")

    def removeDirectory(self, path: bytes) -> None:
        """
        Refuse: the tree's directories are fixed.
        """
        node = self.locate(path)
        raise SFTPError(FX_PERMISSION_DENIED, f"{node.path} cannot be removed")

    def openDirectory(self, path: bytes) -> Listing:
        """
        List a directory of the tree.
        """
        node = self.locate(path)
        if not node.is_dir:
            if node.kind == "other" and node.parts not in self.temps:
                raise SFTPError(FX_NO_SUCH_FILE, f"no such directory: {node.path}")
            raise SFTPError(FX_FAILURE, f"{node.path} is not a directory")
        if len(self.open_listings) >= MAX_OPEN_FILES:
            raise SFTPError(FX_FAILURE, f"at most {MAX_OPEN_FILES} open directories per session")
        return Listing(self, node)

    def getAttrs(self, path: bytes, followLinks: bool) -> dict[str, Any]:
        """
        The attributes of a node (there are no links to follow).
        """
        return self.attributes(self.locate(path))

    def setAttrs(self, path: bytes, attrs: dict[str, Any]) -> Deferred[Any] | None:
        """
        Honour a new size (truncation) of a field or temporary file; ignore modes and times (C{chmod}
        succeeds, changing nothing).
        """
        node = self.locate(path)
        self.attributes(node)  # it must exist
        if "size" not in attrs or node.is_dir:
            return None
        size = attrs["size"]
        if size > MAX_FILE_BYTES:
            raise SFTPError(FX_FAILURE, f"file is larger than {MAX_FILE_BYTES} bytes")
        if node.kind == "other":
            if not self.writable(node):
                raise SFTPError(FX_PERMISSION_DENIED, f"{node.path} is read-only")
            resize(self.temps[node.parts], size)
            return None
        data = bytearray(tree.field_content(self.account(node), node.field))
        if len(data) == size:
            return None
        resize(data, size)
        return self.commit(node, bytes(data))

    def readLink(self, path: bytes) -> bytes:
        """
        Refuse: there are no symbolic links.
        """
        raise SFTPError(FX_OP_UNSUPPORTED, "symbolic links are not supported")

    def makeLink(self, linkPath: bytes, targetPath: bytes) -> None:
        """
        Refuse: there are no symbolic links.
        """
        raise SFTPError(FX_OP_UNSUPPORTED, "symbolic links are not supported")

    def realPath(self, path: bytes) -> bytes:
        """
        The canonical absolute path (see L{tree.real_path}).
        """
        return tree.real_path(path).encode("utf-8")

    def extendedRequest(self, extendedName: bytes, extendedData: bytes) -> bytes:
        """
        Any extension not handled by the protocol is unsupported.
        """
        raise NotImplementedError(f"extension {extendedName.decode('ascii', 'replace')} is not supported")


__all__ = ["EXTENSIONS", "VirtualFiles"]
