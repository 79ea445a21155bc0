"""
Tests for the C{sshfinger} offline tool (L{sshfinger.cli.main}) and the passwd file (L{sshfinger.ssh.passwd}).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat

import bcrypt
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sshfinger.cli import main as cli
from sshfinger.ssh import passwd
from sshfinger.store.service import open_offline

#: Every command of the tool.
COMMANDS = "init import export set add del show key audit backup restore doctor passwd".split()


class ToolTestCase(SynchronousTestCase):
    """
    Run the tool in-process against a store in a temporary directory.
    """

    def setUp(self) -> None:
        """
        Pick a fresh store path.
        """
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.store = os.path.join(self.directory, "s.db")

    def tool(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        """
        Run the tool; return its status, stdout and stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        old_stdin = cli.sys.stdin
        cli.sys.stdin = io.StringIO(stdin)
        try:
            status = cli.main([*argv], out, err)
        finally:
            cli.sys.stdin = old_stdin
        return status, out.getvalue(), err.getvalue()

    def account(self, login: str) -> object:
        """
        Read one account back from the store file.
        """
        store = open_offline(self.store)
        self.addCleanup(store.close)
        return store.peek(login)


class HelpTests(SynchronousTestCase):
    """
    C{--help}, for the tool and each command.
    """

    def test_plain_text(self) -> None:
        """
        The help is plain text: no epydoc markup (C{C{...}}, C{L{...}}) leaks from docstrings, and the tool's own
        description says what it is.
        """
        texts = {"sshfinger": cli.build_parser().format_help()}
        for command in COMMANDS:
            out = io.StringIO()
            with contextlib.redirect_stdout(out), self.assertRaises(SystemExit):
                cli.build_parser().parse_args([command, "--help"])
            texts[command] = out.getvalue()
            self.assertIn(command, texts["sshfinger"])
        for name, text in texts.items():
            self.assertNotRegex(text, r"[A-Z]\{", name)
        self.assertIn("offline tool", " ".join(texts["sshfinger"].split()))


class InitSetTests(ToolTestCase):
    """
    C{init}, C{set}, C{add}, C{del}, C{show}.
    """

    def test_init_creates_demo(self) -> None:
        """
        C{init} creates the demo accounts once; a second run creates nothing more.
        """
        status, out, _ = self.tool("init", "--store", self.store)
        self.assertEqual(status, 0)
        self.assertIn("created alice", out)
        alice = self.account("alice")
        self.assertEqual(alice.real_name, "Alice Liddell")  # type: ignore[attr-defined]
        self.assertEqual(self.account("admin").role, "admin")  # type: ignore[attr-defined]
        status, out, _ = self.tool("init", "--store", self.store)
        self.assertNotIn("created", out.splitlines()[0])

    def test_set_field(self) -> None:
        """
        C{set} changes one field and records the local person as the author.
        """
        self.tool("init", "--store", self.store)
        status, _, err = self.tool("set", "ALICE", "status", "Tea time", "--store", self.store)
        self.assertEqual((status, err), (0, ""))
        alice = self.account("alice")
        self.assertEqual(alice.status, "Tea time")  # type: ignore[attr-defined]
        self.assertTrue(alice.updated_by.endswith("@local"))  # type: ignore[attr-defined]

    def test_errors_are_one_line(self) -> None:
        """
        Unknown accounts, unknown fields and bad values give one error line and status 1.
        """
        self.tool("init", "--store", self.store)
        for argv, expected in [
            (("set", "nobody", "status", "x"), "no such user: nobody"),
            (("set", "alice", "colour", "x"), "unknown field 'colour'"),
            (("set", "alice", "hidden", "maybe"), "not a yes/no value"),
            (("add", "9lives"), "invalid login"),
            (("add", "alice"), "user exists already"),
        ]:
            status, out, err = self.tool(*argv, "--store", self.store)
            self.assertEqual(status, 1, argv)
            self.assertIn(expected, err)
            self.assertEqual(err.count("\n"), 1)

    def test_add_delete(self) -> None:
        """
        C{add} creates an account with a name and role; C{del} removes it.
        """
        self.assertEqual(self.tool("add", "bob", "Bob", "Kahn", "--admin", "--store", self.store)[0], 0)
        bob = self.account("bob")
        self.assertEqual((bob.real_name, bob.role), ("Bob Kahn", "admin"))  # type: ignore[attr-defined]
        self.assertEqual(self.tool("del", "bob", "--store", self.store)[0], 0)
        self.assertIsNone(self.account("bob"))

    def test_show(self) -> None:
        """
        C{show LOGIN} prints the account as JSON.
        """
        self.tool("init", "--store", self.store)
        status, out, _ = self.tool("show", "alice", "--store", self.store)
        self.assertEqual(json.loads(out)[0]["real_name"], "Alice Liddell")


