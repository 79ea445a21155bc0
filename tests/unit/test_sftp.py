"""
Tests for L{sshfinger.sftp}: the virtual tree over a memory store, the SFTP protocol's fixes of Conch, and the
subsystem session channel.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys
from twisted.conch.ssh.common import NS
from twisted.conch.ssh.filetransfer import (
    FX_BAD_MESSAGE,
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_OK,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    FXF_CREAT,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    FXP_EXTENDED_REPLY,
    FXP_STATUS,
    FXP_VERSION,
    SFTPError,
)
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.model.account import Account
from sshfinger.sftp.protocol import SCP_LEGACY_REFUSED, SFTPServerProtocol, SubsystemSession, sftp_subsystem
from sshfinger.sftp.server import VirtualFiles
from sshfinger.sftp.tree import MAX_FILE_BYTES, MAX_OPEN_FILES, MAX_TEMP_FILES, real_path
from sshfinger.ssh.checkers import parse_authorized_key
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend
from tests.unit.test_sshsig import ED25519, line_of, sign


class HeldExecutor:
    """
    Runs store writes only when told to, so a test can see what happens before the store acknowledges.
    """

    def __init__(self) -> None:
        self.held: list[tuple[Callable[[], Any], Deferred[Any]]] = []
        self.holding = False

    def __call__(self, work: Callable[[], Any]) -> Deferred[Any]:
        """
        Run C{work} now, or hold it while L{holding}.
        """
        if not self.holding:
            return succeed(work())
        d: Deferred[Any] = Deferred()
        self.held.append((work, d))
        return d

    def release(self) -> None:
        """
        Run every held write.
        """
        held, self.held = self.held, []
        for work, d in held:
            d.callback(work())


def make_store(executor: HeldExecutor) -> CachedStore:
    """
    A memory store with alice (a plan), bob and an admin.
    """
    store = CachedStore(
        MemoryBackend(
            [
                Account("alice", real_name="Alice", plan="old plan that is long", keys=(line_of(ED25519),)),
                Account("bob", real_name="Bob", plan="bob's plan"),
                Account("root", role="admin"),
            ]
        ),
        lambda: 1000.0,
        executor,
    )
    store.open()
    return store


class TreeTestCase(SynchronousTestCase):
    """
    A session of alice (and one of the admin) over a memory store.
    """

    def setUp(self) -> None:
        """
        Build the store and the sessions.
        """
        self.executor = HeldExecutor()
        self.store = make_store(self.executor)
        self.alice = self.session("alice")
        self.root = self.session("root")

    def session(self, login: str) -> VirtualFiles:
        """
        A session of C{login}.
        """
        return VirtualFiles(
            self.store, login, lambda: self.store.peek(login).role == "admin", parse_authorized_key, "192.0.2.1:1"
        )

    def write(
        self, files: VirtualFiles, path: bytes, data: bytes, flags: int = FXF_WRITE | FXF_CREAT | FXF_TRUNC
    ) -> None:
        """
        Open, write and close a file, asserting the close succeeded.
        """
        f = files.openFile(path, flags, {})
        f.writeChunk(0, data)
        self.successResultOf(f.close())

    def read(self, files: VirtualFiles, path: bytes) -> bytes:
        """
        Read a whole file.
        """
        f = files.openFile(path, FXF_READ, {})
        try:
            return f.readChunk(0, 1 << 20)
        except EOFError:
            return b""

    def code(self, call: Callable[..., Any], *args: Any) -> int:
        """
        The SFTP status code that C{call(*args)} fails with, synchronously or through its L{Deferred}.
        """
        try:
            result = call(*args)
        except SFTPError as e:
            return int(e.code)
        if isinstance(result, Deferred):
            return int(self.failureResultOf(result, SFTPError).value.code)
        raise AssertionError(f"{call} succeeded")


class ReadWriteTests(TreeTestCase):
    """
    Reading and writing field files.
    """

    def test_read_plan(self) -> None:
        """
        C{plan} and C{.plan} read the stored plan with a final newline.
        """
        self.assertEqual(self.read(self.alice, b"plan"), b"old plan that is long\n")
        self.assertEqual(self.read(self.alice, b"/.plan"), b"old plan that is long\n")

    def test_write_plan(self) -> None:
        """
        Writing C{plan} replaces it in the store, audited as an C{sftp} change from the client's address.
        """
        self.write(self.alice, b"plan", b"new\nplan\n")
        self.assertEqual(self.store.peek("alice").plan, "new\nplan")
        changes = self.successResultOf(self.store.recent_changes(1, "alice"))
        self.assertEqual((changes[-1].actor.channel, changes[-1].actor.peer), ("sftp", "192.0.2.1:1"))

    def test_scp_truncates_by_setstat(self) -> None:
        """
        OpenSSH's scp opens without TRUNC and then sets the size: a shorter upload leaves no stale bytes.
        """
        f = self.alice.openFile(b"plan", FXF_WRITE | FXF_CREAT, {})
        f.writeChunk(0, b"short\n")
        f.setAttrs({"size": 6})
        self.successResultOf(f.close())
        self.assertEqual(self.store.peek("alice").plan, "short")

    def test_close_waits_for_store(self) -> None:
        """
        The close (and so the client's OK) fires only once the store acknowledged the write.
        """
        self.executor.holding = True
        f = self.alice.openFile(b"status", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
        f.writeChunk(0, b"busy\n")
        closed = f.close()
        self.assertNoResult(closed)
        self.assertNoResult(self.alice.when_idle())
        self.executor.release()
        self.successResultOf(closed)
        self.assertEqual(self.store.peek("alice").status, "busy")

    def test_read_while_writing(self) -> None:
        """
        A file opened while the same field is open for writing reads what the writer holds (sshfs).
        """
        f = self.alice.openFile(b"status", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
        f.writeChunk(0, b"pending\n")
        self.assertEqual(self.read(self.alice, b"status"), b"pending\n")
        self.successResultOf(f.close())
        self.assertEqual(self.read(self.alice, b"status"), b"pending\n")

    def test_invalid_value(self) -> None:
        """
        A value the store refuses (a two-line status, not UTF-8) fails the close; the store is unchanged.
        """
        for data in (b"two\nlines\n", b"\xff\xfe"):
            f = self.alice.openFile(b"status", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
            f.writeChunk(0, data)
            self.assertEqual(self.code(f.close), FX_FAILURE)
        self.assertEqual(self.store.peek("alice").status, "")

    def test_oversized(self) -> None:
        """
        A write past L{MAX_FILE_BYTES} is refused with a status; nothing is committed.
        """
        f = self.alice.openFile(b"plan", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
        self.assertEqual(self.code(f.writeChunk, MAX_FILE_BYTES, b"x"), FX_FAILURE)
        self.assertEqual(self.code(f.setAttrs, {"size": MAX_FILE_BYTES + 1}), FX_FAILURE)
        self.assertEqual(self.store.peek("alice").plan, "old plan that is long")

    def test_abandoned_upload(self) -> None:
        """
        A file still open when the session ends is not committed.
        """
        protocol = SFTPServerProtocol(self.alice)
        protocol.makeConnection(StringTransport())
        f = self.alice.openFile(b"plan", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
        f.writeChunk(0, b"half an upl")
        protocol.openFiles[b"1"] = f
        protocol.connectionLost(None)
        self.assertEqual(self.store.peek("alice").plan, "old plan that is long")

    def test_office_read_only(self) -> None:
        """
        A user cannot write their office (as in the shell); an admin can.
        """
        self.assertEqual(self.code(self.alice.openFile, b"office", FXF_WRITE, {}), FX_PERMISSION_DENIED)
        self.write(self.root, b"users/alice/office", b"Room 5\n")
        self.assertEqual(self.store.peek("alice").office, "Room 5")

    def test_authorized_keys(self) -> None:
        """
        C{.ssh/authorized_keys} reads the keys and writing it replaces them; a bad line is refused by number.
        """
        self.assertEqual(self.read(self.alice, b".ssh/authorized_keys"), (line_of(ED25519) + "\n").encode())
        f = self.alice.openFile(b".ssh/authorized_keys", FXF_WRITE | FXF_TRUNC, {})
        f.writeChunk(0, b"# mine\n\nnot a key\n")
        self.assertEqual(self.code(f.close), FX_FAILURE)
        self.assertEqual(self.store.peek("alice").keys, (line_of(ED25519),))
        f = self.alice.openFile(b".ssh/authorized_keys", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
        self.successResultOf(f.close())  # an empty upload (sftp put of an empty file) writes nothing
        self.assertEqual(self.store.peek("alice").keys, ())


class TreeShapeTests(TreeTestCase):
    """
    What each login may see, and the paths refused.
    """

    def test_listing(self) -> None:
        """
        A user's root lists the field files and C{.ssh}; an admin's adds C{users}.
        """
        names = [name for name, _, _ in self.alice.openDirectory(b".")]
        self.assertEqual(names, [b"plan", b".plan", b"status", b"name", b"office", b"phone", b".ssh"])
        self.assertIn(b"users", [name for name, _, _ in self.root.openDirectory(b"/")])
        users = [name for name, _, _ in self.root.openDirectory(b"/users")]
        self.assertEqual(users, [b"alice", b"bob", b"root"])

    def test_other_account(self) -> None:
        """
        Alice cannot reach bob's files at all; the admin reads and writes them under C{users/bob}.
        """
        for path in (b"users/bob/plan", b"/users/bob/plan", b"bob/plan"):
            self.assertEqual(self.code(self.alice.openFile, path, FXF_READ, {}), FX_NO_SUCH_FILE)
            self.assertEqual(self.code(self.alice.openFile, path, FXF_WRITE | FXF_CREAT, {}), FX_NO_SUCH_FILE)
        self.assertEqual(self.read(self.root, b"users/bob/plan"), b"bob's plan\n")
        self.write(self.root, b"/users/bob/plan", b"set by root\n")
        self.assertEqual(self.store.peek("bob").plan, "set by root")

    def test_refused_paths(self) -> None:
        """
        C{..}, absolute paths outside the tree, links and new directories are refused with status codes.
        """
        self.assertEqual(self.code(self.alice.openFile, b"../bob/plan", FXF_READ, {}), FX_PERMISSION_DENIED)
        self.assertEqual(self.code(self.alice.getAttrs, b"/etc/passwd", True), FX_NO_SUCH_FILE)
        self.assertEqual(self.code(self.alice.openFile, b"/etc/passwd", FXF_READ, {}), FX_NO_SUCH_FILE)
        self.assertEqual(self.code(self.alice.makeLink, b"link", b"plan"), FX_OP_UNSUPPORTED)
        self.assertEqual(self.code(self.alice.readLink, b"plan"), FX_OP_UNSUPPORTED)
        self.assertEqual(self.code(self.alice.makeDirectory, b"dir", {}), FX_PERMISSION_DENIED)
        self.assertEqual(self.code(self.alice.removeFile, b"plan"), FX_PERMISSION_DENIED)
        self.assertEqual(self.code(self.alice.getAttrs, b"pl\x00an", True), FX_NO_SUCH_FILE)

    def test_real_path(self) -> None:
        """
        REALPATH resolves C{.} and C{..} lexically and never leaves the root.
        """
        self.assertEqual(real_path(b"."), "/")
        self.assertEqual(real_path(b"users/bob/../alice/./plan"), "/users/alice/plan")
        self.assertRaises(SFTPError, real_path, b"/..")

    def test_ssh_copy_id_steps(self) -> None:
        """
        C{mkdir .ssh} and C{chmod} succeed, changing nothing.
        """
        self.assertIsNone(self.alice.makeDirectory(b".ssh", {}))
        self.assertIsNone(self.alice.setAttrs(b".ssh", {"permissions": 0o700}))
        self.assertIsNone(self.alice.setAttrs(b".ssh/authorized_keys", {"permissions": 0o600}))


class TempFileTests(TreeTestCase):
    """
    An editor's save: a temporary file renamed over a field file.
    """

    def test_rename_over_plan(self) -> None:
        """
        Renaming a temporary file over C{plan} replaces the plan, and the temporary file is gone.
        """
        self.write(self.alice, b".plan.swp", b"saved\n")
        self.assertEqual(self.read(self.alice, b".plan.swp"), b"saved\n")
        self.assertIn(b".plan.swp", [name for name, _, _ in self.alice.openDirectory(b"")])
        self.successResultOf(self.alice.renameFile(b".plan.swp", b"plan"))
        self.assertEqual(self.store.peek("alice").plan, "saved")
        self.assertEqual(self.code(self.alice.getAttrs, b".plan.swp", True), FX_NO_SUCH_FILE)

    def test_session_only(self) -> None:
        """
        Temporary files are not seen by another session and vanish when theirs ends.
        """
        self.write(self.alice, b"draft", b"x")
        other = self.session("alice")
        self.assertEqual(self.code(other.openFile, b"draft", FXF_READ, {}), FX_NO_SUCH_FILE)
        self.alice.end()
        self.assertEqual(self.code(self.alice.openFile, b"draft", FXF_READ, {}), FX_NO_SUCH_FILE)

    def test_capped(self) -> None:
        """
        At most L{MAX_TEMP_FILES} temporary files per session.
        """
        for n in range(MAX_TEMP_FILES):
            self.write(self.alice, f"t{n}".encode(), b"x")
        self.assertEqual(self.code(self.alice.openFile, b"one-more", FXF_WRITE | FXF_CREAT, {}), FX_FAILURE)
        self.alice.removeFile(b"t0")
        self.write(self.alice, b"one-more", b"x")

    def test_open_files_capped(self) -> None:
        """
        At most L{MAX_OPEN_FILES} files open at once; closing one makes room.
        """
        files = [self.alice.openFile(b"plan", FXF_READ, {}) for _ in range(MAX_OPEN_FILES)]
        self.assertEqual(self.code(self.alice.openFile, b"plan", FXF_READ, {}), FX_FAILURE)
        self.successResultOf(files[0].close())
        self.alice.openFile(b"plan", FXF_READ, {})

    def test_open_directories_capped(self) -> None:
        """
        At most L{MAX_OPEN_FILES} directory listings open at once (a client that never closes them holds no more
        memory); closing one makes room.
        """
        listings = [self.alice.openDirectory(b".") for _ in range(MAX_OPEN_FILES)]
        self.assertEqual(self.code(self.alice.openDirectory, b"."), FX_FAILURE)
        listings[0].close()
        self.alice.openDirectory(b".")

    def test_field_files_not_renamed(self) -> None:
        """
        A field file cannot be renamed away, and a file cannot move to another account.
        """
        self.assertEqual(self.code(self.alice.renameFile, b"plan", b"plan.bak"), FX_PERMISSION_DENIED)
        self.write(self.root, b"tmp", b"x")
        self.assertEqual(self.code(self.root.renameFile, b"tmp", b"users/bob/plan"), FX_PERMISSION_DENIED)


class SignatureFileTests(TreeTestCase):
    """
    C{plan.sig} beside C{plan}.
    """

    def test_signed_upload(self) -> None:
        """
        A signature of the stored plan by alice's key is attached; it reads back and appears in the listing.
        """
        signature = sign(ED25519, b"old plan that is long\n")
        self.write(self.alice, b"plan.sig", signature.encode())
        self.assertEqual(self.store.peek("alice").plan_signature, signature)
        self.assertEqual(self.read(self.alice, b"plan.sig"), signature.encode())
        self.assertIn(b"plan.sig", [name for name, _, _ in self.alice.openDirectory(b"/")])
        self.successResultOf(self.alice.removeFile(b"plan.sig"))
        self.assertEqual(self.store.peek("alice").plan_signature, "")

    def test_refused(self) -> None:
        """
        A signature of another text, or by bob's key, is refused and not stored.
        """
        bob = keys.Key(ed25519.Ed25519PrivateKey.generate())
        for signature in (sign(ED25519, b"another plan\n"), sign(bob, b"old plan that is long\n")):
            f = self.alice.openFile(b"plan.sig", FXF_WRITE | FXF_CREAT | FXF_TRUNC, {})
            f.writeChunk(0, signature.encode())
            self.assertEqual(self.code(f.close), FX_FAILURE)
        self.assertEqual(self.store.peek("alice").plan_signature, "")


class RawClient:
    """
    Frames SFTP packets into a L{SFTPServerProtocol} and parses its answers.
    """

    def __init__(self, protocol: SFTPServerProtocol) -> None:
        self.protocol = protocol
        self.transport = StringTransport()
        protocol.makeConnection(self.transport)
        self.request = 0

    def send(self, kind: int, payload: bytes) -> bytes:
        """
        Send one request; return its request id.
        """
        self.request += 1
        request = struct.pack("!L", self.request)
        body = bytes([kind]) + request + payload
        self.protocol.dataReceived(struct.pack("!L", len(body)) + body)
        return request

    def answers(self) -> list[tuple[int, bytes]]:
        """
        The packets sent back since the last call: (type, payload after the length).
        """
        data = self.transport.value()
        self.transport.clear()
        packets = []
        while data:
            (length,) = struct.unpack("!L", data[:4])
            packets.append((data[4], data[5 : 4 + length]))
            data = data[4 + length :]
        return packets


class ProtocolTests(TreeTestCase):
    """
    The SFTP protocol with Conch's gaps fixed.
    """

    def client(self) -> RawClient:
        """
        A raw client of alice's session.
        """
        return RawClient(SFTPServerProtocol(self.alice))

    def test_version_announces_extensions(self) -> None:
        """
        The VERSION answer announces posix-rename, statvfs and fsync.
        """
        client = self.client()
        client.protocol.dataReceived(struct.pack("!LBL", 5, 1, 3))
        [(kind, payload)] = client.answers()
        self.assertEqual(kind, FXP_VERSION)
        for name in (b"posix-rename@openssh.com", b"statvfs@openssh.com", b"fsync@openssh.com"):
            self.assertIn(NS(name), payload)

    def test_posix_rename_answers_status(self) -> None:
        """
        C{posix-rename@openssh.com} is answered with a STATUS (Conch sends EXTENDED_REPLY and the client
        aborts), and does the editor's save.
        """
        self.write(self.alice, b"tmp", b"renamed\n")
        client = self.client()
        request = client.send(200, NS(b"posix-rename@openssh.com") + NS(b"tmp") + NS(b"plan"))
        [(kind, payload)] = client.answers()
        self.assertEqual((kind, payload[:4], struct.unpack("!L", payload[4:8])[0]), (FXP_STATUS, request, FX_OK))
        self.assertEqual(self.store.peek("alice").plan, "renamed")

    def test_statvfs(self) -> None:
        """
        C{statvfs@openssh.com} is answered with an EXTENDED_REPLY of eleven 64-bit numbers.
        """
        client = self.client()
        client.send(200, NS(b"statvfs@openssh.com") + NS(b"/"))
        [(kind, payload)] = client.answers()
        self.assertEqual((kind, len(payload)), (FXP_EXTENDED_REPLY, 4 + 88))

    def test_unknown_extension(self) -> None:
        """
        Another extension gets OP_UNSUPPORTED.
        """
        client = self.client()
        client.send(200, NS(b"hardlink@openssh.com") + NS(b"a") + NS(b"b"))
        [(kind, payload)] = client.answers()
        self.assertEqual((kind, struct.unpack("!L", payload[4:8])[0]), (FXP_STATUS, FX_OP_UNSUPPORTED))

    def test_malformed_packet(self) -> None:
        """
        A packet its handler cannot parse is answered with BAD_MESSAGE, not left unanswered.
        """
        client = self.client()
        client.send(3, NS(b"plan") + b"\x00")  # OPEN without flags and attributes
        [(kind, payload)] = client.answers()
        self.assertEqual((kind, struct.unpack("!L", payload[4:8])[0]), (FXP_STATUS, FX_BAD_MESSAGE))

    def test_unknown_handle(self) -> None:
        """
        A READ of a handle that is not open gets a status (Conch's handler raises and answers nothing).
        """
        client = self.client()
        client.send(5, NS(b"nope") + struct.pack("!QL", 0, 10))
        [(kind, _)] = client.answers()
        self.assertEqual(kind, FXP_STATUS)

    def test_idle_timeout(self) -> None:
        """
        A session that sends nothing for the idle timeout is closed; each request restarts the timer.
        """
        clock = Clock()
        client = RawClient(SFTPServerProtocol(self.alice, clock, 60))
        clock.advance(50)
        client.protocol.dataReceived(struct.pack("!LBL", 5, 1, 3))
        clock.advance(50)
        self.assertFalse(client.transport.disconnecting)
        clock.advance(11)
        self.assertTrue(client.transport.disconnecting)

    def test_huge_packet(self) -> None:
        """
        A packet announcing more than the bound closes the connection instead of being buffered.
        """
        client = self.client()
        client.protocol.dataReceived(struct.pack("!LBL", 1 << 30, 6, 1))
        self.assertTrue(client.transport.disconnecting)


class FakeConnection:
    """
    Records what a session channel asks its SSH connection to send.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def sendRequest(self, channel: Any, kind: bytes, data: bytes, wantReply: int = 0) -> None:
        self.sent.append(("request", (kind, data)))

    def sendExtendedData(self, channel: Any, kind: int, data: bytes) -> None:
        self.sent.append(("stderr", data))

    def sendData(self, channel: Any, data: bytes) -> None:
        self.sent.append(("data", data))

    def sendEOF(self, channel: Any) -> None:
        self.sent.append(("eof", None))

    def sendClose(self, channel: Any) -> None:
        self.sent.append(("close", None))


class FakeAvatar:
    """
    An avatar offering only the sftp subsystem.
    """

    def __init__(self, protocol: SFTPServerProtocol, clock: Clock) -> None:
        self.protocol = protocol
        self.app = type("App", (), {"clock": clock})()

    def lookupSubsystem(self, name: bytes, data: bytes) -> SFTPServerProtocol | None:
        return self.protocol if name == b"sftp" else None


class SubsystemSessionTests(TreeTestCase):
    """
    The session channel ends subsystem channels with an exit status and refuses C{scp -O}.
    """

    def channel(self) -> tuple[SubsystemSession, FakeConnection, Clock]:
        """
        A session channel on a fake connection.
        """
        connection, clock = FakeConnection(), Clock()
        session = SubsystemSession(
            remoteWindow=1 << 20, remoteMaxPacket=1 << 15, conn=connection,
            avatar=FakeAvatar(SFTPServerProtocol(self.alice), clock),  # type: ignore[arg-type]
        )  # fmt: skip
        return session, connection, clock

    def test_exit_status_on_eof(self) -> None:
        """
        After the client's EOF, and once pending commits are done, the channel sends exit-status 0 and closes.
        """
        session, connection, _ = self.channel()
        self.assertEqual(session.request_subsystem(NS(b"sftp")), 1)
        self.executor.holding = True
        f = self.alice.openFile(b"plan", FXF_WRITE | FXF_TRUNC, {})
        f.writeChunk(0, b"x")
        f.close()
        session.eofReceived()
        self.assertEqual(connection.sent, [])
        self.executor.release()
        self.assertEqual(connection.sent, [("request", (b"exit-status", b"\x00\x00\x00\x00")), ("close", None)])

    def test_env_then_eof(self) -> None:
        """
        The EOF ends a subsystem channel even when an ISession adapter exists (after an C{env} request).
        """
        session, connection, _ = self.channel()
        session.session = object()  # type: ignore[assignment]
        session.request_subsystem(NS(b"sftp"))
        session.eofReceived()
        self.assertIn(("close", None), connection.sent)

    def test_login_without_account(self) -> None:
        """
        A login with no account in the store gets one line on stderr and exit status 1, after the request's
        reply.
        """
        clock = Clock()
        app = type("App", (), {"store": self.store, "clock": clock, "admins": frozenset(), "parse_key": None})()
        avatar = type("Avatar", (), {"app": app, "login": "ghost"})()
        avatar.lookupSubsystem = lambda name, data: sftp_subsystem(data, avatar)
        connection = FakeConnection()
        session = SubsystemSession(remoteWindow=1 << 20, remoteMaxPacket=1 << 15, conn=connection, avatar=avatar)
        self.assertEqual(session.request_subsystem(NS(b"sftp")), 1)
        self.assertEqual(connection.sent, [])
        clock.advance(0)
        self.assertEqual(connection.sent[0][0], "stderr")
        self.assertIn(b"ghost has no account in the user store", connection.sent[0][1])
        self.assertIn(("request", (b"exit-status", b"\x00\x00\x00\x01")), connection.sent)
        self.assertEqual(connection.sent[-1], ("close", None))

    def test_unknown_subsystem(self) -> None:
        """
        Another subsystem is refused.
        """
        session, _, _ = self.channel()
        self.assertEqual(session.request_subsystem(NS(b"netconf")), 0)

    def test_legacy_scp_refused(self) -> None:
        """
        C{scp -O} (an C{exec scp -t}) gets one line on stderr suggesting plain scp, exit status 1.
        """
        session, connection, clock = self.channel()
        self.assertEqual(session.request_exec(NS(b"scp -t plan")), 1)
        self.assertEqual(connection.sent, [])
        clock.advance(0)
        self.assertEqual(connection.sent[0], ("stderr", SCP_LEGACY_REFUSED))
        self.assertEqual(connection.sent[1], ("request", (b"exit-status", b"\x00\x00\x00\x01")))
        self.assertEqual(connection.sent[-1], ("close", None))
        self.assertIn(b"use plain scp", SCP_LEGACY_REFUSED)
