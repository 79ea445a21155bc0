"""
RFC 1288 as admins know it, against the installed server (issue 23 §3): Debian's C{finger -l @host}, real-name
matching and one-hop forwarding to an allowed loopback finger server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, free_port, run_tool


def port_free(port: int) -> bool:
    """
    Whether nothing listens on C{port} of 127.0.0.1.
    """
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class RFCTests(SynchronousTestCase):
    """
    Long entries, real names, forwarding.
    """

    def setUp(self) -> None:
        """
        A demo store (admin, alice) plus bob.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = os.path.join(self.directory, "s.db")
        for args in (("init",), ("add", "bob", "Bob Bookbinder")):
            result = run_tool(*args, "--store", self.store)
            self.assertEqual(result.returncode, 0, result.stderr)

    def test_debian_finger_long_entries(self) -> None:
        """
        Debian's C{finger -l @127.0.0.1} (port 79, so as root) prints the long entry of every visible account.
        """
        if shutil.which("finger") is None or os.geteuid() != 0:
            raise self.skipTest("needs Debian's finger client and root (port 79)")
        if not port_free(79):
            raise self.skipTest("port 79 is in use")
        ServerProcess(self, self.directory, ["--store", self.store], finger_port=79).start()
        out = subprocess.run(["finger", "-l", "@127.0.0.1"], capture_output=True, text=True, timeout=30).stdout
        for login in ("admin", "alice", "bob"):
            self.assertIn(f"Login: {login}", out)
        self.assertIn("Office: ", out)
        self.assertNotIn("Role:", out)

    def test_real_names_and_exact(self) -> None:
        """
        C{liddell} finds Alice Liddell; with C{--exact} it finds nobody.
        """
        server = ServerProcess(self, self.directory, ["--store", self.store]).start()
        self.assertIn(b"Login: alice", server.finger(b"liddell\r\n"))
        self.assertIn(b"Login: bob", server.finger(b"BOOKBINDER\r\n"))
        server.stop()
        exact = ServerProcess(self, self.directory, ["--store", self.store, "--exact"]).start()
        self.assertEqual(exact.finger(b"liddell\r\n"), b"finger: liddell: no such user.\r\n")

    def test_forwarding(self) -> None:
        """
        With C{--forward 127.0.0.1:PORT}, C{bob@127.0.0.1} is answered by the server on PORT under a
        C{[127.0.0.1]} line and logged; any other host and two hops are refused.
        """
        other = os.path.join(self.directory, "other")
        os.makedirs(other)
        remote_store = os.path.join(other, "s.db")
        self.assertEqual(run_tool("init", "--store", remote_store).returncode, 0)
        self.assertEqual(run_tool("set", "alice", "status", "Far away", "--store", remote_store).returncode, 0)
        remote = ServerProcess(self, other, ["--store", remote_store]).start()
        port = free_port()
        server = ServerProcess(
            self, self.directory, ["--store", self.store, "--forward", f"127.0.0.1:{remote.finger_port}"],
            finger_port=port,
        ).start()  # fmt: skip
        answer = server.finger(b"/W alice@127.0.0.1\r\n")
        self.assertTrue(answer.startswith(b"[127.0.0.1]\r\nLogin: alice"), answer)
        self.assertIn(b"Phone: ", answer)
        self.assertIn(b"Status: Far away", answer)
        refused = b"Finger forwarding service denied\r\n"
        self.assertEqual(server.finger(b"alice@localhost\r\n"), refused)
        self.assertEqual(server.finger(b"alice@127.0.0.1@127.0.0.1\r\n"), refused)
        deadline = time.monotonic() + 5
        while "finger forward 'alice@127.0.0.1'" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("finger forward 'alice@127.0.0.1'", server.log())