class ImportExportTests(ToolTestCase):
    """
    C{import} and C{export} in JSON and C{login:status} text.
    """

    def test_text_import(self) -> None:
        """
        The tutorial's C{login:status} file loads; comments and blank lines are skipped; re-import updates.
        """
        path = os.path.join(self.directory, "users")
        with open(path, "w") as f:
            f.write("# old /etc/users\n\nmoshez:Happy and well\nalice:Out to lunch\n")
        status, out, _ = self.tool("import", path, "--store", self.store)
        self.assertEqual((status, out), (0, "2 created, 0 updated, 0 unchanged\n"))
        self.assertEqual(self.account("moshez").status, "Happy and well")  # type: ignore[attr-defined]
        with open(path, "w") as f:
            f.write("moshez:Busy\nalice:Out to lunch\n")
        self.assertEqual(self.tool("import", path, "--store", self.store)[1], "0 created, 1 updated, 1 unchanged\n")

    def test_json_round_trip(self) -> None:
        """
        An export re-imported into a new store gives the same accounts, keys and flags included.
        """
        self.tool("init", "--store", self.store)
        self.tool("set", "alice", "hidden", "yes", "--store", self.store)
        exported = os.path.join(self.directory, "out.json")
        self.assertEqual(self.tool("export", "-o", exported, "--store", self.store)[0], 0)
        other = os.path.join(self.directory, "other.db")
        self.assertEqual(self.tool("import", exported, "--store", other)[0], 0)
        status, again, _ = self.tool("export", "--store", other)
        with open(exported) as f:
            self.assertEqual(json.loads(again), json.loads(f.read()))
        self.assertTrue(json.loads(again)[1]["hidden"])

    def test_bad_import(self) -> None:
        """
        Malformed input is refused with one line and nothing imported.
        """
        path = os.path.join(self.directory, "bad.json")
        with open(path, "w") as f:
            f.write("{not json")
        status, _, err = self.tool("import", path, "--store", self.store)
        self.assertEqual(status, 1)
        self.assertIn("not valid JSON", err)
        status, _, err = self.tool("import", os.path.join(self.directory, "missing"), "--store", self.store)
        self.assertIn("cannot read", err)


