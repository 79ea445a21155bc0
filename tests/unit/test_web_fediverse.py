"""
The fediverse alias: the field's rule, the SQLite upgrade to schema version 3, the shell's C{set}, and C{/W}.
"""

from __future__ import annotations

import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.render import render_record
from sshfinger.model.account import Account, Actor, normalize_field
from sshfinger.model.errors import InvalidValue
from sshfinger.store.sqlite import SCHEMA_VERSION, SQLiteBackend, migration_scripts, split_statements
from tests.unit.test_commands import CommandTestCase

ROOT = Actor("root", "cli")
ALIAS = "https://mastodon.example/@alice"


class FieldRuleTests(SynchronousTestCase):
    """
    L{normalize_field} for C{fediverse}.
    """

    def test_https_url_kept(self) -> None:
        """
        An https URL is stored as typed (surrounding blanks trimmed); an empty value clears the alias.
        """
        self.assertEqual(normalize_field("fediverse", f"  {ALIAS} "), ALIAS)
        self.assertEqual(normalize_field("fediverse", ""), "")

    def test_refused(self) -> None:
        """
        Anything but a plain https URL is refused with a one-line reason: other schemes, quotes and angle
        brackets that could break out of an attribute, spaces, control characters, and over-long values.
        """
        for bad in [
            "http://mastodon.example/@alice",
            "javascript:alert(1)",
            'https://x.example/"><img src=x onerror=alert(1)>',
            "https://x.example/a b",
            "https://x.example/\x1b[2J",
            "https://" + "a" * 300 + ".example/",
            "mastodon.example/@alice",
        ]:
            with self.assertRaises(InvalidValue, msg=bad) as caught:
                normalize_field("fediverse", bad)
            self.assertNotIn("\n", str(caught.exception))


class MigrationTests(SynchronousTestCase):
    """
    A version 2 SQLite file is upgraded to the current version, which has the C{fediverse} column.
    """

    def test_upgrade_from_v2(self) -> None:
        """
        A file at version 2 with an account opens at the current version; the account is intact with an empty
        alias, and an alias can then be set and read back after reopening.
        """
        self.assertGreaterEqual(SCHEMA_VERSION, 4)
        path = self.mktemp()
        connection = sqlite3.connect(path, isolation_level=None)
        for version, script in migration_scripts(None)[:2]:
            for statement in split_statements(script):
                connection.execute(statement)
            connection.execute("UPDATE version SET version = ?", (version,))
        connection.execute(
            "INSERT INTO accounts (login, real_name, status, updated_at) VALUES ('alice', 'Alice', 'reading', 5.0)"
        )
        connection.close()
        backend = SQLiteBackend(path)
        self.assertEqual(backend.open().accounts(), [Account("alice", "Alice", "reading", updated_at=5.0)])
        account, changes = backend.update("alice", {"fediverse": ALIAS}, ROOT, 10.0)
        self.assertEqual(account.fediverse, ALIAS)
        self.assertEqual([(c.field, c.new) for c in changes], [("fediverse", ALIAS)])
        backend.close()
        again = SQLiteBackend(path)
        self.assertEqual(again.open()["alice"].fediverse, ALIAS)
        self.assertEqual(again.open()["alice"], account)
        again.close()
        with sqlite3.connect(path) as check:
            self.assertEqual(check.execute("SELECT version FROM version").fetchone()[0], SCHEMA_VERSION)


class RenderTests(SynchronousTestCase):
    """
    C{/W} shows the alias; the short form does not.
    """

    def test_verbose_shows_alias(self) -> None:
        """
        A verbose record has a C{Fediverse:} line; a short one and an account without alias have none.
        """
        account = Account("alice", fediverse=ALIAS)
        self.assertIn(f"Fediverse: {ALIAS}", render_record(account, True, 0))
        self.assertFalse([line for line in render_record(account, False, 0) if "Fediverse" in line])
        self.assertFalse([line for line in render_record(Account("bob"), True, 0) if "Fediverse" in line])


class ShellSetTests(CommandTestCase):
    """
    C{set LOGIN fediverse URL} in the shell.
    """

    def test_user_sets_own_alias(self) -> None:
        """
        A user sets her own alias, it is stored and audited; a bad URL gets a one-line error and changes nothing.
        """
        self.assertEqual(self.lines("alice", f"set alice fediverse {ALIAS}"), ["fediverse of alice set"])
        alice = self.store.peek("alice")
        assert alice is not None
        self.assertEqual(alice.fediverse, ALIAS)
        changes = self.successResultOf(self.store.recent_changes(5, "alice"))
        self.assertEqual([(c.field, c.new) for c in changes], [("fediverse", ALIAS)])
        self.assertIn("https URL", self.error("alice", "set alice fediverse javascript:alert(1)"))
        self.assertEqual(self.store.peek("alice").fediverse, ALIAS)  # type: ignore[union-attr]
