"""
The store's defects of issue 18 against the installed C{twistd sshfinger} and C{sshfinger} tool: restore while
running, outside changes followed (with pruning and a bulk import), a re-created login inheriting nothing, private
files, and a foreign database left untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, clean_env, run_tool, venv_tool, wait_until
from tests.sshclient import setup_site, ssh_args, ssh_run


class StoreServerTestCase(SynchronousTestCase):
    """
    A site (store with admin, alice and bob; passwd file) in a fresh directory, under umask 022.
    """

    def setUp(self) -> None:
        """
        Build the site.
        """
        self.addCleanup(os.umask, os.umask(0o022))
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = setup_site(self, self.directory)

    def serve(self, *args: str, ssh: bool = False) -> ServerProcess:
        """
        Start the installed server on the site's store.
        """
        options = ["--store", self.store, "--auth", "file:passwd", "--admin", "admin", *args]
        return ServerProcess(self, self.directory, options, ssh=ssh).start()

    def session(self, server: ServerProcess, login: str) -> subprocess.Popen[str]:
        """
        Open an SSH shell session (no terminal) whose commands the test writes to its standard input, and wait
        until it is logged in and working; closed at cleanup.
        """
        process = subprocess.Popen(
            ssh_args(server, login), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True, env=clean_env(),
        )  # fmt: skip

        def close() -> None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        self.addCleanup(close)
        self.send(process, f"set {login} phone 555-0100")
        wait_until(lambda: b"555-0100" in server.finger(f"/W {login}\r\n".encode()), timeout=15)
        return process

    def send(self, session: subprocess.Popen[str], line: str) -> None:
        """
        Type one command into a session.
        """
        assert session.stdin is not None
        session.stdin.write(line + "\n")
        session.stdin.flush()

    def tool(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """
        Run the installed tool on the site's store; it must succeed.
        """
        result = run_tool(*args, "--store", self.store, stdin=stdin)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result


class RestoreTests(StoreServerTestCase):
    """
    Issue 18 #1: restore is refused while a server has the store open, and works once it is stopped.
    """

    def test_restore_refused_while_running(self) -> None:
        """
        With the server running, C{sshfinger restore} exits 1 with one line and changes nothing (the server
        keeps serving edits that reach the file); stopped, the restore works and the next server serves it.
        """
        backup = os.path.join(self.directory, "backup.db")
        self.tool("set", "alice", "status", "in the backup")
        self.tool("backup", backup)
        server = self.serve()
        self.tool("set", "alice", "status", "after the backup")
        result = run_tool("restore", backup, "--store", self.store)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("open in another process", result.stderr)
        wait_until(lambda: b"after the backup" in server.finger(b"alice\r\n"), timeout=1.0, interval=0.02)
        server.stop()
        shown = json.loads(self.tool("show", "alice").stdout)[0]["status"]
        self.assertEqual(shown, "after the backup")
        self.assertIn("restored 3 accounts", self.tool("restore", backup).stdout)
        server = self.serve()
        self.assertIn(b"in the backup", server.finger(b"alice\r\n"))


class OutsideChangeTests(StoreServerTestCase):
    """
    Issue 18 #2: changes made by another process all reach the running server within a second, whatever the
    audit trail's retention.
    """

    def test_cli_edits_with_audit_keep_1(self) -> None:
        """
        With C{--audit-keep 1}, 8 rounds of a CLI edit of alice followed at once (through an open SSH session,
        before the server's next look at the file) by an SSH edit of admin: the server shows every CLI value
        within a second, and every SSH edit.
        """
        server = self.serve("--audit-keep", "1", ssh=True)
        session = self.session(server, "admin")
        for number in range(8):
            cli, ssh = f"cli-{number}".encode(), f"ssh-{number}".encode()
            self.tool("set", "alice", "status", cli.decode())
            self.send(session, f"set admin office {ssh.decode()}")
            wait_until(lambda: ssh in server.finger(b"/W admin\r\n"), timeout=1.0, interval=0.02)  # noqa: B023 (called at once)
            wait_until(lambda: cli in server.finger(b"alice\r\n"), timeout=1.0, interval=0.02)  # noqa: B023
        shown = json.loads(self.tool("show", "alice").stdout)[0]
        self.assertEqual(shown["status"], "cli-7")
        trail = self.tool("audit", "100").stdout.splitlines()
        self.assertEqual(len(trail), 1, trail)  # the server's last write pruned to exactly --audit-keep
        self.assertIn("admin.office: 'ssh-6' -> 'ssh-7'", trail[0])
        self.tool("set", "alice", "phone", "555-0199")  # the tool keeps to the server's --audit-keep too
        trail = self.tool("audit", "100").stdout.splitlines()
        self.assertEqual(len(trail), 1, trail)
        self.assertIn("alice.phone", trail[0])

    def test_bulk_import_with_audit_keep_10(self) -> None:
        """
        With C{--audit-keep 10}, 300 accounts imported by the CLI, followed at once by SSH edits of alice (which
        prune the audit trail to 10 entries before the server's next look at the file), are all listed by the
        server within a second, and an admin can edit the first and the last of them over SSH.
        """
        server = self.serve("--audit-keep", "10", ssh=True)
        session = self.session(server, "admin")
        path = os.path.join(self.directory, "people.txt")
        Path(path).write_text("".join(f"imp{number:03d}:imported {number}\n" for number in range(300)))
        self.tool("import", path)
        for number in range(12):
            self.send(session, f"set alice status after-the-import-{number}")
        seconds = wait_until(lambda: server.finger(b"\r\n").count(b"\nimp") == 300, timeout=1.0, interval=0.02)
        self.assertLess(seconds, 1.0)
        for login in ("imp000", "imp299"):
            result = ssh_run(server, "admin", ["set", login, "status", "edited"])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn(b"edited", server.finger(f"{login}\r\n".encode()))


class GrowthTests(StoreServerTestCase):
    """
    Issue 17 #8 (the store's part): one user's stream of edits cannot grow the audit trail past
    C{--audit-max-bytes}; C{doctor} reports the store's size and growth.
    """

    def test_edit_flood_bounded(self) -> None:
        """
        80 status edits of 200 characters from one login (one SSH session) leave at most 10 000 bytes of audit
        trail with C{--audit-max-bytes 10000}, where unbounded they would take about 40 000; doctor says so.
        """
        server = self.serve("--audit-max-bytes", "10000", "--edit-rate", "100000", ssh=True)
        lines = "".join(f"set bob status {number:03d}{'x' * 197}\n" for number in range(80))
        result = ssh_run(server, "bob", [], stdin=lines + "exit\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        wait_until(lambda: b"079x" in server.finger(b"bob\r\n"), timeout=10)
        doctor = run_tool("doctor", "--store", self.store, "--keys", os.path.join(self.directory, "keys"),
                          "--finger", "tcp:0", "--ssh", "tcp:0")  # fmt: skip
        [line] = [line for line in doctor.stdout.splitlines() if "audit trail" in line]
        entries, size = line.split("audit trail ")[1].split(" entries (", 1)
        amount, unit = size.split(")")[0].split()
        self.assertLessEqual(float(amount) * {"B": 1, "kB": 1000}[unit], 10000, line)
        self.assertGreater(int(entries), 5)
        self.assertRegex(line, r"grew \d+ entries .* in the last 24 h")


class RecreatedLoginTests(StoreServerTestCase):
    """
    Issue 18 #4 (the store's part): a re-created login inherits no keys, history or audit trail.
    """

    def test_new_bob_sees_nothing_of_old_bob(self) -> None:
        """
        After old bob wrote a plan and ran commands, C{del bob} and C{add bob}: old bob's password no longer logs
        in (the server removed it from the passwd file when it saw the delete); with a password of his own, the
        new bob's C{log} shows only his own account's creation, not the old plan; an admin's C{audit} still has
        everything.
        """
        server = self.serve(ssh=True)
        result = ssh_run(server, "bob", ["set", "bob", "plan", "old-bob-secret-plan"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.tool("del", "bob")
        self.tool("add", "bob", "New", "Bob")
        wait_until(lambda: b"New Bob" in server.finger(b"bob\r\n"), timeout=1.0, interval=0.02)
        wait_until(lambda: b"bob:" not in open(os.path.join(self.directory, "passwd"), "rb").read(), timeout=1.0, interval=0.02)
        self.assertEqual(ssh_run(server, "bob", ["whoami"]).returncode, 255)
        new_password = "new-bob-password"
        passwd_file = os.path.join(self.directory, "passwd")
        run_tool("passwd", "bob", "--file", passwd_file, "--rounds", "4", "--password-stdin", stdin=new_password + "\n")
        result = ssh_run(server, "bob", ["log"], password=new_password)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("old-bob-secret-plan", result.stdout)
        self.assertIn("created bob", result.stdout)
        self.assertNotIn("deleted bob", result.stdout)
        self.assertIn("old-bob-secret-plan", self.tool("audit", "--login", "bob").stdout)


class PrivateFileTests(SynchronousTestCase):
    """
    Issue 18 #7 and #10: new stores and backups are 0600 under umask 022; a store readable by others is warned
    about at start; a foreign database is refused and left byte for byte as it was.
    """

    def setUp(self) -> None:
        """
        A fresh directory, umask 022.
        """
        self.addCleanup(os.umask, os.umask(0o022))
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def mode(self, name: str) -> int:
        """
        The permission bits of a file in the directory.
        """
        return os.stat(os.path.join(self.directory, name)).st_mode & 0o777

    def test_server_and_tool_create_private_files(self) -> None:
        """
        The server's new store (and its WAL files), the tool's new store and a backup are all 0600.
        """
        server = ServerProcess(self, self.directory, ["--store", "server.db"]).start()
        wait_until(lambda: os.path.exists(os.path.join(self.directory, "server.db-wal")), timeout=5)
        for name in ("server.db", "server.db-wal", "server.db-shm"):
            self.assertEqual(self.mode(name), 0o600, name)
        server.stop()
        cli_store = os.path.join(self.directory, "cli.db")
        self.assertEqual(run_tool("init", "--store", cli_store).returncode, 0)
        self.assertEqual(self.mode("cli.db"), 0o600)
        result = run_tool("backup", os.path.join(self.directory, "copy.db"), "--store", cli_store)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.mode("copy.db"), 0o600)

    def test_readable_store_warned_at_start(self) -> None:
        """
        A store file others may read is named in a warning when the server starts.
        """
        store = os.path.join(self.directory, "open.db")
        self.assertEqual(run_tool("init", "--store", store).returncode, 0)
        os.chmod(store, 0o644)
        server = ServerProcess(self, self.directory, ["--store", store]).start()
        wait_until(lambda: "readable by others" in server.log(), timeout=5)
        self.assertIn(f"Store file {store} is readable by others (mode 644)", server.log())

    def test_foreign_database_untouched(self) -> None:
        """
        C{twistd sshfinger --store} on another program's SQLite database exits 1 with one line, and the file is
        byte for byte as it was, with nothing created beside it.
        """
        foreign = os.path.join(self.directory, "recipes.db")
        connection = sqlite3.connect(foreign)
        connection.execute("CREATE TABLE recipes (name TEXT)")
        connection.execute("INSERT INTO recipes VALUES ('tea')")
        connection.commit()
        connection.close()
        before = Path(foreign).read_bytes()
        result = subprocess.run(
            [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", "--no-ssh", "--finger", "tcp:0",
             "--store", foreign],
            capture_output=True, text=True, env=clean_env(), cwd=self.directory, timeout=60,
        )  # fmt: skip
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("not an sshfinger database", result.stdout + result.stderr)
        self.assertEqual(Path(foreign).read_bytes(), before)
        self.assertEqual(sorted(os.listdir(self.directory)), ["recipes.db"])