class PasswdTests(ToolTestCase):
    """
    C{sshfinger passwd} and the passwd file format.
    """

    def test_writes_bcrypt_entry(self) -> None:
        """
        The entry is a bcrypt hash of the password; the new file is mode 0600; a second call replaces it.
        """
        path = os.path.join(self.directory, "passwd")
        args = ("passwd", "Alice", "--file", path, "--rounds", "4", "--password-stdin")
        self.assertEqual(self.tool(*args, stdin="s3cret-pass\n")[0], 0)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(self.tool(*args, stdin="other-pass\n")[0], 0)
        entries = passwd.parse(open(path, "rb").read())
        self.assertEqual(list(entries), ["alice"])
        self.assertTrue(entries["alice"].is_bcrypt)
        self.assertTrue(bcrypt.checkpw(b"other-pass", entries["alice"].secret))

    def test_one_line_errors(self) -> None:
        """
        Without a terminal and without C{--password-stdin}, and for files in a missing directory, the tool says
        so in one line and exits 1, with no traceback (issue 18 #12).
        """
        path = os.path.join(self.directory, "passwd")
        status, _, err = self.tool("passwd", "alice", "--file", path)
        self.assertEqual((status, err.count("\n")), (1, 1))
        self.assertIn("--password-stdin", err)
        missing = os.path.join(self.directory, "missing", "passwd")
        status, _, err = self.tool("passwd", "alice", "--file", missing, "--password-stdin", stdin="long-enough-pw\n")
        self.assertEqual((status, err.count("\n")), (1, 1))
        self.assertIn("No such file or directory", err)
        self.tool("init", "--store", self.store)
        status, _, err = self.tool("export", "--store", self.store, "-o", os.path.join(self.directory, "no", "x"))
        self.assertEqual((status, err.count("\n")), (1, 1))
        self.assertNotIn("Traceback", err)

    def test_keeps_other_lines(self) -> None:
        """
        Other logins' lines and comments survive an update.
        """
        path = os.path.join(self.directory, "passwd")
        with open(path, "wb") as f:
            f.write(b"# comment\nbob:plain\n")
        self.tool("passwd", "alice", "--file", path, "--rounds", "4", "--password-stdin", stdin="long-enough-pw\n")
        data = open(path, "rb").read()
        self.assertTrue(data.startswith(b"# comment\nbob:plain\nalice:$2b$04$"))
        self.assertFalse(passwd.parse(data)["bob"].is_bcrypt)

    def test_keeps_owner_and_group(self) -> None:
        """
        Root replacing an entry keeps the file's owner, group and mode, so a server that dropped privileges to
        read the file through its group can still read it.
        """
        if os.geteuid() != 0:
            raise SkipTest("only root can give a file away to another owner")
        path = os.path.join(self.directory, "passwd")
        with open(path, "wb") as f:
            f.write(b"bob:plain\n")
        os.chown(path, 65534, 65533)
        os.chmod(path, 0o640)
        self.tool("passwd", "alice", "--file", path, "--rounds", "4", "--password-stdin", stdin="long-enough-pw\n")
        status = os.stat(path)
        self.assertEqual((status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)), (65534, 65533, 0o640))
        self.assertIn("alice", passwd.parse(open(path, "rb").read()))

    def test_empty_password_refused(self) -> None:
        """
        An empty password is refused and no file is written.
        """
        path = os.path.join(self.directory, "passwd")
        status, _, err = self.tool("passwd", "alice", "--file", path, "--password-stdin", stdin="\n")
        self.assertEqual(status, 1)
        self.assertIn("empty password", err)
        self.assertFalse(os.path.exists(path))


class KeyTests(ToolTestCase):
    """
    C{sshfinger key add|list|del}.
    """

    def test_key_add_list_del(self) -> None:
        """
        A real ssh-keygen public key file is added once (a second add is a no-op), listed and deleted.
        """
        import subprocess

        self.tool("init", "--store", self.store)
        key = os.path.join(self.directory, "id")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", key], check=True)
        self.assertEqual(self.tool("key", "add", "alice", key + ".pub", "--store", self.store)[1], "alice: 1 key(s) added\n")
        self.assertEqual(self.tool("key", "add", "alice", key + ".pub", "--store", self.store)[1], "alice: 0 key(s) added\n")
        status, out, _ = self.tool("key", "list", "alice", "--store", self.store)
        fingerprint = subprocess.run(["ssh-keygen", "-lf", key + ".pub"], capture_output=True, text=True).stdout.split()[1]
        self.assertIn(fingerprint, out)
        self.assertEqual(self.tool("key", "del", "alice", "1", "--store", self.store)[0], 0)
        self.assertEqual(self.account("alice").keys, ())  # type: ignore[attr-defined]

    def test_key_add_garbage(self) -> None:
        """
        A file that is not a public key is refused with one line and nothing changes.
        """
        self.tool("init", "--store", self.store)
        path = os.path.join(self.directory, "bad.pub")
        with open(path, "w") as f:
            f.write("ssh-dss AAAA comment\n")
        status, _, err = self.tool("key", "add", "alice", path, "--store", self.store)
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertEqual(self.account("alice").keys, ())  # type: ignore[attr-defined]


