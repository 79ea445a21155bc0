"""
Tests for the Python manhole (L{sshfinger.shell.manhole}), entered from the command shell over an in-memory
terminal and store.
"""

from __future__ import annotations

import re

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account
from sshfinger.shell.app import ShellApp
from sshfinger.shell.manhole import OUTPUT_CAP, TRUNCATED, ManholeShell, wants_colour
from sshfinger.shell.shell import CommandShell
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend

SGR = re.compile(rb"\x1b\[[0-9;]*m")


class ManholeTestCase(SynchronousTestCase):
    """
    A command shell for a chosen login; C{open} types C{manhole}.
    """

    def setUp(self) -> None:
        """
        Build the store and app.
        """
        self.clock = Clock()
        self.store = CachedStore(
            MemoryBackend([Account("root", role="admin"), Account("alice", real_name="Alice")]), self.clock.seconds
        )
        self.store.open()
        self.finger = FingerService(self.store, self.clock)
        self.app = ShellApp(store=self.store, finger=self.finger, clock=self.clock, hostname="h")
        self.exits: list[int] = []

    def open(self, login: str = "root", colour: bool = True) -> None:
        """
        Log in as C{login} and type C{manhole}.
        """
        self.transport = StringTransport()
        context = self.app.context(login, "shell", "10.0.0.1:5", True)
        self.server = ServerProtocol(CommandShell, self.app, context, (80, 24), self.exits.append, colour)
        self.server.makeConnection(self.transport)
        self.type(b"manhole\r")

    def type(self, data: bytes) -> None:
        """
        Type raw bytes.
        """
        self.server.dataReceived(data)

    def output(self) -> str:
        """
        All output so far.
        """
        return self.transport.value().decode("utf-8", "replace")

    def run_line(self, line: str) -> str:
        """
        Type one line in the manhole and return the output it produced.
        """
        before = len(self.transport.value())
        self.type(line.encode("utf-8") + b"\r")
        return self.transport.value()[before:].decode("utf-8", "replace")


class ManholeTests(ManholeTestCase):
    """
    The REPL itself.
    """

    def test_banner_and_users_mapping(self) -> None:
        """
        The banner lists the namespace; C{users["alice"] = ...} sets her status, seen by the next finger query.
        """
        self.open()
        self.assertIsInstance(self.server.terminalProtocol, ManholeShell)
        self.assertIn("users     live accounts", self.output())
        self.assertIn("blocking statement freezes the whole server", self.output())
        self.run_line('users["alice"] = "Happy and well"')
        answer = "\n".join(self.finger.user("alice", False))
        self.assertIn("Happy and well", answer)
        self.assertEqual(self.store.peek("alice").updated_by, "root")  # type: ignore[union-attr]
        self.assertIn("Alice", self.run_line('users["alice"].real_name'))

    def test_lines_audited(self) -> None:
        """
        Every manhole input line is recorded with login, channel and peer.
        """
        self.open()
        self.run_line("1 + 1")
        changes = self.successResultOf(self.store.recent_changes(10, "root"))
        inputs = [c for c in changes if c.action == "input"]
        self.assertEqual([c.new for c in inputs], ["1 + 1"])
        self.assertEqual((inputs[0].actor.channel, inputs[0].actor.peer), ("manhole", "10.0.0.1:5"))
        self.assertIn(">>> 1 + 1", self.run_line("print(*(audit(5).result), sep='\\n')"))

    def test_exception_shows_traceback_and_goes_on(self) -> None:
        """
        A raising statement shows its traceback; the next statement runs.
        """
        self.open()
        self.assertIn("ZeroDivisionError", self.run_line("1/0"))
        self.assertIn("2", self.run_line("1 + 1"))
        self.assertEqual(self.exits, [])

    def test_indentation_error_while_colouring(self) -> None:
        """
        A bad dedent inside a block (which makes Twisted's ColoredManhole drop the connection) is coloured
        plainly, then reported as an IndentationError when run; the session goes on.
        """
        self.open(colour=True)
        self.run_line("if True:")
        self.run_line("        x = 1")
        self.type(b"    y = 2")
        self.assertIn("y = 2", self.output())
        self.type(b"\r")
        self.assertIn("IndentationError", self.output())
        self.assertIn("3", self.run_line("1 + 2"))

    def test_colour_and_plain(self) -> None:
        """
        Input is coloured for a colour terminal, and never for a dumb one or with NO_COLOR.
        """
        self.open(colour=True)
        self.type(b"len('abc')")
        self.assertTrue(SGR.search(self.transport.value()))
        self.open(colour=False)
        self.type(b"len('abc')")
        self.assertIsNone(SGR.search(self.transport.value()))
        self.assertFalse(wants_colour("dumb", {}))
        self.assertFalse(wants_colour("xterm", {"NO_COLOR": "1"}))
        self.assertTrue(wants_colour("xterm-256color", {}))

    def test_output_cap(self) -> None:
        """
        One statement's output stops at the cap with a marker; the next statement prints again.
        """
        self.open()
        out = self.run_line("print('x' * 100000)")
        self.assertIn(TRUNCATED, out)
        self.assertIn("x" * 1000, out)
        self.assertNotIn("x" * (OUTPUT_CAP + 1), out)
        self.assertIn("4", self.run_line("2 + 2"))

    def test_completion(self) -> None:
        """
        Tab completes names and attributes from the namespace.
        """
        self.open()
        self.type(b"use\t")
        self.assertEqual(self.server.terminalProtocol.editor.current_line(), "users ")
        self.type(b"\x15store.pe\t")
        self.assertEqual(self.server.terminalProtocol.editor.current_line(), "store.peek ")

    def test_await(self) -> None:
        """
        Top-level C{await} works: an awaited store call shows its result; a pending Deferred shows its value
        when it fires.
        """
        self.open()
        self.assertIn("Account(login='alice'", self.run_line('await store.get("alice")'))
        self.app.extra["pending"] = pending = Deferred()
        self.server.terminalProtocol.namespace["pending"] = pending
        self.assertNotIn("42", self.run_line("await pending"))
        before = len(self.transport.value())
        pending.callback(42)
        self.assertIn("42", self.transport.value()[before:].decode())

    def test_ctrl_d_returns_to_shell(self) -> None:
        """
        Ctrl-D leaves the manhole for the command shell, which still works.
        """
        self.open()
        self.type(b"\x04")
        self.assertIsInstance(self.server.terminalProtocol, CommandShell)
        self.type(b"whoami\r")
        self.assertIn("root (admin)", self.output())
        self.assertEqual(self.exits, [])

    def test_non_admin_refused_and_logged(self) -> None:
        """
        A non-admin gets a clear refusal and the attempt is logged.
        """
        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.open("alice")
        self.assertIsInstance(self.server.terminalProtocol, CommandShell)
        self.assertIn("permission denied: only admins may use the manhole", self.output())
        self.assertTrue([e for e in events if e.get("outcome") == "refused" and e.get("login") == "alice"])
