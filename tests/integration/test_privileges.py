"""
Running as root: twistd binds a privileged port, sheds privileges with C{-u/-g}, and the store stays writable.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.process import REPO, ServerProcess, run_tool
from tests.sshclient import setup_site, ssh_run


def free_privileged_port() -> int:
    """
    A free TCP port below 1024 on 127.0.0.1 (79 when it is free).
    """
    for port in (79, *range(700, 1000)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                if e.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            return port
    raise SkipTest("no free port below 1024")


def system_user(case: SynchronousTestCase) -> pwd.struct_passwd:
    """
    Create a system user and group of its own for the test, as the README's recipe does (removed at the end).
    """
    if shutil.which("useradd") is None:
        raise SkipTest("useradd is missing")
    name = f"sshf-test-{os.getpid()}"
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
    )
    case.addCleanup(subprocess.run, ["userdel", name], check=False)
    return pwd.getpwnam(name)


class RecipeTests(SynchronousTestCase):
    """
    The README's "As root on port 79" recipe.
    """

    def test_recipe_creates_its_user(self) -> None:
        """
        The user the recipe runs as is one the recipe creates (issue 18 #20: Debian has no C{finger} user).
        """
        readme = (REPO / "README.md").read_text()
        section = readme[readme.index("### As root on port 79") :]
        block = section[section.index("```sh") : section.index("```", section.index("```sh") + 5)]
        [user] = set(re.findall(r"-u \$\(id -u (\S+)\)", block))
        self.assertRegex(block, rf"useradd --system [^\n]* {user}\n")
        self.assertLess(block.index("useradd"), block.index("twistd"))


class DropPrivilegesTests(SynchronousTestCase):
    """
    C{twistd -n -u UID -g GID sshfinger} as root.
    """

    def test_bind_then_drop(self) -> None:
        """
        The server binds a port below 1024 as root, then runs as the given user; an SSH edit is saved to the
        store it opened after the drop.
        """
        if os.geteuid() != 0:
            raise SkipTest("needs root (CI runs as root)")
        user = system_user(self)
        directory = tempfile.mkdtemp(prefix="sshfinger-root-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)  # the service user must reach its state directory inside
        setup_site(self, directory)
        # What an admin does (see the README): a state directory owned by the service user, and the passwd
        # file readable by its group, since it is re-read at every login.
        state = os.path.join(directory, "state")
        os.makedirs(state)
        store = os.path.join(state, "s.db")
        os.replace(os.path.join(directory, "s.db"), store)
        for path in (state, store):
            os.chown(path, user.pw_uid, user.pw_gid)
        passwd = os.path.join(directory, "passwd")
        os.chown(passwd, 0, user.pw_gid)
        os.chmod(passwd, 0o640)
        port = free_privileged_port()
        server = ServerProcess(
            self,
            directory,
            ["--store", store, "--auth", f"file:{passwd}", "--admin", "admin"],
            ssh=True,
            finger_port=port,
            twistd_options=["-u", str(user.pw_uid), "-g", str(user.pw_gid)],
        )
        server.start()
        assert server.process is not None
        # The ports accept (in the kernel) as soon as they are bound, a moment before twistd switches user.
        deadline = time.monotonic() + 10
        while True:
            with open(f"/proc/{server.process.pid}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            if set(uids) == {str(user.pw_uid)} or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual(set(uids), {str(user.pw_uid)})
        self.assertIn(b"Alice Liddell", server.finger(b"alice\r\n"))
        result = ssh_run(server, "admin", ["set", "alice", "status", "written-after-drop"])
        self.assertEqual(result.returncode, 0, result.stderr + server.log())
        server.stop()
        result = run_tool("show", "alice", "--store", store)
        self.assertIn("written-after-drop", result.stdout)
        self.assertEqual(os.stat(store).st_uid, user.pw_uid)