class AuditTests(ToolTestCase):
    """
    C{sshfinger audit}.
    """

    def test_audit_lists_changes(self) -> None:
        """
        The audit trail shows who changed which field from what to what, newest last, filtered by login.
        """
        self.tool("init", "--store", self.store)
        self.tool("set", "alice", "status", "Tea", "--store", self.store)
        status, out, _ = self.tool("audit", "--store", self.store)
        self.assertEqual(status, 0)
        self.assertRegex(out.splitlines()[-1], r"@local/cli alice\.status: 'Down the rabbit hole' -> 'Tea'$")
        status, out, _ = self.tool("audit", "100", "--login", "admin", "--store", self.store)
        self.assertTrue(out)
        self.assertNotIn("alice", out)


class BackupRestoreDoctorTests(ToolTestCase):
    """
    C{backup}, C{restore} and C{doctor}.
    """

    def test_backup_of_live_store_and_restore(self) -> None:
        """
        A backup taken while another connection holds the store open has every account; restoring it brings
        a changed store back; an existing backup file is never overwritten.
        """
        self.tool("init", "--store", self.store)
        live = open_offline(self.store)
        self.addCleanup(live.close)
        backup = os.path.join(self.directory, "backup.db")
        status, out, err = self.tool("backup", backup, "--store", self.store)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(self.tool("backup", backup, "--store", self.store)[0], 1)
        self.tool("set", "alice", "status", "after the backup", "--store", self.store)
        live.close()
        status, out, _ = self.tool("restore", backup, "--store", self.store)
        self.assertEqual(status, 0)
        self.assertIn("restored 2 accounts", out)
        self.assertEqual(self.account("alice").status, "Down the rabbit hole")  # type: ignore[attr-defined]

    def test_restore_refuses_garbage(self) -> None:
        """
        A file that is not a backup is refused and the store is left alone.
        """
        self.tool("init", "--store", self.store)
        garbage = os.path.join(self.directory, "garbage")
        with open(garbage, "wb") as f:
            f.write(b"nope" * 1000)
        status, _, err = self.tool("restore", garbage, "--store", self.store)
        self.assertEqual(status, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertEqual(self.account("alice").real_name, "Alice Liddell")  # type: ignore[attr-defined]

    def test_doctor(self) -> None:
        """
        doctor passes a sound deployment and prints the fingerprints; a group-readable host key and a
        plaintext passwd entry are reported, the key as a failure.
        """
        from sshfinger.ssh.hostkeys import fingerprint, load_host_keys

        self.tool("init", "--store", self.store)
        keys = os.path.join(self.directory, "keys")
        ed25519 = load_host_keys(keys)[b"ssh-ed25519"]
        passwd = os.path.join(self.directory, "passwd")
        self.tool("passwd", "admin", "--file", passwd, "--rounds", "4", "--password-stdin", stdin="long-enough-pw\n")
        args = ("doctor", "--store", self.store, "--keys", keys, "--passwd", passwd, "--finger", "tcp:0", "--ssh", "tcp:0")
        status, out, _ = self.tool(*args)
        self.assertEqual(status, 0, out)
        self.assertIn(fingerprint(ed25519), out)
        self.assertIn("integrity ok, 2 accounts", out)
        with open(passwd, "a") as f:
            f.write("bob:plain\n")
        os.chmod(os.path.join(keys, "ssh_host_rsa_key"), 0o640)
        status, out, _ = self.tool(*args)
        self.assertEqual(status, 1)
        self.assertIn("FAIL  host keys:", out)
        self.assertIn("plaintext password for 'bob'", out)


class StoreIssueTests(ToolTestCase):
    """
    What the tool does for the store's items of issues 18, 17 and 23: empty stores, readable audit lines,
    C{key list} with no keys, 0600 files, restore refused while the store is open, doctor's size and growth.
    """

    def setUp(self) -> None:
        """
        Pick a fresh store path and run under umask 022.
        """
        super().setUp()
        self.addCleanup(os.umask, os.umask(0o022))

    def test_init_empty(self) -> None:
        """
        C{init --empty} creates a store with no accounts (and a private file).
        """
        status, out, _ = self.tool("init", "--empty", "--store", self.store)
        self.assertEqual(status, 0)
        self.assertNotIn("created", out)
        self.assertIn("holds 0 accounts", out)
        self.assertIsNone(self.account("alice"))
        self.assertEqual(stat.S_IMODE(os.stat(self.store).st_mode), 0o600)

    def test_version(self) -> None:
        """
        C{sshfinger --version} prints the version.
        """
        from sshfinger import __version__

        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as exit:
            cli.main(["--version"])
        self.assertEqual(exit.exception.code, 0)
        self.assertEqual(out.getvalue(), f"sshfinger {__version__}\n")

    def test_key_list_none(self) -> None:
        """
        C{key list} of an account with no keys says so, as the shell does.
        """
        self.tool("init", "--store", self.store)
        self.assertEqual(self.tool("key", "list", "alice", "--store", self.store), (0, "alice has no keys\n", ""))

    def test_audit_newline_readable(self) -> None:
        """
        A plan's newline shows in the audit trail as one backslash and C{n}, on one line.
        """
        self.tool("init", "--store", self.store)
        store = open_offline(self.store)
        from sshfinger.cli.main import actor, wait

        wait(store.update("alice", {"plan": "one\ntwo"}, actor()))
        store.close()
        status, out, _ = self.tool("audit", "1", "--store", self.store)
        self.assertEqual(status, 0)
        self.assertEqual(len(out.splitlines()), 1)
        self.assertIn(r"-> 'one\ntwo'", out)
        self.assertNotIn(r"\\n", out)

    def test_backup_private_and_restore_refused_while_open(self) -> None:
        """
        A backup is 0600 under umask 022; restore is refused with one line while another process (here, another
        open store) has the store open, and works once it is closed.
        """
        self.tool("init", "--store", self.store)
        backup = os.path.join(self.directory, "backup.db")
        self.assertEqual(self.tool("backup", backup, "--store", self.store)[0], 0)
        self.assertEqual(stat.S_IMODE(os.stat(backup).st_mode), 0o600)
        self.tool("set", "alice", "status", "after", "--store", self.store)
        live = open_offline(self.store)
        status, out, err = self.tool("restore", backup, "--store", self.store)
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("open in another process", err)
        self.assertEqual(live.peek("alice").status, "after")  # type: ignore[union-attr]
        live.close()
        status, out, err = self.tool("restore", backup, "--store", self.store)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(stat.S_IMODE(os.stat(self.store).st_mode), 0o600)

    def test_memory_store_has_no_maintenance(self) -> None:
        """
        A backend without maintenance operations gets one clear line from backup and restore.
        """
        for argv in (("backup", os.path.join(self.directory, "b.db")), ("restore", self.store)):
            status, _, err = self.tool(*argv, "--store", "memory:")
            self.assertEqual(status, 1)
            self.assertEqual(err.count("\n"), 1)
            self.assertIn("does not support", err)

    def test_doctor_store_size_growth_and_modes(self) -> None:
        """
        doctor reports the store's size and its audit trail's growth over the last day, and warns about a store
        file or a private host key that others may read.
        """
        self.tool("init", "--store", self.store)
        keys = os.path.join(self.directory, "keys")
        os.makedirs(keys)
        args = ("doctor", "--store", self.store, "--keys", keys, "--finger", "tcp:0", "--ssh", "tcp:0")
        status, out, _ = self.tool(*args)
        self.assertRegex(out, r"ok    store .*: integrity ok, 2 accounts, [0-9.]+ kB; audit trail 9 entries "
                              r"\([0-9.]+ k?B\), grew 9 entries \([0-9.]+ k?B\) in the last 24 h")
        self.assertNotIn("readable by others", out)
        os.chmod(self.store, 0o644)
        secret = os.path.join(keys, "ssh_host_ed25519_key")
        with open(secret, "w") as f:
            f.write("not really a key\n")
        os.chmod(secret, 0o644)
        status, out, _ = self.tool(*args)
        self.assertIn(f"warn  store file {self.store}: readable by others (mode 644)", out)
        self.assertIn(f"warn  {secret}: readable by others (mode 644)", out)
        self.assertNotIn("not really a key", out)
