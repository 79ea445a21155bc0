"""
The installed server's anonymous finger answers never reveal who is an admin (issue 18 #6).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, run_tool


class AnonymousFingerTests(SynchronousTestCase):
    """
    C{finger admin}, C{finger -l admin} (C{/W}) and the record of an account an admin edited.
    """

    def test_no_roles_or_editors(self) -> None:
        """
        Over a real socket, neither the plain nor the C{/W} answer names a role or who made the last change
        (here C{root}, from the CLI); the verbose fields themselves are there.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        store = os.path.join(directory, "s.db")
        self.assertEqual(run_tool("init", "--store", store).returncode, 0)
        self.assertEqual(run_tool("set", "alice", "status", "Tea", "--store", store).returncode, 0)
        server = ServerProcess(self, directory, ["--store", store]).start()
        for query in (b"admin\r\n", b"/W admin\r\n", b"alice\r\n", b"/W alice\r\n"):
            answer = server.finger(query)
            self.assertIn(b"Login: ", answer, query)
            self.assertNotIn(b"Role:", answer, query)
            self.assertNotIn(b" by ", answer, query)
        self.assertIn(b"Office: ", server.finger(b"/W alice\r\n"))
        self.assertIn(b"Status: Tea", server.finger(b"/W alice\r\n"))
