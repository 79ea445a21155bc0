"""
RFC 1288 as admins know it (issue 23 §3): C{/W} alone lists long entries, queries match real names, and
C{--exact} turns that off.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger import constants
from sshfinger.finger.names import NameIndex, name_words
from sshfinger.finger.query import parse_query
from sshfinger.finger.service import FingerService
from sshfinger.model.account import Account, Actor
from tests.unit.test_finger import NOW, make_clock, make_store

ALICE = Account("alice", real_name="Alice Liddell", status="Tea", updated_at=NOW - 60, updated_by="root", role="admin")
LORINA = Account("lorina", real_name="Lorina Liddell", updated_at=NOW - 600)
EDITH = Account("edith", real_name="Edith Liddell", hidden=True)
BOB = Account("bob", real_name="Bob Alice-Smith")


class LongListingTests(SynchronousTestCase):
    """
    C{/W} with no user (what C{finger -l @host} sends).
    """

    def test_long_entries_capped(self) -> None:
        """
        Each visible account's long entry, an empty line between two, no role or editor; past
        L{constants.LONG_LIST_MAX} accounts the answer says there are more; with listing refused, refused.
        """
        self.patch(constants, "LONG_LIST_MAX", 2)
        service = FingerService(make_store(ALICE, LORINA, EDITH, BOB), make_clock())
        answer = service.answer(parse_query("/W"))
        self.assertEqual(answer.outcome, "long-list")  # type: ignore[union-attr]
        text = "\n".join(answer)  # type: ignore[arg-type]
        self.assertIn("Login: alice", text)
        self.assertIn("Login: bob", text)
        self.assertNotIn("edith", text)
        self.assertIn("Office: (none)", text)
        self.assertNotIn("Role:", text)
        self.assertNotIn(" by root", text)
        self.assertIn("", answer)  # type: ignore[operator]
        self.assertTrue(answer[-1].startswith("... more accounts than the 2 shown"))  # type: ignore[index]
        denied = FingerService(make_store(ALICE), make_clock(), allow_list=False).answer(parse_query("/W"))
        self.assertEqual(denied, [constants.LIST_DENIED])


class NameMatchTests(SynchronousTestCase):
    """
    A query matches real names as well as logins.
    """

    def setUp(self) -> None:
        """
        A service over the Liddells (one hidden) and Bob Alice-Smith.
        """
        self.clock = make_clock()
        self.store = make_store(ALICE, LORINA, EDITH, BOB)
        self.service = FingerService(self.store, self.clock)

    def logins(self, line: str, service: FingerService | None = None) -> list[str]:
        """
        The logins of the records answering C{line}.
        """
        answer = (service or self.service).answer(parse_query(line))
        return [line.split()[1] for line in answer if line.startswith("Login: ")]  # type: ignore[union-attr]

    def test_real_name_words(self) -> None:
        """
        C{finger liddell} finds every visible Liddell (not the hidden one), any case; a login comes first, then
        the others whose name has the word; no match is "no such user".
        """
        self.assertEqual(self.logins("liddell"), ["alice", "lorina"])
        self.assertEqual(self.logins("LIDDELL"), ["alice", "lorina"])
        self.assertEqual(self.logins("alice"), ["alice", "bob"])
        self.assertEqual(self.logins("/W lorina"), ["lorina"])
        self.assertEqual(self.logins("edith"), [])
        self.assertEqual(self.service.answer(parse_query("smith-jones")), ["finger: smith-jones: no such user."])

    def test_capped(self) -> None:
        """
        Past L{constants.MATCH_MAX} matches, the answer says there are more.
        """
        self.patch(constants, "MATCH_MAX", 1)
        answer = self.service.answer(parse_query("liddell"))
        self.assertEqual(self.logins("liddell"), ["alice"])
        self.assertTrue(answer[-1].startswith("... more than 1 accounts match"))  # type: ignore[index]

    def test_exact(self) -> None:
        """
        With C{match_names} false (C{--exact}), only a login matches.
        """
        exact = FingerService(self.store, self.clock, match_names=False)
        self.assertEqual(self.logins("liddell", exact), [])
        self.assertEqual(self.logins("alice", exact), ["alice"])

    def test_follows_changes(self) -> None:
        """
        A new name, a renamed account and a deleted one are matched as they now are.
        """
        self.assertEqual(self.logins("liddell"), ["alice", "lorina"])
        actor = Actor("t", "cli")
        self.successResultOf(self.store.create("harry", actor, {"real_name": "Harry Liddell"}))
        self.successResultOf(self.store.update("lorina", {"real_name": "Lorina Reeve"}, actor))
        self.successResultOf(self.store.delete("alice", actor))
        self.assertEqual(self.logins("liddell"), ["harry"])
        self.assertEqual(self.logins("reeve"), ["lorina"])

    def test_too_many_accounts(self) -> None:
        """
        A store larger than L{constants.NAME_INDEX_MAX} matches logins only.
        """
        self.patch(constants, "NAME_INDEX_MAX", 3)
        index = NameIndex(self.store)
        self.assertEqual(index.find("liddell"), [])
        self.assertFalse(index.usable)

    def test_words(self) -> None:
        """
        A real name's words, case-folded, split on spaces and punctuation.
        """
        self.assertEqual(name_words("Alice P. Liddell, (née) O'Hara"), {"alice", "p", "liddell", "née", "o", "hara"})
