"""
Password changes against the installed server (issue 18 #3, #17): changes made at the same moment by the server's
C{passwd} command and the C{sshfinger passwd} tool are all kept, and a short password is refused by both.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ssh import passwd
from tests.process import ServerProcess, run_tool
from tests.sshclient import make_key, setup_site, ssh_run


class PasswordChangeTests(SynchronousTestCase):
    """
    The shell's C{passwd} and the C{sshfinger passwd} tool on one passwd file.
    """

    def setUp(self) -> None:
        """
        A demo site whose admin and alice log in with keys, served with the passwd file.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = setup_site(self, self.directory)
        self.key = make_key(self.directory, "ed25519")
        for login in ("admin", "alice"):
            self.assertEqual(run_tool("key", "add", login, self.key + ".pub", "--store", self.store).returncode, 0)
        self.passwd = os.path.join(self.directory, "passwd")
        self.server = ServerProcess(
            self, self.directory, ["--store", self.store, "--auth", f"file:{self.passwd}"], ssh=True
        ).start()

    def test_simultaneous_changes_all_kept(self) -> None:
        """
        Four rounds of three changes at once (admin and alice through the server, bob through the tool): every
        acknowledged change is in the file at the end.
        """

        def change(login: str, round_: int) -> int:
            new = f"{login}-password-{round_}"
            if login == "bob":
                return run_tool("passwd", "bob", "--file", self.passwd, "--rounds", "4", "--password-stdin",
                                stdin=new + "\n").returncode  # fmt: skip
            return ssh_run(self.server, login, ["passwd"], key=self.key, stdin=new + "\n").returncode

        for round_ in range(4):
            with ThreadPoolExecutor(3) as pool:
                codes = list(pool.map(change, ["admin", "alice", "bob"], [round_] * 3))
            self.assertEqual(codes, [0, 0, 0])
        with open(self.passwd, "rb") as f:
            entries = passwd.parse(f.read())
        for login in ("admin", "alice", "bob"):
            self.assertTrue(bcrypt.checkpw(f"{login}-password-3".encode(), entries[login].secret), login)

    def test_short_password_refused(self) -> None:
        """
        A password under 10 characters is refused by the server's passwd and by the tool, with one line; the
        file keeps the old one.
        """
        result = ssh_run(self.server, "alice", ["passwd"], key=self.key, stdin="short\n")
        self.assertEqual(result.returncode, 1)
        self.assertIn("at least 10 characters", result.stdout + result.stderr)
        tool = run_tool("passwd", "bob", "--file", self.passwd, "--password-stdin", stdin="short\n")
        self.assertEqual(tool.returncode, 1)
        self.assertEqual(tool.stderr, "sshfinger: error: password too short: at least 10 characters required\n")
        with open(self.passwd, "rb") as f:
            entries = passwd.parse(f.read())
        self.assertTrue(bcrypt.checkpw(b"correct horse", entries["alice"].secret))
        self.assertTrue(bcrypt.checkpw(b"correct horse", entries["bob"].secret))
