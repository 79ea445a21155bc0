"""
Tests for L{sshfinger.shell.shell.CommandShell}: the interactive shell over an in-memory terminal and store.
"""

from __future__ import annotations

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account
from sshfinger.shell import commands
from sshfinger.shell.app import ShellApp
from sshfinger.shell.shell import IDLE_WARNING, MAX_ANSWER, CommandShell
from sshfinger.store.cached import CachedStore
from sshfinger.store.memory import MemoryBackend


class ShellTestCase(SynchronousTestCase):
    """
    A shell for C{root} (admin) on a memory store, with a task clock.
    """

    def setUp(self) -> None:
        """
        Build the store, the app and the shell, and connect it.
        """
        self.clock = Clock()
        self.store = CachedStore(
            MemoryBackend([Account("root", role="admin"), Account("alice", real_name="Alice")]), self.clock.seconds
        )
        self.store.open()
        self.passwords: dict[str, str] = {}

        def set_password(login: str, password: str) -> Deferred[None]:
            self.passwords[login] = password
            return succeed(None)

        self.app = ShellApp(
            store=self.store,
            finger=FingerService(self.store, self.clock),
            clock=self.clock,
            hostname="testhost",
            idle_timeout=300,
            set_password=set_password,
        )
        self.exits: list[int] = []
        self.transport = StringTransport()
        context = self.app.context("root", "shell", "127.0.0.1:1", True)
        self.server = ServerProtocol(CommandShell, self.app, context, (80, 24), self.exits.append)
        self.server.makeConnection(self.transport)
        self.shell: CommandShell = self.server.terminalProtocol

    def type(self, data: bytes) -> None:
        """
        Type raw bytes.
        """
        self.server.dataReceived(data)

    def output(self) -> str:
        """
        Everything written so far, decoded.
        """
        return self.transport.value().decode("utf-8", "replace")


