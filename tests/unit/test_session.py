"""
Tests for L{sshfinger.ssh.session}: the session adapter and exec, with a strict fake of Conch's
C{SSHSessionProcessProtocol}.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.interfaces import EnvironmentVariableNotPermitted, ISession, ISessionSetEnv
from twisted.conch.ssh import common
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account
from sshfinger.shell.app import ShellApp
from sshfinger.ssh.execution import MAX_COMMAND, MAX_STDIN
from sshfinger.ssh.session import RESIZE_BURST, RESIZE_RATE, Session, SessionChannel, ShellUser
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend


class FakeAddress:
    """
    What C{SSHSessionProcessProtocol.getPeer()} returns: an object with an C{address}.
    """

    address = IPv4Address("TCP", "192.0.2.7", 40000)


class FakeProcess:
    """
    A strict stand-in for C{SSHSessionProcessProtocol}: records output, errors and the end; fails loudly on
    writes after the end.
    """

    def __init__(self) -> None:
        """
        Nothing written yet.
        """
        self.out = b""
        self.writes = 0
        self.err = b""
        self.ended: Failure | None = None
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """
        Remember what the session wires in as our transport (its input side).
        """
        self.transport = transport

    def getPeer(self) -> FakeAddress:
        """
        The client address.
        """
        return FakeAddress()

    def write(self, data: bytes) -> None:
        """
        Standard output.
        """
        assert self.ended is None, "write after the end"
        self.out += data
        self.writes += 1

    def errReceived(self, data: bytes) -> None:
        """
        Standard error.
        """
        assert self.ended is None, "stderr after the end"
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        """
        The end, with the exit status in C{reason}.
        """
        assert self.ended is None, "ended twice"
        self.ended = reason

    @property
    def status(self) -> int | None:
        """
        The exit status sent, if ended.
        """
        if self.ended is None:
            return None
        return int(getattr(self.ended.value, "exitCode", 0) or 0)


class SessionTestCase(SynchronousTestCase):
    """
    A session of a chosen login over a memory store.
    """

    def setUp(self) -> None:
        """
        Build the store and the application state.
        """
        self.clock = Clock()
        self.store = CachedStore(
            MemoryBackend([Account("root", role="admin"), Account("alice", real_name="Alice")]), self.clock.seconds
        )
        self.store.open()
        self.app = ShellApp(store=self.store, finger=FingerService(self.store, self.clock), clock=self.clock)

    def session(self, login: str) -> Session:
        """
        A new session for C{login}, as Conch gets it by adapting the avatar.
        """
        session = ISession(ShellUser(login, self.app))
        assert isinstance(session, Session)
        return session

    def execute(self, login: str, command: bytes, stdin: bytes | None = None) -> FakeProcess:
        """
        Run an exec request, feed C{stdin} and close it.
        """
        session = self.session(login)
        process = FakeProcess()
        session.execCommand(process, command)
        if stdin is not None:
            process.transport.write(stdin)
            session.eofReceived()
        return process


class AdapterTests(SessionTestCase):
    """
    The avatar and the session adapter.
    """

    def test_new_session_per_channel(self) -> None:
        """
        Each adaptation gives a new session providing L{ISession} and L{ISessionSetEnv}.
        """
        user = ShellUser("alice", self.app)
        first, second = ISession(user), ISession(user)
        self.assertIsNot(first, second)
        verifyObject(ISession, first)
        verifyObject(ISessionSetEnv, first)

    def test_only_session_channels(self) -> None:
        """
        The avatar offers session channels and nothing else (no forwarding).
        """
        self.assertEqual(list(ShellUser("alice", self.app).channelLookup), [b"session"])

    def test_env(self) -> None:
        """
        TERM and NO_COLOR are accepted; anything else is refused.
        """
        session = self.session("alice")
        session.setEnv(b"NO_COLOR", b"1")
        self.assertEqual(session.env, {"NO_COLOR": "1"})
        self.assertRaises(EnvironmentVariableNotPermitted, session.setEnv, b"LD_PRELOAD", b"/x.so")

    def test_window_before_shell(self) -> None:
        """
        pty-req and window-change are remembered (rows, columns) even before a shell starts.
        """
        session = self.session("alice")
        session.getPty(b"xterm", (30, 120, 0, 0), [])
        session.windowChanged((40, 100, 0, 0))
        self.assertEqual((session.term, session.window), ("xterm", (40, 100)))


class ExecTests(SessionTestCase):
    """
    Exec requests.
    """

    def test_success(self) -> None:
        """
        A successful command prints plain lines and exits 0.
        """
        process = self.execute("root", b"set alice status 'In a meeting'")
        self.assertEqual((process.out, process.err, process.status), (b"status of alice set\n", b"", 0))
        self.assertEqual(self.store.peek("alice").status, "In a meeting")  # type: ignore[union-attr]

    def test_failure(self) -> None:
        """
        A failing command prints the error on stderr and exits 1.
        """
        process = self.execute("alice", b"set root status x")
        self.assertEqual(process.out, b"")
        self.assertEqual(process.err, b"error: permission denied: you may only change your own account\n")
        self.assertEqual(process.status, 1)

    def test_plan_reads_stdin(self) -> None:
        """
        C{plan} waits for standard input to close and uses all of it.
        """
        session = self.session("alice")
        process = FakeProcess()
        session.execCommand(process, b"plan")
        process.transport.write(b"one\n")
        self.assertIsNone(process.ended)
        process.transport.write(b"two\n")
        session.eofReceived()
        self.assertEqual(process.status, 0)
        self.assertEqual(self.store.peek("alice").plan, "one\ntwo")  # type: ignore[union-attr]

    def test_idle_stdin_times_out(self) -> None:
        """
        A command waiting for input that never comes is ended after the idle timeout, changing nothing.
        """
        session = self.session("alice")
        process = FakeProcess()
        session.execCommand(process, b"plan")
        self.clock.advance(self.app.idle_timeout - 1)
        process.transport.write(b"partial\n")
        self.clock.advance(self.app.idle_timeout - 1)
        self.assertIsNone(process.ended)
        self.clock.advance(1)
        self.assertEqual(process.status, 1)
        self.assertIn(b"no input for 900 s", process.err)
        process.transport.loseConnection()
        self.assertEqual(self.store.peek("alice").plan, "")  # type: ignore[union-attr]

    def test_stdin_bounded(self) -> None:
        """
        More standard input than L{MAX_STDIN} ends the command with an error, changing nothing.
        """
        session = self.session("alice")
        process = FakeProcess()
        session.execCommand(process, b"plan")
        process.transport.write(b"x" * (MAX_STDIN + 1))
        self.assertEqual(process.status, 1)
        self.assertIn(b"larger than", process.err)
        self.assertEqual(self.store.peek("alice").plan, "")  # type: ignore[union-attr]

    def test_control_characters_stripped(self) -> None:
        """
        Stored escape sequences never reach the client's terminal.
        """
        self.execute("root", b"set alice status \x1b[2Jboom\x07")
        process = self.execute("root", b"finger alice")
        self.assertNotIn(b"\x1b", process.out)
        self.assertNotIn(b"\x07", process.out)
        self.assertIn(b"[2Jboom", process.out)

    def test_invalid_utf8_command(self) -> None:
        """
        A command line that is not UTF-8 is decoded with replacement and answered with an error, not a crash.
        """
        process = self.execute("alice", b"finger \xff\xfe")
        self.assertEqual(process.status, 0)
        self.assertIn(b"no such user", process.out)

    def test_no_account(self) -> None:
        """
        An authenticated login without an account gets one clear line and exit status 1.
        """
        process = self.execute("mallory", b"whoami")
        self.assertEqual(process.status, 1)
        self.assertIn(b"mallory has no account in the user store", process.err)


class LineModeTests(SessionTestCase):
    """
    A shell request without a pty runs one command per line of standard input.
    """

    def test_lines(self) -> None:
        """
        Each line runs in turn; an error sets the exit status but later lines still run.
        """
        session = self.session("root")
        process = FakeProcess()
        session.openShell(process)
        process.transport.write(b"set alice status one\nset nobody status x\n")
        process.transport.write(b"plan alice\nfirst\n.\nwhoami\n")
        session.eofReceived()
        self.assertEqual(self.store.peek("alice").status, "one")  # type: ignore[union-attr]
        self.assertEqual(self.store.peek("alice").plan, "first")  # type: ignore[union-attr]
        self.assertIn(b"root (admin) from 192.0.2.7:40000", process.out)
        self.assertEqual(process.err, b"error: no such user: nobody\n")
        self.assertEqual(process.status, 1)

    def test_quit_stops(self) -> None:
        """
        C{quit} ends the session; later lines do not run.
        """
        session = self.session("root")
        process = FakeProcess()
        session.openShell(process)
        process.transport.write(b"quit\nset alice status late\n")
        self.assertEqual(process.status, 0)
        self.assertEqual(self.store.peek("alice").status, "")  # type: ignore[union-attr]


class FailingBackend(MemoryBackend):
    """
    A backend whose disk is full: every write fails as SQLite's would.
    """

    def update(self, *args: Any, **kwargs: Any) -> Any:
        """
        Fail like a full disk.
        """
        from sshfinger.model.errors import StoreUnavailable

        raise StoreUnavailable("cannot save change: database or disk is full")


class StoreFaultTests(SynchronousTestCase):
    """
    The store fails while the server runs.
    """

    def test_edit_fails_clearly_finger_still_answers(self) -> None:
        """
        An exec edit fails with the store's reason and status 1; nothing changes; finger still answers from
        memory.
        """
        clock = Clock()
        store = CachedStore(FailingBackend([Account("root", role="admin"), Account("alice", status="Old")]), clock.seconds)
        store.open()
        finger = FingerService(store, clock)
        app = ShellApp(store=store, finger=finger, clock=clock)
        session = ISession(ShellUser("root", app))
        process = FakeProcess()
        session.execCommand(process, b"set alice status New")
        self.assertEqual(process.status, 1)
        self.assertEqual(process.err, b"error: cannot save change: database or disk is full\n")
        self.assertIn("Status: Old", "\n".join(finger.user("alice", False)))


class FloodTests(SessionTestCase):
    """
    Bounded work per event for logged-in users (issue 17, #4 and #5).
    """

    def shell(self, login: str = "alice") -> tuple[Session, FakeProcess]:
        """
        A shell session with a pty, started.
        """
        session = self.session(login)
        session.getPty(b"xterm", (24, 80, 0, 0), [])
        process = FakeProcess()
        session.openShell(process)
        return session, process

    def test_resizes_coalesced(self) -> None:
        """
        A burst of window changes (all the budget allows) with a 4 000-character line costs one redraw, once the
        clock turns: nothing is drawn per resize, and the line is drawn for the last size.
        """
        session, process = self.shell()
        process.transport.write(b"x" * 4000)
        before = len(process.out)
        for n in range(RESIZE_BURST):
            session.windowChanged((24, 40 + n % 50, 0, 0))
        self.assertEqual(len(process.out), before)
        self.clock.advance(1)
        drawn = len(process.out) - before
        self.assertGreater(drawn, 4000)
        self.assertLess(drawn, 2 * 4100)
        self.assertEqual(session.window, (24, 40 + (RESIZE_BURST - 1) % 50))

    def test_resize_flood_closes_connection(self) -> None:
        """
        Window changes beyond the burst and the rate close the SSH connection once, with one warning naming the
        login and the peer; a steady pace within the rate is fine.
        """
        session, process = self.shell()
        closed: list[bool] = []

        class Transport:
            def loseConnection(self) -> None:
                closed.append(True)

        class Conn:
            transport = Transport()

        session.user.conn = Conn()
        for n in range(3 * RESIZE_BURST):
            self.clock.advance(1.5 / RESIZE_RATE)
            session.windowChanged((24, 40 + n % 50, 0, 0))
        self.assertEqual(closed, [])
        events: list[dict[str, object]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for n in range(2 * RESIZE_BURST):
            session.windowChanged((24, 40 + n % 50, 0, 0))
        self.assertEqual(closed, [True])
        floods = [e for e in events if e.get("outcome") == "flood"]
        self.assertEqual(len(floods), 1)
        self.assertEqual((floods[0]["login"], floods[0]["peer"]), ("alice", "192.0.2.7:40000"))

    def test_paste_one_write(self) -> None:
        """
        A 4 000-character paste arriving in one chunk is echoed in one write (one SSH packet), not one per
        character; C{quit} typed in the same chunk as more text still says bye before the session ends.
        """
        session, process = self.shell()
        before = process.writes
        process.transport.write(b"x" * 4000)
        self.assertEqual(process.writes - before, 1)
        self.assertEqual(process.out.count(b"x"), 4000)
        process.transport.write(b"\x15quit\rwhoami\r")
        self.assertEqual(process.status, 0)
        self.assertIn(b"bye", process.out)

    def test_keys_in_one_chunk_redraw_once(self) -> None:
        """
        A thousand Left arrows after a 4 000-character line, in one chunk, cost one redraw of the line, not a
        thousand; the cursor ends where a thousand key presses put it.
        """
        session, process = self.shell()
        process.transport.write(b"x" * 3000 + b"y" * 1000)
        before = len(process.out)
        process.transport.write(b"\x1b[D" * 1000)
        self.assertLess(len(process.out) - before, 2 * 4100)
        process.transport.write(b"\x0b\r")  # Ctrl-K cuts the y's; Enter runs the x's as a command
        self.assertIn(b"unknown command: " + b"x" * 3000, process.out)

    def test_paste_runs_like_keys(self) -> None:
        """
        Pasted lines (printable runs typed at once, Enter and C{?} key by key) run as if typed.
        """
        session, process = self.shell()
        process.transport.write(b"status pasted in one go\rwhoami\r")
        self.assertEqual(self.store.peek("alice").status, "pasted in one go")  # type: ignore[union-attr]
        self.assertIn(b"alice (user)", process.out)
        process.transport.write(b"set alice status 'what?'\r")
        self.assertEqual(self.store.peek("alice").status, "what?")  # type: ignore[union-attr]

    def test_paste_typed_at_once(self) -> None:
        """
        A 4 000-character paste is typed as one piece of text, not handed over key by key; a key after it
        still works.
        """
        session, process = self.shell()
        shell = session.shell.terminalProtocol  # type: ignore[union-attr]
        keys: list[object] = []
        original = shell.keystrokeReceived
        self.patch(shell, "keystrokeReceived", lambda key, modifier: (keys.append(key), original(key, modifier)))
        process.transport.write(b"status " + b"z" * 100 + b" " + b"w" * 3893)
        self.assertEqual(keys, [])
        process.transport.write(b"\r")
        self.assertEqual(self.store.peek("alice").status, "")  # type: ignore[union-attr]  # too long: refused
        self.assertIn(b"longer than", process.out)

    def test_endless_escape_sequence_dropped(self) -> None:
        """
        An escape sequence that never ends (ESC [ and a megabyte of digits) is dropped, not collected; typing
        works afterwards.
        """
        session, process = self.shell()
        process.transport.write(b"\x1b[" + b"1" * 100_000)
        process.transport.write(b"\x15whoami\r")
        self.assertIn(b"alice (user) from", process.out)

    def test_resize_after_close_ignored(self) -> None:
        """
        A resize pending when the channel closes is dropped, not drawn on a closed channel.
        """
        session, process = self.shell()
        session.windowChanged((24, 50, 0, 0))
        session.closed()
        before = len(process.out)
        self.clock.advance(1)
        self.assertEqual(len(process.out), before)

    def test_long_exec_refused_unparsed(self) -> None:
        """
        An exec command longer than L{MAX_COMMAND} is refused at once with one line, without being split (a
        1 MB command of unbalanced quotes would take seconds to split).
        """
        process = self.execute("alice", b"status '" + b"x" * 1_000_000)
        self.assertEqual(process.status, 1)
        self.assertEqual(process.err, f"error: command longer than {MAX_COMMAND} bytes; refused\n".encode())

    def test_long_stdin_line_refused(self) -> None:
        """
        In line mode (a shell without a pty) a line longer than L{MAX_COMMAND} is refused; the next runs.
        """
        session = self.session("alice")
        process = FakeProcess()
        session.openShell(process)
        process.transport.write(b"status " + b"y" * (MAX_COMMAND + 10) + b"\nwhoami\n")
        session.eofReceived()
        self.assertIn(f"command longer than {MAX_COMMAND} bytes".encode(), process.err)
        self.assertIn(b"alice (user)", process.out)

    def test_no_account_input_discarded(self) -> None:
        """
        A login without an account that sends input after its refusal (a shell with or without a pty) has
        the input discarded: Conch hands it to the transport the session wired in, which must exist.
        """
        for pty in (False, True):
            session = self.session("mallory")
            if pty:
                session.getPty(b"xterm", (24, 80, 0, 0), [])
            process = FakeProcess()
            session.openShell(process)
            self.assertEqual(process.status, 1)
            self.assertIsNotNone(process.transport)
            process.transport.write(b"whoami\n")
            self.assertEqual(process.out, b"")


class FakeConnection:
    """
    The parts of Conch's C{SSHConnection} a session channel uses to answer: stderr, requests and close.
    """

    def __init__(self) -> None:
        """
        Nothing sent yet.
        """
        self.stderr = b""
        self.requests: list[tuple[bytes, bytes]] = []
        self.closed = False
        self.transport = None

    def sendExtendedData(self, channel: object, dataType: int, data: bytes) -> None:
        """
        Standard error.
        """
        self.stderr += data

    def sendRequest(self, channel: object, requestType: bytes, data: bytes, wantReply: bool = False) -> None:
        """
        A channel request (exit-status).
        """
        self.requests.append((requestType, data))

    def sendEOF(self, channel: object) -> None:
        """
        End of output.
        """

    def sendClose(self, channel: object) -> None:
        """
        The channel closes.
        """
        self.closed = True


class ChannelTests(SessionTestCase):
    """
    L{SessionChannel}, Conch's session channel with the overlong exec refused before Conch logs it.
    """

    def test_overlong_exec_not_logged(self) -> None:
        """
        A 1 MB exec request is refused with one line and exit status 1, and no log event carries the megabyte.
        """
        from twisted.logger import globalLogPublisher

        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        conn = FakeConnection()
        channel = SessionChannel(remoteWindow=2**20, remoteMaxPacket=2**15, conn=conn, avatar=ShellUser("alice", self.app))
        self.assertEqual(channel.request_exec(common.NS(b"status " + b"x" * 1_000_000)), 1)
        self.assertEqual(conn.stderr, f"error: command longer than {MAX_COMMAND} bytes; refused\n".encode())
        self.assertIn((b"exit-status", b"\x00\x00\x00\x01"), conn.requests)
        self.assertEqual([e for e in events if len(repr(e)) > 10_000], [])
