"""
The open files and directories of an SFTP session (L{sshfinger.sftp.server.VirtualFiles}).

A field file opened for writing holds a copy of the field's bytes until it is closed (or synced), when it is
committed through the store; a temporary file is the session's own buffer.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from twisted.conch.interfaces import ISFTPFile
from twisted.conch.ssh.filetransfer import FX_FAILURE, FX_PERMISSION_DENIED, SFTPError
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from sshfinger.sftp import tree
from sshfinger.sftp.tree import MAX_FILE_BYTES, Node

if TYPE_CHECKING:
    from sshfinger.sftp.server import VirtualFiles


def resize(data: bytearray, size: int) -> None:
    """
    Cut C{data} to C{size} bytes, or pad it with zeros.
    """
    if size < len(data):
        del data[size:]
    else:
        data.extend(bytes(size - len(data)))


def long_name(name: str, attrs: dict[str, Any], owner: str) -> str:
    """
    The C{ls -l} line of a directory entry.
    """
    when = time.strftime("%b %d %H:%M", time.gmtime(attrs.get("mtime", 0)))
    mode = stat.filemode(attrs["permissions"])
    who = owner or "root"
    return f"{mode}    1 {who:<8} {who:<8} {attrs['size']:>8} {when} {name}"


class Listing:
    """
    An open directory: the names in it with their attributes, as C{READDIR} wants them.
    """

    def __init__(self, files: VirtualFiles, node: Node) -> None:
        """
        @param files: the session.
        @param node: the directory.
        """
        self.files = files
        self.node = node
        files.open_listings.add(self)

    def _names(self) -> Iterator[str]:
        node, files = self.node, self.files
        if node.kind == "users":
            yield from files.store.logins()
            return
        if node.kind == "keysdir":
            yield tree.KEYS_FILE
        else:
            yield from tree.FIELD_FILES
            yield tree.SIGNATURE_FILE
            yield tree.KEYS_DIR
            if node.kind == "root" and node.owner == files.login and files.is_admin():
                yield tree.USERS_DIR
        for parts in sorted(files.temps):
            if parts[:-1] == node.parts:
                yield parts[-1]

    def __iter__(self) -> Iterator[tuple[bytes, bytes, dict[str, Any]]]:
        """
        Yield C{(name, long name, attributes)} for each entry (entries gone meanwhile are skipped).
        """
        for name in self._names():
            try:
                child = self.files.locate("/".join(self.node.parts + (name,)).encode("utf-8"))
                attrs = self.files.attributes(child)
            except SFTPError:
                continue
            owner = child.owner
            yield name.encode("utf-8"), long_name(name, attrs, owner).encode("utf-8"), attrs

    def close(self) -> None:
        """
        Count the listing as closed (L{VirtualFiles.openDirectory} caps the open ones).
        """
        self.files.open_listings.discard(self)


@implementer(ISFTPFile)
class VirtualFile:
    """
    An open file: a copy of the field's bytes (or the temporary file itself), written back on close.
    """

    def __init__(
        self,
        files: VirtualFiles,
        node: Node,
        data: bytearray,
        readable: bool,
        writable: bool,
        append: bool = False,
        temp: bool = False,
    ) -> None:
        """
        @param files: the session.
        @param node: the file.
        @param data: its bytes (shared with the session for a temporary file).
        @param readable: opened for reading.
        @param writable: opened for writing.
        @param append: every write goes to the end.
        @param temp: a temporary file (nothing to commit).
        """
        self.files = files
        self.node = node
        self.data = data
        self.readable = readable or not writable
        self.writable = writable
        self.append = append
        self.temp = temp
        self.dirty = False
        files.open_files.add(self)

    def readChunk(self, offset: int, length: int) -> bytes:
        """
        Read from the open copy; past its end is end of file.
        """
        if not self.readable:
            raise SFTPError(FX_PERMISSION_DENIED, "file not opened for reading")
        chunk = bytes(self.data[offset : offset + length])
        if not chunk:
            raise EOFError()
        return chunk

    def writeChunk(self, offset: int, data: bytes) -> None:
        """
        Write into the open copy, bounded by L{MAX_FILE_BYTES}.
        """
        if not self.writable:
            raise SFTPError(FX_PERMISSION_DENIED, "file not opened for writing")
        if self.append:
            offset = len(self.data)
        end = offset + len(data)
        if end > MAX_FILE_BYTES:
            raise SFTPError(FX_FAILURE, f"file is larger than {MAX_FILE_BYTES} bytes")
        if offset > len(self.data):
            resize(self.data, offset)
        self.data[offset:end] = data
        self.dirty = True

    def getAttrs(self) -> dict[str, Any]:
        """
        The attributes of the file as open (its size is the open copy's).
        """
        attrs = self.files.attributes(self.node) if not self.temp else {}
        mode = tree.file_mode(self.node, self.files.writable(self.node))
        now = int(time.time())
        return {"atime": now, "mtime": now, **attrs, "size": len(self.data), "permissions": mode}

    def setAttrs(self, attrs: dict[str, Any]) -> None:
        """
        Honour a new size (OpenSSH's C{scp} truncates this way after writing); ignore modes and times.
        """
        if "size" not in attrs or attrs["size"] == len(self.data):
            return
        if not self.writable:
            raise SFTPError(FX_PERMISSION_DENIED, "file not opened for writing")
        if attrs["size"] > MAX_FILE_BYTES:
            raise SFTPError(FX_FAILURE, f"file is larger than {MAX_FILE_BYTES} bytes")
        resize(self.data, attrs["size"])
        self.dirty = True

    def sync(self) -> Deferred[Any]:
        """
        Commit what was written so far (C{fsync@openssh.com}); fires once the store acknowledged it.
        """
        if not self.dirty or self.temp:
            return succeed(None)
        self.dirty = False
        d = self.files.commit(self.node, bytes(self.data))

        def failed(reason: Failure) -> Failure:
            self.dirty = True
            return reason

        return d.addErrback(failed)

    def close(self) -> Deferred[Any]:
        """
        Commit a written field file; the client's close is answered once the store acknowledged it.
        """
        return self.sync().addCallback(self._closed).addBoth(self._forget)

    def _closed(self, result: object) -> object:
        self.files.open_files.discard(self)  # a file whose commit failed stays open (and counted)
        return result

    def _forget(self, result: object) -> object:
        key = (self.node.owner, self.node.field)
        if self.files.writers.get(key) is self:
            del self.files.writers[key]
        return result

    def abandon(self) -> None:
        """
        The session ended with the file open: what was written is not committed.
        """
        self.dirty = False
        self.files.open_files.discard(self)
        self._forget(None)


__all__ = ["Listing", "VirtualFile", "long_name", "resize"]
