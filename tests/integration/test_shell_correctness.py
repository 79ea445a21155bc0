"""
Correctness, privacy and clear errors of the shell against the installed server (issue 18, #5, #8, #13, #17,
#21, and issue 22's C{key add} from standard input), driven by the real OpenSSH client and tmux.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, clean_env, run_tool
from tests.sshclient import PASSWORD, Tmux, make_key, setup_site, ssh_args, ssh_run


class ShellServerTestCase(SynchronousTestCase):
    """
    One server per test with the demo site (admin, alice, bob) and a passwd file.
    """

    extra_args: list[str] = []

    def setUp(self) -> None:
        """
        Build the site and start the server.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = setup_site(self, self.directory)
        self.passwd = os.path.join(self.directory, "passwd")
        self.server = ServerProcess(
            self,
            self.directory,
            ["--store", self.store, "--auth", "file:passwd", "--admin", "admin", *self.extra_args],
            ssh=True,
        ).start()

    def run_as(self, login: str, *command: str, stdin: str = "", password: str | None = None) -> tuple[int, str, str]:
        """
        Run one exec command; return its exit status, output and error output.
        """
        result = ssh_run(self.server, login, list(command), stdin=stdin, password=password)
        return result.returncode, result.stdout, result.stderr


class RefusalTests(ShellServerTestCase):
    """
    An authenticated login without an account (#8).
    """

    def test_no_account_sending_input(self) -> None:
        """
        Ten connections of a login that has a password but no account, each sending input at once (with and
        without a pty), all get the clear refusal and exit 1; the log holds no traceback or AssertionError.
        """
        run_tool("passwd", "carol", "--file", self.passwd, "--rounds", "4", "--password-stdin", stdin=PASSWORD + "\n")
        refused = 0
        for n in range(10):
            tty = ["-tt"] if n % 2 else ["-T"]
            result = subprocess.run(
                [*ssh_args(self.server, "carol"), *tty], input="whoami\n" * 200, capture_output=True, text=True,
                timeout=60, env=clean_env(),
            )  # fmt: skip
            self.assertEqual(result.returncode, 1, result.stderr)
            refused += "carol has no account in the user store" in result.stderr + result.stdout
        time.sleep(0.5)
        log = self.server.log()
        self.assertEqual(refused, 10)
        self.assertNotIn("AssertionError", log)
        self.assertNotIn("Traceback", log)
        refusals = re.findall(r"SSH login carol from 127\.0\.0\.1:\d+ \[ssh-\d+\] has no account in the store", log)
        self.assertEqual(len(refusals), 10)  # each with its peer and connection id (issue 18 #15)


class ErrorTests(ShellServerTestCase):
    """
    Clear errors for mistakes (#13), password rules and their audit (#17).
    """

    def test_mistyped_field(self) -> None:
        """
        C{set alice colr red} exits 1, lists the fields and changes nothing; a field is named as typed.
        """
        status, out, err = self.run_as("admin", "set", "alice", "colr", "red")
        self.assertEqual(status, 1)
        self.assertIn("unknown field 'colr': choose from name, status, plan, office, phone, fediverse, hidden, role", err)
        self.assertNotIn(b"colr", self.server.finger(b"alice\r\n"))
        self.assertEqual(self.run_as("admin", "set", "alice", "name", "Alice L.")[:2], (0, "name of alice set\n"))

    def test_passwd_minimum_and_audit(self) -> None:
        """
        A short password is refused (exit 1, the minimum named, the old password still works); a long one is
        accepted, works at the next login, and is in the audit trail without its hash.
        """
        status, _, err = self.run_as("alice", "passwd", stdin="short\n")
        self.assertEqual(status, 1)
        self.assertIn("at least 10 characters", err)
        self.assertEqual(self.run_as("alice", "whoami")[0], 0)
        status, out, err = self.run_as("alice", "passwd", stdin="a much longer secret\n")
        self.assertEqual((status, out), (0, "password changed for alice\n"), err)
        self.assertEqual(self.run_as("alice", "whoami", password="a much longer secret")[0], 0)
        status, out, _ = self.run_as("admin", "log", "5", "alice")
        self.assertRegex(out, r"alice/exec@127\.0\.0\.1:\d+ changed the password of alice")
        audit = run_tool("audit", "50", "--store", self.store).stdout
        self.assertIn("changed the password of alice", audit)
        self.assertNotIn("$2b$", audit + out)
        self.assertNotIn("much longer", audit + out + self.server.log())