class ShellTests(ShellTestCase):
    """
    The shell's own behaviour around commands.
    """

    def test_banner_and_prompt(self) -> None:
        """
        The banner names the login and role; the prompt shows login and host.
        """
        self.assertIn("logged in as root (admin)", self.output())
        self.assertIn("root@testhost> ", self.output())

    def test_command_edits_store(self) -> None:
        """
        A typed command changes the store and prints its reply.
        """
        self.type(b"set alice status 'At lunch'\r")
        self.assertEqual(self.store.peek("alice").status, "At lunch")  # type: ignore[union-attr]
        self.assertIn("status of alice set", self.output())

    def test_error_then_goes_on(self) -> None:
        """
        A command error is one line; an unexpected exception prints an error and the session goes on.
        """
        self.type(b"frob\r")
        self.assertIn("error: unknown command: frob (try 'help')", self.output())

        def broken(*args: object) -> Deferred[object]:
            raise RuntimeError("boom")

        working = commands.COMMANDS
        self.patch(commands, "COMMANDS", {**working, "whoami": commands.Command("whoami", "", "", broken)})
        self.type(b"whoami\r")
        self.assertIn("error: internal error (RuntimeError); the event is logged", self.output())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.patch(commands, "COMMANDS", working)
        self.type(b"whoami\r")
        self.assertIn("root (admin) from 127.0.0.1:1", self.output())
        self.assertEqual(self.exits, [])

    def test_plan_until_dot(self) -> None:
        """
        C{plan} collects lines until a lone C{.}.
        """
        self.type(b"plan\r")
        self.assertIn("end with a line holding only '.'", self.output())
        self.type(b"first line\r")
        self.type(b"second line\r")
        self.assertEqual(self.store.peek("root").plan, "")  # type: ignore[union-attr]
        self.type(b".\r")
        self.assertEqual(self.store.peek("root").plan, "first line\nsecond line")  # type: ignore[union-attr]

    def test_passwd_without_echo(self) -> None:
        """
        C{passwd} reads the password twice without echoing it; a mismatch changes nothing.
        """
        self.type(b"passwd\r")
        self.type(b"n3w-secret\r")
        self.type(b"different\r")
        self.assertIn("the passwords differ", self.output())
        self.assertEqual(self.passwords, {})
        self.type(b"passwd\rn3w-secret\rn3w-secret\r")
        self.assertEqual(self.passwords, {"root": "n3w-secret"})
        self.assertNotIn("n3w-secret", self.output())
        self.assertNotIn("n3w-secret", self.shell.editor.history_lines())

    def test_del_confirmation(self) -> None:
        """
        C{del} asks first; only yes deletes.  Ctrl-C cancels a question.
        """
        self.type(b"del alice\r")
        self.assertIn("Delete alice and all its data? [y/N]", self.output())
        self.type(b"n\r")
        self.assertIsNotNone(self.store.peek("alice"))
        self.type(b"del alice\r\x03")
        self.assertIn("(cancelled)", self.output())
        self.type(b"del alice\ry\r")
        self.assertIsNone(self.store.peek("alice"))

    def test_quit(self) -> None:
        """
        C{quit} ends the session with status 0.
        """
        self.type(b"quit\r")
        self.assertEqual(self.exits, [0])

    def test_ctrl_d_exits(self) -> None:
        """
        Ctrl-D on an empty line says bye and exits 0.
        """
        self.type(b"\x04")
        self.assertEqual(self.exits, [0])
        self.assertIn("bye", self.output())

    def test_history_saved_and_loaded(self) -> None:
        """
        Typed lines are saved per login in the store; a new shell starts with them.
        """
        self.type(b"whoami\r")
        self.assertEqual(self.successResultOf(self.store.history("root")), ["whoami"])
        context = self.app.context("root", "shell", "127.0.0.1:2", True)
        server = ServerProtocol(CommandShell, self.app, context, (80, 24), self.exits.append)
        server.makeConnection(StringTransport())
        self.assertEqual(server.terminalProtocol.editor.history_lines(), ["whoami"])

    def test_idle_timeout(self) -> None:
        """
        An idle shell is warned a minute before the timeout and then closed; typing resets the countdown.
        """
        self.clock.advance(300 - IDLE_WARNING - 1)
        self.type(b"a")
        self.clock.advance(300 - IDLE_WARNING)
        self.assertIn("closes in 60 s", self.output())
        self.assertEqual(self.exits, [])
        self.clock.advance(IDLE_WARNING)
        self.assertIn("Idle timeout", self.output())
        self.assertEqual(self.exits, [0])

    def test_resize(self) -> None:
        """
        A resize reaches the editor.
        """
        self.shell.terminalSize(50, 20)
        self.assertEqual(self.shell.editor.width, 50)  # type: ignore[union-attr]


class BoundsAndEndingTests(ShellTestCase):
    """
    Input caps (issue 17, #5) and a clean ending (issue 18, #21).
    """

    def test_plan_text_capped(self) -> None:
        """
        A plan typed (or pasted) beyond L{MAX_ANSWER} characters is refused with a clear line and changes nothing;
        the shell goes on with its prompt.
        """
        self.type(b"plan\r")
        line = b"p" * 4000 + b"\r"
        self.type(line * (MAX_ANSWER // 4000 + 2))
        self.assertIn(f"the text is longer than {MAX_ANSWER} characters; nothing changed", self.output())
        self.assertEqual(self.store.peek("root").plan, "")  # type: ignore[union-attr]
        self.type(b"whoami\r")
        self.assertIn("root (admin)", self.output())

    def test_no_prompt_after_bye(self) -> None:
        """
        C{quit} and Ctrl-D say bye and draw no prompt after it.
        """
        for keys in (b"quit\r", b"\x04"):
            self.setUp()
            self.type(keys)
            output = self.output()
            self.assertEqual(output[output.rindex("bye") :].strip(), "bye", repr(output[-60:]))

    def test_no_prompt_after_idle_goodbye(self) -> None:
        """
        The idle timeout's goodbye is the last thing drawn.
        """
        self.clock.advance(300 - IDLE_WARNING)
        self.clock.advance(IDLE_WARNING)
        output = self.output()
        self.assertEqual(output[output.rindex("Idle") :].strip(), "Idle timeout: goodbye.", repr(output[-60:]))
        self.assertEqual(self.exits, [0])
