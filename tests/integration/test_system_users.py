"""
C{twistd sshfinger --system-users} as root, against real system accounts created for the test (C{useradd}): the
classic fingerd service, and its classic hole (a C{.plan} linked to C{/etc/shadow}, a FIFO) closed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.process import ServerProcess


def free_uid() -> int:
    """
    A UID in the normal users' range that no account has.
    """
    for uid in range(59000, 60000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise SkipTest("no free UID in 59000-59999")


class SystemUsersTests(SynchronousTestCase):
    """
    The installed server serving system users.
    """

    def add_user(self, name: str, gecos: str) -> pwd.struct_passwd:
        """
        Create a system account with a home directory (removed with it at the end).
        """
        subprocess.run(["useradd", "--create-home", "--uid", str(free_uid()), "--comment", gecos, name], check=True)
        self.addCleanup(subprocess.run, ["userdel", "--remove", name], check=False, capture_output=True)
        return pwd.getpwnam(name)

    def write(self, user: pwd.struct_passwd, name: str, content: str) -> None:
        """
        Write one of C{user}'s dot files, owned by them.
        """
        path = os.path.join(user.pw_dir, name)
        with open(path, "w") as f:
            f.write(content)
        os.chown(path, user.pw_uid, user.pw_gid)

    def test_plans_served_hostile_files_refused(self) -> None:
        """
        A normal user's GECOS name, C{.project} and C{.plan} are served by finger; another's C{.plan} linked to
        C{/etc/shadow} and FIFO C{.project} are refused and logged, and start-up does not wait on the FIFO.
        """
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            raise SkipTest("needs root and useradd (CI runs as root)")
        suffix = os.getpid()
        alice = self.add_user(f"sysalice{suffix}", "Alice System,Room 101,555-0101")
        self.write(alice, ".plan", "Read the classic plan.\x1b[2J\n")
        self.write(alice, ".project", "Project X")
        mallory = self.add_user(f"sysmallory{suffix}", "Mallory System")
        os.symlink("/etc/shadow", os.path.join(mallory.pw_dir, ".plan"))
        os.mkfifo(os.path.join(mallory.pw_dir, ".project"))
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        server = ServerProcess(self, directory, ["--store", "memory", "--system-users"]).start()
        deadline = time.monotonic() + 20
        answer = b""
        while b"Read the classic plan." not in answer and time.monotonic() < deadline:
            answer = server.finger(f"{alice.pw_name}\r\n".encode())
            time.sleep(0.1)
        self.assertIn(b"Alice System", answer)
        self.assertIn(b"Project X", answer)
        self.assertIn(b"Read the classic plan.", answer)
        self.assertNotIn(b"\x1b", answer)
        answer = server.finger(f"{mallory.pw_name}\r\n".encode())
        self.assertIn(b"Mallory System", answer)
        self.assertNotIn(b"root:", answer)
        log = server.log()
        self.assertIn(f"skipped {mallory.pw_name}'s .plan is a symbolic link", log)
        self.assertIn(f"skipped {mallory.pw_name}'s .project is not a regular file", log)
        self.assertNotIn("Traceback", log)