class HiddenTests(ShellServerTestCase):
    """
    Hidden accounts never leak to users who may not see them (#5).
    """

    def test_errors_and_completion(self) -> None:
        """
        With bob hidden, alice's C{key list bob} answers exactly as C{key list nosuchuser}; in her shell, C{?}
        after C{finger} and Tab after C{finger b} never show bob, while the admin's do.
        """
        self.assertEqual(self.run_as("admin", "hide", "bob")[0], 0)
        hidden = self.run_as("alice", "key", "list", "bob")
        unknown = self.run_as("alice", "key", "list", "nosuchuser")
        self.assertEqual(hidden[0], 1)
        self.assertEqual((hidden[0], hidden[2].replace("bob", "X")), (unknown[0], unknown[2].replace("nosuchuser", "X")))
        term = Tmux(self, [*ssh_args(self.server, "alice"), "-tt"])
        term.wait_for("alice@")
        term.type("finger ")
        term.type("?")
        screen = term.wait_for("alice ")
        self.assertNotIn("bob", screen)
        self.assertNotIn("Bob", screen)
        term.keys("C-u")
        term.type("finger b")
        term.keys("Tab", "Tab")
        time.sleep(0.5)
        self.assertNotIn("finger bob", term.screen())
        admin = Tmux(self, [*ssh_args(self.server, "admin"), "-tt"])
        admin.wait_for("admin@")
        admin.type("finger b")
        admin.keys("Tab")
        admin.wait_for("finger bob")


class EndingTests(ShellServerTestCase):
    """
    No stray prompt after the last words (#21).
    """

    extra_args = ["--idle-timeout", "3"]

    def shell_until_exit(self) -> Tmux:
        """
        An interactive login in tmux whose pane stays after ssh exits (it then prints C{EXITED}).
        """
        command = shlex.join([*ssh_args(self.server, "alice"), "-tt"])
        term = Tmux(self, ["sh", "-c", f"{command}; echo EXITED; sleep 60"])
        term.wait_for("alice@")
        return term

    def after(self, screen: str, words: str) -> str:
        """
        What the screen shows between the last C{words} and C{EXITED}.
        """
        return screen[screen.rindex(words) + len(words) : screen.index("EXITED")]

    def test_no_prompt_after_bye(self) -> None:
        """
        After C{quit} the screen shows bye and the client's goodbye, but no prompt.
        """
        term = self.shell_until_exit()
        term.type("quit")
        term.keys("Enter")
        screen = term.wait_for("EXITED")
        self.assertNotIn("alice@", self.after(screen, "bye"))

    def test_no_prompt_after_idle_goodbye(self) -> None:
        """
        After the idle timeout's goodbye, no prompt.
        """
        term = self.shell_until_exit()
        screen = term.wait_for("EXITED", timeout=20)
        self.assertIn("Idle timeout: goodbye.", screen)
        self.assertNotIn("alice@", self.after(screen, "goodbye."))


class KeyFromStdinTests(ShellServerTestCase):
    """
    C{ssh host key add < key.pub} (issue 22).
    """

    def test_key_add_reads_stdin(self) -> None:
        """
        C{key add} with no key line reads the keys from standard input; the key then logs in.
        """
        key = make_key(self.directory, "ed25519")
        with open(key + ".pub") as f:
            status, out, err = self.run_as("alice", "key", "add", stdin=f.read())
        self.assertEqual((status, out), (0, "key added to alice\n"), err)
        time.sleep(0.2)
        self.assertEqual(ssh_run(self.server, "alice", ["whoami"], key=key).returncode, 0)
        status, out, _ = self.run_as("alice", "key", "list")
        self.assertTrue(re.search(r"ssh-ed25519 +SHA256:", out), out)

    def test_no_keys_said_alike(self) -> None:
        """
        The CLI's C{key list} and the shell's say the same line for an account without keys (#21).
        """
        shell = self.run_as("bob", "key", "list")
        cli = run_tool("key", "list", "bob", "--store", self.store)
        self.assertEqual((shell[0], shell[1]), (0, "bob has no keys\n"))
        self.assertEqual((cli.returncode, cli.stdout), (0, "bob has no keys\n"))
