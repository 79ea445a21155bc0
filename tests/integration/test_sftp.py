"""
End-to-end tests of the SFTP view: the installed C{twistd sshfinger} driven by OpenSSH's C{scp}, C{sftp},
C{ssh-copy-id} and C{ssh-keygen -Y sign}, and by C{sshfs} where C{/dev/fuse} exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.process import clean_env, run_tool
from tests.sshclient import COMMON, PASSWORD, make_key, require, ssh_run, start_site

#: Options of a password login for scp and sftp (sftp -b turns BatchMode on, which forbids passwords).
PASSWORD_AUTH = ["-o", "BatchMode=no", "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]


class SFTPTestCase(SynchronousTestCase):
    """
    One server per test, with the demo accounts (admin, alice, bob) and a passwd file.
    """

    def setUp(self) -> None:
        """
        Build the site and start the server.
        """
        self.directory, self.store, self.server = start_site(self)

    def path(self, name: str, content: bytes | None = None) -> str:
        """
        A local file of the test (written if C{content} is given).
        """
        path = os.path.join(self.directory, name)
        if content is not None:
            Path(path).write_bytes(content)
        return path

    def client(self, tool: str, args: Sequence[str], key: str | None = None, stdin: str = "",
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """
        Run C{scp} or C{sftp} against the server, by password (sshpass) or with C{key}.
        """
        port = ["-P", str(self.server.ssh_port)]
        if key is not None:
            auth = ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            command = [require(tool), *port, *COMMON, *auth, *args]
        else:
            command = [require("sshpass"), "-p", PASSWORD, require(tool), *port, *COMMON, *PASSWORD_AUTH, *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, env=env or clean_env())

    def sftp_batch(self, login: str, commands: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        """
        Run C{sftp -b -} with C{commands} as C{login}.
        """
        return self.client("sftp", ["-b", "-", f"{login}@127.0.0.1"], key, stdin=commands)

    def finger(self, login: str) -> str:
        """
        The finger answer for C{login}.
        """
        return self.server.finger(f"{login}\r\n".encode()).decode()

    def install_key(self, login: str, private: str) -> None:
        """
        Put a key into C{.ssh/authorized_keys} over SFTP (by password).
        """
        result = self.sftp_batch(login, f"put {private}.pub .ssh/authorized_keys\n")
        self.assertEqual(result.returncode, 0, result.stderr)


class CopyTests(SFTPTestCase):
    """
    scp and sftp on the account's files.
    """

    def test_scp_round_trip(self) -> None:
        """
        C{scp FILE alice@host:plan} exits 0 and finger shows it at once; a shorter upload leaves no stale
        bytes; C{scp alice@host:plan .} gives back the same bytes.
        """
        long = self.path("long.txt", "first line\nsecond, rather longer line — ü\n".encode())
        result = self.client("scp", [long, "alice@127.0.0.1:plan"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("second, rather longer line", self.finger("alice"))
        short = self.path("short.txt", b"short\n")
        result = self.client("scp", [short, "alice@127.0.0.1:plan"])
        self.assertEqual(result.returncode, 0, result.stderr)
        answer = self.finger("alice")
        self.assertIn("Plan:\r\nshort\r\n", answer)
        self.assertNotIn("line", answer)
        back = self.path("back.txt")
        result = self.client("scp", ["alice@127.0.0.1:plan", back])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(Path(back).read_bytes(), b"short\n")
        self.assertRegex(self.server.log(), r"SFTP write of /plan by alice committed")

    def test_legacy_scp_refused(self) -> None:
        """
        C{scp -O} (the legacy protocol) is refused with one line suggesting plain scp; the plan is unchanged.
        """
        source = self.path("p.txt", b"legacy\n")
        result = self.client("scp", ["-O", source, "alice@127.0.0.1:plan"])
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("use plain scp", result.stderr)
        self.assertNotIn("legacy", self.finger("alice"))

    def test_sftp_batch(self) -> None:
        """
        C{sftp -b}: ls, put, an editor-style save (put a temporary name, rename it over C{plan}) and get all
        exit 0, and finger shows the saved plan.
        """
        self.path("draft.txt", b"saved through a temporary file\n")
        commands = (
            f"ls -l\nput {self.path('draft.txt')} .plan.swp\nls -la\nrename .plan.swp plan\n"
            f"get plan {self.path('got.txt')}\nput {self.path('draft.txt')} status\nls\n"
        )
        result = self.sftp_batch("alice", commands)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(".plan.swp", result.stdout)
        self.assertRegex(result.stdout, r"-rw------- .* alice .* plan\n")
        self.assertEqual(Path(self.path("got.txt")).read_bytes(), b"saved through a temporary file\n")
        answer = self.finger("alice")
        self.assertIn("Plan:\r\nsaved through a temporary file\r\n", answer)
        self.assertIn("Status: saved through a temporary file", answer)

    def test_other_accounts(self) -> None:
        """
        Alice can neither read nor write bob's files (refused with a status, bob unchanged, the session goes
        on); the admin can, under C{users/bob}.
        """
        evil = self.path("evil.txt", b"owned\n")
        for command in ("get users/bob/plan", f"put {evil} users/bob/plan", f"put {evil} ../bob/plan",
                        "get /etc/passwd", "get ../../etc/passwd", "symlink plan link"):  # fmt: skip
            result = self.sftp_batch("alice", f"{command}\nls\n")
            self.assertEqual(result.returncode, 1, command)
            self.assertNotIn("Connection closed", result.stderr)
        self.assertNotIn("owned", self.finger("bob"))
        result = self.sftp_batch("admin", f"put {evil} users/bob/plan\nls users\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Plan:\r\nowned\r\n", self.finger("bob"))

    def test_oversized(self) -> None:
        """
        A file larger than the limit is refused with a status, and the plan is unchanged.
        """
        big = self.path("big.txt", b"x" * 100_000)
        result = self.client("scp", [big, "alice@127.0.0.1:plan"])
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("xxxx", self.finger("alice"))


class KeyTests(SFTPTestCase):
    """
    C{ssh-copy-id -s} and plans signed with the login key.
    """

    def test_ssh_copy_id(self) -> None:
        """
        C{ssh-copy-id -s -i key.pub alice@host} with a password installs the key; C{ssh -i key} then works.
        """
        private = make_key(self.directory, "ed25519")
        home = tempfile.mkdtemp(prefix="h", dir="/tmp")  # ssh-copy-id's control socket lives under ~/.ssh
        self.addCleanup(shutil.rmtree, home, True)
        os.makedirs(os.path.join(home, ".ssh"))
        env = {**clean_env(), "HOME": home}
        command = [require("sshpass"), "-p", PASSWORD, require("ssh-copy-id"), "-s", "-i", private + ".pub",
                   "-p", str(self.server.ssh_port), *COMMON, "alice@127.0.0.1"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("Number of key(s) added: 1", result.stdout + result.stderr)
        login = ssh_run(self.server, "alice", ["whoami"], key=private)
        self.assertEqual(login.returncode, 0, login.stderr)
        self.assertRegex(login.stdout, r"^alice \(user\)")

    def test_key_options(self) -> None:
        """
        A key with C{from="127.0.0.2"} logs in from 127.0.0.2 and is refused from 127.0.0.1 (the reason is
        logged); an C{authorized_keys} line with an option sshfinger cannot honour is refused, keys unchanged.
        """
        private = make_key(self.directory, "ed25519")
        public = Path(private + ".pub").read_text().strip()
        lines = self.path("authorized_keys", f'from="127.0.0.2" {public}\n'.encode())
        result = self.sftp_batch("alice", f"put {lines} .ssh/authorized_keys\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        allowed = ssh_run(self.server, "alice", ["whoami"], key=private, bind="127.0.0.2")
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        refused = ssh_run(self.server, "alice", ["whoami"], key=private, bind="127.0.0.1")
        self.assertEqual(refused.returncode, 255)
        self.assertIn("the key is not allowed from 127.0.0.1 (from=)", self.server.log())
        bad = self.path("bad_keys", f'command="/bin/sh" {public}\n'.encode())
        result = self.sftp_batch("alice", f"put {bad} .ssh/authorized_keys\n")
        self.assertNotEqual(result.returncode, 0)
        listing = self.client("scp", ["alice@127.0.0.1:.ssh/authorized_keys", self.path("back_keys")])
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertEqual(Path(self.path("back_keys")).read_text(), f'from="127.0.0.2" {public}\n')

    def sign(self, private: str, plan: str) -> str:
        """
        Sign C{plan} with the real C{ssh-keygen -Y sign}; return the C{.sig} path.
        """
        subprocess.run(
            [require("ssh-keygen"), "-Y", "sign", "-f", private, "-n", "sshfinger-plan", plan],
            check=True, capture_output=True,
        )  # fmt: skip
        return plan + ".sig"

    def test_signed_plan(self) -> None:
        """
        A plan signed with alice's key shows as signed in finger and verifies (shell and CLI); a signature of
        another text or by bob's key is refused; an edit after signing, or removing the key, drops the mark.
        """
        private = make_key(self.directory, "ed25519")
        self.install_key("alice", private)
        os.makedirs(self.path("bob"))
        bob = make_key(self.path("bob"), "ed25519")
        plan = self.path("plan", b"signed plan\n")
        signature = self.sign(private, plan)
        result = self.client("scp", [plan, signature, "alice@127.0.0.1:"], key=private)
        self.assertEqual(result.returncode, 0, result.stderr)
        answer = self.finger("alice")
        self.assertRegex(answer, r"signed plan\r\nPlan signed with ED25519 key SHA256:[A-Za-z0-9+/]{43}\r\n")
        verify = ssh_run(self.server, "alice", ["verify", "alice"], key=private)
        self.assertEqual(verify.returncode, 0, verify.stderr)
        self.assertIn("alice: Plan signed with ED25519 key SHA256:", verify.stdout)
        time.sleep(1.2)  # the offline tool reads the file the server wrote
        tool = run_tool("verify", "alice", "--store", self.store)
        self.assertEqual((tool.returncode, tool.stdout), (0, verify.stdout))

        bob_plan = self.path("bob/plan", b"signed plan\n")
        refused = self.client("scp", [self.sign(bob, bob_plan), "alice@127.0.0.1:plan.sig"], key=private)
        self.assertNotEqual(refused.returncode, 0)
        os.makedirs(self.path("other"))
        tampered = self.sign(private, self.path("other/plan", b"signed plan, tampered\n"))
        refused = self.client("scp", [tampered, "alice@127.0.0.1:plan.sig"], key=private)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("Plan signed with", self.finger("alice"))  # the good signature stays

        edited = self.path("edited", b"signed plan, edited\n")
        result = self.client("scp", [edited, "alice@127.0.0.1:plan"], key=private)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Plan signed with", self.finger("alice"))
        self.assertEqual(ssh_run(self.server, "alice", ["verify"], key=private).returncode, 1)
        old_signature = self.client("scp", [signature, "alice@127.0.0.1:plan.sig"], key=private)
        self.assertNotEqual(old_signature.returncode, 0)

        piped = subprocess.run(
            ["sh", "-c", f"cat {plan} {signature}"], capture_output=True, text=True, check=True
        ).stdout
        result = ssh_run(self.server, "alice", ["plan", "--signature"], key=private, stdin=piped)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Plan signed with", self.finger("alice"))
        self.assertEqual(self.sftp_batch("alice", "rm .ssh/authorized_keys\n").returncode, 1)
        empty = self.path("empty", b"")
        result = self.sftp_batch("alice", f"put {empty} .ssh/authorized_keys\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Plan signed with", self.finger("alice"))


class SSHFSTests(SFTPTestCase):
    """
    The account mounted with sshfs.
    """

    def test_sshfs(self) -> None:
        """
        Through sshfs: C{cat}, an editor-style save (write a temporary file, rename it over C{plan}), a direct
        write with C{fsync} and C{ls -l} work, and finger shows both at once.
        """
        if not os.path.exists("/dev/fuse"):
            raise SkipTest("no /dev/fuse on this machine")
        sshfs = shutil.which("sshfs")
        unmount = shutil.which("fusermount3") or shutil.which("fusermount")
        if sshfs is None or unmount is None:
            raise AssertionError("sshfs is not installed: run the tests with 'make test' (it installs it)")
        private = make_key(self.directory, "ed25519")
        self.install_key("alice", private)
        mount = self.path("mnt")
        os.makedirs(mount)
        options = (f"IdentityFile={private},IdentitiesOnly=yes,BatchMode=yes,StrictHostKeyChecking=no,"
                   "UserKnownHostsFile=/dev/null")  # fmt: skip
        subprocess.run(
            [sshfs, "-p", str(self.server.ssh_port), "-o", options, "alice@127.0.0.1:", mount],
            check=True, timeout=30, env=clean_env(),
        )  # fmt: skip
        self.addCleanup(subprocess.run, [unmount, "-u", mount], timeout=30)
        self.assertEqual(Path(mount, "name").read_text(), "Alice Liddell\n")
        Path(mount, ".plan.swp").write_text("saved by an editor\n")
        os.rename(os.path.join(mount, ".plan.swp"), os.path.join(mount, "plan"))
        self.assertEqual(Path(mount, "plan").read_text(), "saved by an editor\n")
        with open(os.path.join(mount, "status"), "w") as status:
            status.write("mounted\n")
            status.flush()
            os.fsync(status.fileno())  # fsync@openssh.com: committed now (sshfs sends the close after close(2))
        self.assertEqual(Path(mount, "status").read_text(), "mounted\n")
        listing = subprocess.run(["ls", "-l", mount], capture_output=True, text=True, check=True).stdout
        self.assertRegex(listing, r"-rw------- .* 19 .* plan\n")
        answer = self.finger("alice")
        self.assertIn("Plan:\r\nsaved by an editor\r\n", answer)
        self.assertIn("Status: mounted", answer)
