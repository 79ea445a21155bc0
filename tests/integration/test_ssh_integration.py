"""
End-to-end SSH tests: the installed C{twistd sshfinger} on free loopback ports, driven by the real OpenSSH
client (sshpass for passwords, tmux for a real terminal) and raw finger sockets.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, run_tool
from tests.sshclient import Tmux, key_file_mode, make_key, require, ssh_args, ssh_run, start_site


class SSHServerTestCase(SynchronousTestCase):
    """
    One server per test, with the demo accounts, a passwd file and keys for alice.
    """

    def setUp(self) -> None:
        """
        Build the site and start the server with C{--auth file:passwd --admin admin}.
        """
        self.directory, self.store, self.server = start_site(self)

    def add_key(self, login: str, private: str) -> None:
        """
        Add a public key with the CLI and wait for the server to see it (it polls the store).
        """
        result = run_tool("key", "add", login, private + ".pub", "--store", self.store)
        self.assertEqual(result.returncode, 0, result.stderr)
        time.sleep(1.2)


class LoginTests(SSHServerTestCase):
    """
    Password and key logins, refusals, and their log events.
    """

    def test_password_login(self) -> None:
        """
        A password login runs a command and exits 0.
        """
        result = ssh_run(self.server, "admin", ["whoami"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^admin \(admin\) from 127\.0\.0\.1:\d+\n$")
        self.assertRegex(self.server.log(), r"SSH login accepted: admin from 127\.0\.0\.1:\d+ by password")
        deadline = time.monotonic() + 5
        while "SSH client disconnected: disconnected by user (admin from 127.0.0.1:" not in self.server.log():
            self.assertLess(time.monotonic(), deadline, "the client's goodbye was never logged")
            time.sleep(0.05)
        self.assertNotIn("#error]", self.server.log())

    def test_wrong_password_refused_and_logged(self) -> None:
        """
        A wrong password is refused and logged with peer, login and method.
        """
        result = ssh_run(self.server, "admin", ["whoami"], password="wrong")
        self.assertEqual(result.returncode, 255, result.stderr)
        self.assertIn("Permission denied", result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertRegex(self.server.log(), r"SSH login refused: admin from 127\.0\.0\.1:\d+ by password")

    def test_disconnect_after_six_failures(self) -> None:
        """
        A client that keeps guessing is cut off after the sixth failed password (each answered after a delay).
        """
        askpass = os.path.join(self.directory, "askpass")
        with open(askpass, "w") as f:
            f.write("#!/bin/sh\necho wrong-guess\n")
        os.chmod(askpass, 0o755)
        env = dict(os.environ, SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        ssh = ssh_args(self.server, "admin", prompts=20)
        started = time.monotonic()
        result = subprocess.run(
            [*ssh, "whoami"], capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
        )
        self.assertEqual(result.returncode, 255)
        self.assertGreaterEqual(time.monotonic() - started, 5.0)
        self.assertEqual(self.server.log().count("SSH login refused: admin"), 6)

    def test_brute_force_penalised(self) -> None:
        """
        200 wrong passwords from one address: each connection is cut after 6 failures, the address is then
        refused outright, finger keeps answering, and a right password from another address still works.
        """
        askpass = os.path.join(self.directory, "askpass")
        with open(askpass, "w") as f:
            f.write("#!/bin/sh\necho wrong-guess\n")
        os.chmod(askpass, 0o755)
        env = dict(os.environ, SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        attempts = 0
        deadline = time.monotonic() + 60
        while attempts < 200 and time.monotonic() < deadline:
            subprocess.run(
                [*ssh_args(self.server, "admin", prompts=6), "whoami"],
                capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            attempts += 6
            self.assertIn(b"Down the rabbit hole", self.server.finger(b"alice\r\n"))
        self.assertGreaterEqual(attempts, 200)
        log = self.server.log()
        self.assertIn("SSH source 127.0.0.1 penalised", log)
        self.assertIn("SSH connection from 127.0.0.1 refused: penalised", log)
        # Far fewer than 200 passwords were even checked: the penalty refused the rest unheard.
        self.assertLess(log.count("SSH login refused: admin"), 30)
        other = ssh_run(self.server, "admin", ["whoami"], bind="127.0.0.2")
        self.assertEqual(other.returncode, 0, other.stderr)
        self.assertIn("admin (admin) from 127.0.0.2:", other.stdout)

    def test_passwd_file_removed_fails_closed(self) -> None:
        """
        With the passwd file gone, password logins fail (logged as an error), the server keeps running, and a
        corrupted file fails the same way.
        """
        passwd = os.path.join(self.directory, "passwd")
        os.rename(passwd, passwd + ".gone")
        result = ssh_run(self.server, "admin", ["whoami"])
        self.assertEqual(result.returncode, 255)
        self.assertIn("cannot read passwd file", self.server.log())
        with open(passwd, "wb") as f:
            f.write(b"admin:$2b$12$corrupted\n\x00\xff")
        self.assertEqual(ssh_run(self.server, "admin", ["whoami"]).returncode, 255)
        self.assertIn(b"Alice Liddell", self.server.finger(b"alice\r\n"))
        os.replace(passwd + ".gone", passwd)
        self.assertEqual(ssh_run(self.server, "admin", ["whoami"]).returncode, 0)

    def test_ed25519_and_rsa_keys(self) -> None:
        """
        ed25519 and RSA (3072) keys stored with the CLI log in with the default OpenSSH client; the key's
        fingerprint is logged.
        """
        for kind, bits in (("ed25519", None), ("rsa", 3072)):
            key = make_key(self.directory, kind, bits)
            self.add_key("alice", key)
            result = ssh_run(self.server, "alice", ["whoami"], key=key)
            self.assertEqual(result.returncode, 0, f"{kind}: {result.stderr}")
            self.assertIn("alice (user)", result.stdout)
            fingerprint = subprocess.run(
                [require("ssh-keygen"), "-lf", key + ".pub"], capture_output=True, text=True
            ).stdout.split()[1]
            self.assertIn(f"by publickey {fingerprint}", self.server.log())

    def test_weak_algorithms_refused(self) -> None:
        """
        The real client, limited to one algorithm that rests on SHA-1, MD5, 3DES or CBC mode (each still built
        into OpenSSH's client), finds nothing in common with the server; with its defaults it logs in.
        """
        for option, message in [
            ("KexAlgorithms=diffie-hellman-group14-sha1", "no matching key exchange method"),
            ("KexAlgorithms=diffie-hellman-group-exchange-sha1", "no matching key exchange method"),
            ("Ciphers=aes128-cbc", "no matching cipher"),
            ("Ciphers=3des-cbc", "no matching cipher"),
            ("MACs=hmac-sha1", "no matching MAC"),
            ("MACs=hmac-md5", "no matching MAC"),
            ("HostKeyAlgorithms=ssh-rsa", "no matching host key type"),
        ]:
            result = ssh_run(self.server, "admin", ["whoami"], options=[option, "LogLevel=INFO"])
            self.assertEqual(result.returncode, 255, option)
            self.assertIn(message, result.stderr, f"{option}: {result.stderr}")
        result = ssh_run(self.server, "admin", ["whoami"], options=["HostKeyAlgorithms=rsa-sha2-512"])
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_behind_proxy(self) -> None:
        """
        Behind the PROXY protocol (C{--ssh haproxy:tcp:...}), the real client, connecting through a
        C{ProxyCommand} that sends the header, logs in, and the login is logged with the client the header names.
        """
        server = ServerProcess(
            self, self.directory, ["--store", self.store, "--auth", "file:passwd", "--admin", "admin"], ssh=True
        )
        server.args = [arg.replace("tcp:", "haproxy:tcp:", 1) if arg.startswith(f"tcp:{server.ssh_port}:") else arg
                       for arg in server.args]  # fmt: skip
        server.start()
        header = "PROXY TCP4 192.0.2.9 127.0.0.1 40001 22"
        proxy = f"ProxyCommand=bash -c '(printf \"{header}\\r\\n\"; cat) | {require('nc')} 127.0.0.1 {server.ssh_port}'"
        result = ssh_run(server, "admin", ["whoami"], options=[proxy])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "admin (admin) from 192.0.2.9:40001\n")
        self.assertIn("SSH login accepted: admin from 192.0.2.9:40001 by password", server.log())

    def test_unknown_key_refused(self) -> None:
        """
        A key not stored for the account is refused.
        """
        key = make_key(self.directory, "ed25519")
        result = ssh_run(self.server, "alice", ["whoami"], key=key)
        self.assertEqual(result.returncode, 255)
        self.assertIn("Permission denied", result.stderr)

    def test_no_account_refused_clearly(self) -> None:
        """
        A login with a password but no account in the store gets a clear message and exit 1.
        """
        run_tool("passwd", "carol", "--file", os.path.join(self.directory, "passwd"), "--rounds", "4",
                 "--password-stdin", stdin="correct horse\n")  # fmt: skip
        result = ssh_run(self.server, "carol", ["whoami"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("carol has no account in the user store", result.stderr)


class ExecTests(SSHServerTestCase):
    """
    C{ssh host COMMAND}: plain output, exit codes, live edits seen by finger.
    """

    def test_set_then_finger(self) -> None:
        """
        C{ssh admin@host set alice status "In a meeting"} changes what the next raw finger query shows, though
        the answer before it was kept and sent again (the second query is answered as it is accepted).
        """
        before = self.server.finger(b"alice\r\n")
        self.assertEqual(self.server.finger(b"alice\r\n"), before)
        self.assertNotIn(b"In a meeting", before)
        result = ssh_run(self.server, "admin", ["set", "alice", "status", '"In a meeting"'])
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertIn(b"In a meeting", self.server.finger(b"alice\r\n"))

    def test_set_without_field_as_brief_shows(self) -> None:
        """
        C{ssh admin@host set alice "In a meeting"} (no field name) sets the status.
        """
        result = ssh_run(self.server, "admin", ["set", "alice", "In a meeting"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"Status: In a meeting", self.server.finger(b"alice\r\n"))

    def test_exit_codes(self) -> None:
        """
        A failing command exits 1 with the error on stderr and nothing on stdout; output has no escape codes.
        """
        result = ssh_run(self.server, "admin", ["set", "nobody", "status", "x"])
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr, "error: no such user: nobody\n")
        listing = ssh_run(self.server, "admin", ["who"])
        self.assertEqual(listing.returncode, 0)
        self.assertIn("alice", listing.stdout)
        self.assertNotIn("\x1b", listing.stdout)

    def test_user_cannot_edit_others(self) -> None:
        """
        A user who tries to change someone else's status is refused and nothing changes.
        """
        result = ssh_run(self.server, "bob", ["set", "alice", "status", "pwned"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("permission denied", result.stderr)
        self.assertNotIn(b"pwned", self.server.finger(b"alice\r\n"))

    def test_plan_from_stdin(self) -> None:
        """
        C{ssh host plan < file} sets the plan from standard input.
        """
        result = ssh_run(self.server, "alice", ["plan"], stdin="Learn to fly.\nThen land.\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        answer = self.server.finger(b"alice\r\n")
        self.assertIn(b"Learn to fly.\r\nThen land.", answer)


class HostKeyTests(SSHServerTestCase):
    """
    Host keys on disk.
    """

    def test_keys_private_reused_and_fingerprint_logged(self) -> None:
        """
        Private host keys are 0600; the logged fingerprint matches C{ssh-keygen -lf}; a restart reuses them.
        """
        keys = Path(self.directory) / "keys"
        for name in ("ssh_host_ed25519_key", "ssh_host_rsa_key"):
            self.assertEqual(key_file_mode(keys / name), 0o600)
        printed = subprocess.run(
            [require("ssh-keygen"), "-lf", str(keys / "ssh_host_ed25519_key.pub")], capture_output=True, text=True
        ).stdout.split()[1]
        self.assertIn(printed, self.server.log())
        before = (keys / "ssh_host_ed25519_key").read_bytes()
        self.server.stop()
        again = ServerProcess(self, self.directory, ["--store", self.store, "--auth", "file:passwd"], ssh=True).start()
        self.assertEqual((keys / "ssh_host_ed25519_key").read_bytes(), before)
        self.assertEqual(ssh_run(again, "admin", ["whoami"]).returncode, 0)


class InteractiveTests(SSHServerTestCase):
    """
    The shell in a real terminal: tmux running C{ssh -tt}.
    """

    def shell(self, login: str = "admin", width: int = 100) -> Tmux:
        """
        Log in interactively and wait for the prompt.
        """
        term = Tmux(self, [*ssh_args(self.server, login), "-tt"], width=width)
        term.wait_for(f"{login}@")
        return term

    def test_history_up(self) -> None:
        """
        Up recalls the previous command, which runs again with Enter.
        """
        term = self.shell()
        term.type("finger bob")
        term.keys("Enter")
        term.wait_for("Login: bob")
        term.type("whoami")
        term.keys("Enter")
        term.wait_for("admin (admin)")
        term.keys("Up", "Up")
        term.wait_for("> finger bob")
        term.keys("C-u")
        term.keys("C-r")
        term.type("fin")
        term.wait_for("(reverse-i-search)`fin': finger bob")
        term.keys("Enter")
        term.wait_for("Login: bob")
        term.type("quit")
        term.keys("Enter")
        time.sleep(0.5)
        again = self.shell()
        again.keys("Up")
        again.wait_for("> quit")
        again.keys("Up")
        again.wait_for("> finger bob")

    def test_tab_completes_login(self) -> None:
        """
        Tab completes a login after C{finger}.
        """
        term = self.shell()
        term.type("finger al")
        term.keys("Tab")
        term.wait_for("> finger alice")
        term.keys("Enter")
        term.wait_for("Alice Liddell")

    def test_utf8_status_round_trip(self) -> None:
        """
        A UTF-8 status typed in the shell is stored and comes back from finger intact.
        """
        term = self.shell("alice")
        term.type("status Café 中文 ✓")
        term.keys("Enter")
        term.wait_for("status of alice set")
        self.assertIn("Café 中文 ✓".encode(), self.server.finger(b"alice\r\n"))

    def test_resize(self) -> None:
        """
        After a resize a long line is re-wrapped to the new width and still edits and runs correctly.
        """
        term = self.shell(width=100)
        long_status = "#" * 70
        term.type(f"status {long_status}")
        term.wait_for(long_status)
        term.resize(40, 30)
        time.sleep(0.5)
        screen = term.screen()
        # Redrawn once, wrapped at 40 columns: no stale copy of the line is left behind.
        self.assertEqual(screen.count("#"), 70, screen)
        self.assertIn("#" * 40, screen)
        term.keys("C-a")
        term.keys("C-k")
        term.type("status narrow")
        term.keys("Enter")
        term.wait_for("status of admin set")
        self.assertIn(b"Status: narrow", self.server.finger(b"admin\r\n"))
        self.assertTrue(re.search(r"status of admin set", term.screen()))


class ManholeIntegrationTests(SSHServerTestCase):
    """
    The Python manhole through the real OpenSSH client in a real terminal.
    """

    def test_admin_sets_status_and_awaits(self) -> None:
        """
        C{ssh -tt admin@host manhole}: C{users[...] = ...} changes what finger shows, C{await} of a store call
        prints its result, and the audit trail holds the change and the typed lines.
        """
        term = Tmux(self, [*ssh_args(self.server, "admin"), "-tt", "manhole"])
        term.wait_for("\n>>>")
        term.type('users["alice"] = "Happy and well"')
        term.keys("Enter")
        deadline = time.monotonic() + 5
        while b"Happy and well" not in self.server.finger(b"alice\r\n"):
            self.assertLess(time.monotonic(), deadline, "the status never reached finger")
            time.sleep(0.05)
        term.type('(await store.get("alice")).status')
        term.keys("Enter")
        term.wait_for("'Happy and well'")
        term.keys("C-d")
        time.sleep(0.5)
        audit = run_tool("audit", "20", "--store", self.store).stdout
        self.assertIn("admin/manhole@127.0.0.1:", audit)
        self.assertIn("alice.status: 'Down the rabbit hole' -> 'Happy and well'", audit)
        self.assertIn(""">>> users["alice"] = "Happy and well\"""", audit)

    def test_non_admin_refused(self) -> None:
        """
        A user who asks for the manhole is refused with a clear line, exit status 1, and the attempt is logged.
        """
        result = subprocess.run(
            [*ssh_args(self.server, "bob"), "-tt", "manhole"], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("only admins may use the manhole", result.stdout)
        self.assertIn("Manhole refused to non-admin bob", self.server.log())
