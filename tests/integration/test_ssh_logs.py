"""
What the installed server logs about SSH clients (issue 18 #9, #14, #15, #21, #11): peer-supplied text escaped on
one line, every event with its peer, connection id and login, refused port forwarding as one info line, and a
host key that is not a regular file refused at start-up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, clean_env, run_tool, venv_tool
from tests.sshclient import make_key, setup_site, ssh_args, ssh_run

#: A Conch client that tries one password login with a hostile login name, client version and goodbye.
HOSTILE_CLIENT = r"""
import sys
from twisted.conch.ssh import connection, transport, userauth
from twisted.internet import defer, protocol, reactor

LOGIN = b"admin\nSSH login accepted: admin from 203.0.113.9\x1b[2J\r"

class Auth(userauth.SSHUserAuthClient):
    tried = False
    def getPassword(self, prompt=None):
        if self.tried:
            return None
        self.tried = True
        return defer.succeed(b"wrong-password")
    def getPublicKey(self):
        return None

class Client(transport.SSHClientTransport):
    ourVersionString = b"SSH-2.0-Evil\x1b]0;pwned\x07"
    def verifyHostKey(self, key, fingerprint):
        return defer.succeed(True)
    def connectionSecure(self):
        self.requestService(Auth(LOGIN, connection.SSHConnection()))
    def receiveError(self, code, description):
        pass
    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()

factory = protocol.ClientFactory()
factory.protocol = Client
reactor.connectTCP("127.0.0.1", int(sys.argv[1]), factory)
reactor.callLater(8, lambda: reactor.running and reactor.stop())
reactor.run()
"""


class SSHLogTests(SynchronousTestCase):
    """
    The server's log of SSH connections, read from its output.
    """

    def setUp(self) -> None:
        """
        A demo site with an admin key and the passwd file, served with SSH.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = setup_site(self, self.directory)
        self.key = make_key(self.directory, "ed25519")
        self.assertEqual(run_tool("key", "add", "admin", self.key + ".pub", "--store", self.store).returncode, 0)
        passwd = os.path.join(self.directory, "passwd")
        self.server = ServerProcess(
            self, self.directory, ["--store", self.store, "--admin", "admin", "--auth", f"file:{passwd}"], ssh=True
        ).start()

    def wait_for(self, pattern: str, timeout: float = 10.0) -> str:
        """
        Wait until the log matches C{pattern}; return the log.
        """
        deadline = time.monotonic() + timeout
        while True:
            log = self.server.log()
            if re.search(pattern, log):
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never logged:\n{log}")
            time.sleep(0.1)

    def test_hostile_login_stays_on_one_escaped_line(self) -> None:
        """
        A login name holding a newline, a carriage return and an escape sequence (sent by a Conch client; the
        OpenSSH client refuses to) is logged on one line, escaped; no forged line appears; nor does the raw
        client version's escape sequence.
        """
        subprocess.run(
            [sys.executable, "-c", HOSTILE_CLIENT, str(self.server.ssh_port)], env=clean_env(), timeout=30,
            capture_output=True,
        )  # fmt: skip
        log = self.wait_for(r"SSH connection closed: 127\.0\.0\.1:\d+ \[ssh-\d+\] \(login admin\\n")
        refused = [line for line in log.splitlines() if "SSH login refused" in line]
        self.assertEqual(len(refused), 1, log)
        self.assertIn(
            "SSH login refused: admin\\nSSH login accepted: admin from 203.0.113.9\\x1b[2J\\r from 127.0.0.1:",
            refused[0],
        )
        self.assertFalse([line for line in log.splitlines() if re.match(r"SSH login accepted: admin from 203", line)])
        self.assertNotIn("\x1b", log)
        self.assertNotIn("\r", log)

    def test_events_carry_peer_connection_and_login(self) -> None:
        """
        A key login's accepted line, the client's goodbye and the close all name the peer, the same connection
        id and the login; the accepted line of a password login does not end in a space.
        """
        result = ssh_run(self.server, "admin", ["whoami"], key=self.key)
        self.assertEqual(result.returncode, 0, result.stderr)
        log = self.wait_for(r"SSH connection closed: .*\(login admin\)")
        conn = re.search(r"SSH login accepted: admin from 127\.0\.0\.1:\d+ by publickey SHA256:\S+ \[(ssh-\d+)\]", log)
        self.assertIsNotNone(conn, log)
        assert conn is not None
        self.assertRegex(log, rf"SSH client disconnected: disconnected by user \(admin from 127\.0\.0\.1:\d+ \[{conn.group(1)}\]\)")
        self.assertRegex(log, rf"SSH connection closed: 127\.0\.0\.1:\d+ \[{conn.group(1)}\] \(login admin\)")
        self.assertNotRegex(log, r"\] connection lost$")
        result = ssh_run(self.server, "alice", ["whoami"], password="correct horse")
        self.assertEqual(result.returncode, 0, result.stderr)
        log = self.wait_for(r"SSH login accepted: alice from .* by password")
        self.assertRegex(log, r"SSH login accepted: alice from 127\.0\.0\.1:\d+ by password \[ssh-\d+\]\n")

    def test_refused_port_forward(self) -> None:
        """
        A port-forwarding channel (C{ssh -W}, as C{-L} and C{-D} open) is refused with one info line naming the
        channel type, the login and the peer: no CRITICAL, no traceback.
        """
        command = [*ssh_args(self.server, "admin", key=self.key), "-W", "127.0.0.1:79"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=clean_env(),
                                stdin=subprocess.DEVNULL)  # fmt: skip
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("forwarding failed", result.stderr)
        log = self.wait_for(r"SSH channel direct-tcpip refused")
        self.assertRegex(
            log, r"\[sshfinger\.ssh\.server\.SSHConnection#info\] SSH channel direct-tcpip refused for admin from "
            r"127\.0\.0\.1:\d+ \[ssh-\d+\]: not offered"
        )  # fmt: skip
        self.assertNotIn("CRITICAL", log)
        self.assertNotIn("critical", log)
        self.assertNotIn("Traceback", log)
        self.assertNotIn("channel open failed", log)


class HostKeyStartupTests(SynchronousTestCase):
    """
    Start-up with a host key file that is not a regular file.
    """

    def test_fifo_host_key(self) -> None:
        """
        A FIFO in place of the ed25519 host key stops twistd at once with a line naming it (it used to wait for
        a writer for ever).
        """
        directory = os.path.abspath(self.mktemp())
        keys = os.path.join(directory, "keys")
        os.makedirs(keys)
        os.mkfifo(os.path.join(keys, "ssh_host_ed25519_key"), 0o600)
        started = time.monotonic()
        result = subprocess.run(
            [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", "--store", "memory", "--keys", keys,
             "--finger", "tcp:0", "--ssh", "tcp:0"],
            capture_output=True, text=True, timeout=30, env=clean_env(), cwd=directory,
        )  # fmt: skip
        self.assertLess(time.monotonic() - started, 20)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ssh_host_ed25519_key is not a regular file", result.stdout + result.stderr)
