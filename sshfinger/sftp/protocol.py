"""
Conch's SFTP server protocol and session channel, with the gaps OpenSSH's clients hit fixed by subclassing.

L{SFTPServerProtocol} (over C{FileTransferServer}):
 - answers the STATUS-type OpenSSH extensions (C{posix-rename@openssh.com}, C{fsync@openssh.com}) with a
   STATUS packet: Conch answers every extension with C{EXTENDED_REPLY} and the client aborts; it also answers
   C{statvfs@openssh.com}, which C{sshfs} asks for;
 - bounds a packet's length (Conch buffers whatever length a client announces), and answers a packet its
   handler fails on with a status instead of leaving the client waiting;
 - does not commit files left open when the session ends (Conch closes them, which would commit a partial
   upload).

L{SubsystemSession} (over C{SSHSession}): a subsystem channel is ended, on the client's EOF, with
C{exit-status 0} once every pending commit is done (Conch sends no exit status, so C{scp} exits 1, and once an
C{env} request has created the session adapter the EOF goes to it and C{scp} hangs); and the legacy C{scp}
protocol (C{scp -O}, an C{exec scp -t}) is refused with one line suggesting plain C{scp}.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.conch.ssh.filetransfer import (
    FX_BAD_MESSAGE,
    FX_EOF,
    FX_FAILURE,
    FX_OK,
    FX_OP_UNSUPPORTED,
    FXP_EXTENDED_REPLY,
    FXP_STATUS,
    FileTransferBase,
    FileTransferServer,
    SFTPError,
)
from twisted.conch.ssh.session import SSHSession, SSHSessionProcessProtocol, wrapProtocol
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from sshfinger.model.peers import describe_peer
from sshfinger.ops.logs import escape_peer_text
from sshfinger.sftp.handles import VirtualFile
from sshfinger.sftp.server import VirtualFiles
from sshfinger.sftp.tree import MAX_FILE_BYTES

#: Longest SFTP packet accepted (a WRITE of OpenSSH's 32 KiB or 256 KiB chunks fits).
MAX_PACKET = 256 * 1024 + 1024

#: What C{statvfs@openssh.com} reports: a small file system, nearly empty.
_STATVFS = (4096, 4096, MAX_FILE_BYTES // 4096 * 16, MAX_FILE_BYTES // 4096 * 8, MAX_FILE_BYTES // 4096 * 8,
            64, 32, 32, 0, 0, 255)  # fmt: skip

#: The one line answering the legacy scp protocol.
SCP_LEGACY_REFUSED = (
    b"sshfinger: the legacy scp protocol (scp -O) is not supported; use plain scp (it speaks SFTP) or sftp\n"
)


class SFTPServerProtocol(FileTransferServer, TimeoutMixin):
    """
    The SFTP protocol of one session over L{VirtualFiles}; a session idle for C{idle_timeout} seconds is closed.
    """

    log = Logger()

    def __init__(self, files: VirtualFiles, clock: Any = None, idle_timeout: float | None = None) -> None:
        """
        @param files: the session's file tree (Conch would adapt the avatar to L{ISFTPServer} instead).
        @param clock: for the idle timeout (default: the global reactor).
        @param idle_timeout: seconds without a request before the session is closed, or L{None}.
        """
        FileTransferBase.__init__(self)
        self.client = files
        self.openFiles: dict[bytes, Any] = {}
        self.openDirs: dict[bytes, Any] = {}
        self.idle_timeout = idle_timeout
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock

    def callLater(self, period: float, func: Any) -> Any:
        """
        Schedule the idle timer on the injected clock (L{TimeoutMixin} uses the global reactor).
        """
        return self.clock.callLater(period, func)

    def timeoutConnection(self) -> None:
        """
        Close a session that sent nothing for L{idle_timeout} seconds (files still open are not committed).
        """
        self.log.info("SFTP session of {login} idle; closing", login=self.client.login)
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionMade(self) -> None:
        """
        Record the client's address for the audit trail, and start the idle timer.
        """
        self.setTimeout(self.idle_timeout)
        try:
            address = self.transport.getPeer().address  # type: ignore[union-attr]
        except Exception:
            address = None
        files = self.client
        files.actor = type(files.actor)(files.login, "sftp", describe_peer(address))

    def dataReceived(self, data: bytes) -> None:
        """
        Split packets and dispatch them as Conch does, with a bound on a packet's length and a status answer for
        a packet whose handler fails.
        """
        self.resetTimeout()
        self.buf += data
        while len(self.buf) >= 9:
            length, kind, request = struct.unpack("!LBL", self.buf[:9])
            if length > MAX_PACKET:
                self.log.warn("SFTP packet of {length} bytes refused; closing", length=length)
                self.buf = b""
                if self.transport is not None:
                    self.transport.loseConnection()
                return
            if len(self.buf) < 4 + length:
                return
            packet, self.buf = self.buf[5 : 4 + length], self.buf[4 + length :]
            name = self.packetTypes.get(kind)
            handler = getattr(self, f"packet_{name}", None) if name else None
            if handler is None:
                self.send_status(packet[:4], FX_OP_UNSUPPORTED, f"unsupported request type {kind}")
                continue
            try:
                handler(packet)
            except (struct.error, AssertionError, IndexError, ValueError) as e:
                self.log.warn("SFTP {name} request malformed: {error!r}", name=name, error=e)
                self.send_status(packet[:4], FX_BAD_MESSAGE, "malformed request")
            except Exception:
                self.log.failure("SFTP {name} request failed", name=name)
                self.send_status(packet[:4], FX_FAILURE, "internal error")

    def packet_READ(self, data: bytes) -> None:
        """
        Read as Conch does; a handle that is not open gets a status (Conch's handler raises instead).
        """
        if self._known_file(data):
            super().packet_READ(data)

    def packet_WRITE(self, data: bytes) -> None:
        """
        Write as Conch does; a handle that is not open gets a status (Conch's handler raises instead).
        """
        if self._known_file(data):
            super().packet_WRITE(data)

    def _known_file(self, data: bytes) -> bool:
        if getNS(data[4:])[0] in self.openFiles:
            return True
        self.send_status(data[:4], FX_FAILURE, "no such open file")
        return False

    def send_status(self, request: bytes, code: int, message: str) -> None:
        """
        Send an C{FXP_STATUS} answer.
        """
        self.sendPacket(FXP_STATUS, request + struct.pack("!L", code) + NS(message.encode("utf-8")) + NS(b""))

    def _answer(self, d: Deferred[Any], request: bytes, what: str) -> None:
        def ok(result: object) -> None:
            self.send_status(request, FX_OK, f"{what} succeeded")

        def failed(reason: Failure) -> None:
            if reason.check(SFTPError):
                self.send_status(request, reason.value.code, reason.value.message)
            elif reason.check(NotImplementedError):
                self.send_status(request, FX_OP_UNSUPPORTED, str(reason.value) or f"{what} is not supported")
            elif reason.check(EOFError):
                self.send_status(request, FX_EOF, "end of file")
            else:
                self.log.failure("SFTP {what} failed", reason, what=what)
                self.send_status(request, FX_FAILURE, f"{what} failed")

        d.addCallbacks(ok, failed)

    def packet_EXTENDED(self, data: bytes) -> None:
        """
        Answer the OpenSSH extensions: C{posix-rename} and C{fsync} with a status, C{statvfs} and C{fstatvfs}
        with their reply; anything else is unsupported.
        """
        request, rest = data[:4], data[4:]
        name, rest = getNS(rest)
        self.log.debug("SFTP extension {name} requested", name=escape_peer_text(name))
        if name == b"posix-rename@openssh.com":
            old, new, _ = getNS(rest, 2)
            self._answer(maybeDeferred(self.client.renameFile, old, new), request, "rename")
        elif name == b"fsync@openssh.com":
            handle = getNS(rest)[0]
            file = self.openFiles.get(handle)
            if not isinstance(file, VirtualFile):
                self.send_status(request, FX_FAILURE, "no such open file")
                return
            self._answer(maybeDeferred(file.sync), request, "fsync")
        elif name in (b"statvfs@openssh.com", b"fstatvfs@openssh.com"):
            if name == b"statvfs@openssh.com":
                try:
                    self.client.getAttrs(getNS(rest)[0], True)
                except SFTPError as e:
                    self.send_status(request, e.code, e.message)
                    return
            self.sendPacket(FXP_EXTENDED_REPLY, request + struct.pack("!11Q", *_STATVFS))
        else:
            self.send_status(request, FX_OP_UNSUPPORTED, f"extension {name.decode('ascii', 'replace')} unsupported")

    def whenIdle(self) -> Deferred[None]:
        """
        Fires once no commit of this session is pending.
        """
        return self.client.when_idle()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        The session ended: files still open are dropped uncommitted, temporary files vanish.
        """
        for file in self.openFiles.values():
            if isinstance(file, VirtualFile):
                file.abandon()
        self.openFiles = {}
        self.openDirs = {}
        self.client.end()
        self.setTimeout(None)
        FileTransferBase.connectionLost(self, reason)


class Refused(Protocol):
    """
    A subsystem that only says why it cannot serve (one line on stderr) and ends with exit status 1.
    """

    def __init__(self, message: str, clock: Any) -> None:
        """
        @param message: the line to show, without its newline.
        @param clock: schedules the answer after the channel request's own reply.
        """
        self.message = message
        self.clock = clock

    def connectionMade(self) -> None:
        """
        Answer on the next turn of the reactor, once the client has the subsystem request's reply.
        """
        self.clock.callLater(0, self._refuse)

    def _refuse(self) -> None:
        process: Any = self.transport
        process.errReceived(f"{self.message}\n".encode())
        process.processEnded(Failure(ProcessTerminated(exitCode=1)))


def sftp_subsystem(data: bytes, avatar: Any) -> Protocol:
    """
    Build the SFTP subsystem of one channel for a L{sshfinger.ssh.session.ShellUser}: register it as
    C{avatar.subsystemLookup[b"sftp"]}.  A login without an account in the store is told so.
    """
    app = avatar.app
    login = avatar.login
    if app.store.peek(login) is None:
        message = f"sshfinger: {login} has no account in the user store; ask an admin to run 'add {login}'"
        return Refused(message, app.clock)

    def is_admin() -> bool:
        if login in app.admins:
            return True
        account = app.store.peek(login)
        return account is not None and account.role == "admin"

    files = VirtualFiles(app.store, login, is_admin, app.parse_key)
    return SFTPServerProtocol(files, app.clock, app.idle_timeout)


class SubsystemSession(SSHSession):
    """
    Conch's session channel, which also ends subsystem channels properly and refuses C{scp -O}.

    @ivar subsystem: the protocol of a subsystem channel, or L{None}.
    """

    log = Logger()
    subsystem: Any = None

    def request_subsystem(self, data: bytes) -> int:
        """
        Start a subsystem as Conch does, keeping hold of its protocol.
        """
        if self.client is not None:
            self.log.error("multiple session-client requests sent to the same session")
            return 0
        name, _ = getNS(data)
        assert self.avatar is not None
        subsystem = self.avatar.lookupSubsystem(name, data)
        if subsystem is None:
            self.log.info("Unknown subsystem {name!r} refused", name=name)
            return 0
        process = SSHSessionProcessProtocol(self)
        subsystem.makeConnection(process)
        process.makeConnection(wrapProtocol(subsystem))
        self.client = process
        self.subsystem = subsystem
        return 1

    def request_exec(self, data: bytes) -> int:
        """
        Refuse the legacy scp protocol with one line; run anything else as Conch does.
        """
        command = getNS(data)[0].strip()
        if command == b"scp" or command.startswith(b"scp "):
            if self.client is not None:
                return 0
            self.client = SSHSessionProcessProtocol(self)
            self._clock().callLater(0, self._refuse, SCP_LEGACY_REFUSED)
            return 1
        return super().request_exec(data)

    def _clock(self) -> Any:
        clock = getattr(getattr(self.avatar, "app", None), "clock", None)
        if clock is None:
            from twisted.internet import reactor as clock
        return clock

    def _refuse(self, message: bytes) -> None:
        self.writeExtended(EXTENDED_DATA_STDERR, message)
        self._exit(1)

    def _exit(self, code: int) -> None:
        assert self.conn is not None
        self.conn.sendRequest(self, b"exit-status", struct.pack(">L", code))
        self.loseConnection()

    def eofReceived(self) -> None:
        """
        On a subsystem channel: once the pending commits are done, send C{exit-status 0} and close.
        """
        if self.subsystem is None:
            super().eofReceived()
            return
        when_idle = getattr(self.subsystem, "whenIdle", None)
        d = when_idle() if when_idle is not None else succeed(None)
        d.addBoth(lambda _: self._exit(0))
