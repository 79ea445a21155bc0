"""
Anonymous finger answers never show who is an admin (issue 18 #6): no C{Role:} line and no editor's login in
the plain answer or C{/W}; the shell, for logged-in users, still shows both.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.query import parse_query
from sshfinger.finger.render import render_record
from sshfinger.finger.respond import Responder
from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account
from tests.unit.test_finger import NOW, make_clock, make_store

ROOT = Account("root", real_name="Root", role="admin", updated_at=NOW - 120, updated_by="root")
BOB = Account("bob", real_name="Bob", status="Here", updated_at=NOW - 60, updated_by="root")


class AnonymousAnswerTests(SynchronousTestCase):
    """
    What an anonymous peer is told, against what a logged-in user is shown.
    """

    def setUp(self) -> None:
        """
        A service over an admin and a user last edited by that admin.
        """
        self.clock = make_clock()
        self.service = FingerService(make_store(ROOT, BOB), self.clock)

    def test_answers_without_roles_or_editors(self) -> None:
        """
        Neither the plain answer nor C{/W}, for the admin or the user they edited, names a role or the editor;
        the rest of the verbose record is there.
        """
        responder = Responder(self.service, self.clock)
        for line in (b"root", b"/W root", b"bob", b"/W bob"):
            data = responder.respond(line, "192.0.2.7").data  # type: ignore[union-attr]
            self.assertNotIn(b"Role:", data, line)
            self.assertNotIn(b"admin", data, line)
            self.assertNotIn(b" by root", data, line)
            self.assertIn(b"Updated: ", data, line)
        self.assertIn("Office: (none)", " ".join(self.service.answer(parse_query("/W bob"))))  # type: ignore[arg-type]

    def test_shell_still_shows_them(self) -> None:
        """
        The shell's call (C{finger.user(login, verbose)}, as L{sshfinger.shell.commands} makes it) shows the
        role and the editor to a logged-in user.
        """
        record = self.service.user("root", True)
        self.assertIn("Role: admin", record)
        self.assertTrue(any(line.endswith(" by root") for line in self.service.user("bob", True)))

    def test_render_for_public(self) -> None:
        """
        L{render_record} with C{for_public} leaves out the role and the author, and only those lines.
        """
        shown = render_record(BOB, True, NOW)
        public = render_record(BOB, True, NOW, for_public=True)
        self.assertEqual([line for line in shown if not line.startswith("Role:")], [
            line if not line.startswith("Updated:") else line + " by root" for line in public
        ])  # fmt: skip
