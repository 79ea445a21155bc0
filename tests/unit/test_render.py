"""
Tests for L{sshfinger.finger.render}: sanitizing, ASCII spelling, records, listings, the output cap and encoding.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.finger.render import (
    LISTING_HEADER,
    NAME_WIDTH,
    TRUNCATED,
    cap_lines,
    display_width,
    encode_lines,
    fit,
    render_listing,
    render_record,
    sanitize,
    to_ascii,
)
from sshfinger.model.account import Account

#: 2026-11-23 12:00 UTC.
NOW = 1795435200.0

ALICE = Account(
    "alice",
    real_name="Alice Liddell",
    status="Down the rabbit hole",
    plan="Tea at four.\nBring a watch.",
    office="Room 4",
    phone="555-0100",
    role="admin",
    keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5SECRETKEYMATERIAL alice@home",),
    updated_at=NOW - 7200,
    updated_by="dodo",
)

#: Every character L{sanitize} must remove (tab aside, which becomes a space).
FORBIDDEN = {
    chr(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}


def forbidden_in(text: str) -> set[str]:
    """
    Return the characters of C{text} that must never reach a terminal.
    """
    return set(text) & FORBIDDEN


class SanitizeTests(SynchronousTestCase):
    """
    L{sanitize} removes everything that could drive a terminal.
    """

    def test_escape_sequence_disarmed(self) -> None:
        """
        An escape sequence loses its ESC: the rest arrives as plain text.
        """
        self.assertEqual(sanitize("a\x1b[2Jb"), "a[2Jb")

    def test_c0_del_and_c1_removed(self) -> None:
        """
        C0 controls (line breaks included), DEL and C1 controls are removed; a tab becomes a space.
        """
        self.assertEqual(sanitize("a\x00b\x07c\r\nd\x7fe\x85f\x9bg\x80h\x9fi\tj"), "abcdefghi j")

    def test_bidi_controls_removed(self) -> None:
        """
        Bidirectional overrides and isolates are removed.
        """
        self.assertEqual(sanitize("x\u202ey\u202az\u2066w\u2069v"), "xyzwv")

    def test_printable_text_kept(self) -> None:
        """
        Ordinary text, accents, CJK and typographic characters pass unchanged.
        """
        text = "Ren\u00e9e \u2014 \u65e5\u672c \u20ac5 \u2713 [2J"
        self.assertEqual(sanitize(text), text)

    def test_lone_surrogate_replaced(self) -> None:
        """
        A lone surrogate, which no codec can encode, becomes U+FFFD.
        """
        self.assertEqual(sanitize("a\ud800b"), "a\ufffdb")

    @settings(deadline=None)
    @given(st.text(alphabet=st.characters(exclude_categories=())))
    def test_property_no_controls(self, text: str) -> None:
        """
        For any text, the result holds no C0, C1, DEL or bidi control character.
        """
        self.assertEqual(forbidden_in(sanitize(text)), set())


class ToAsciiTests(SynchronousTestCase):
    """
    L{to_ascii} spells text in ASCII.
    """

    def test_accents_dropped(self) -> None:
        """
        Accented letters lose their accents.
        """
        self.assertEqual(to_ascii("Ren\u00e9e Ma\u00f1ana \u00c5ngstr\u00f6m"), "Renee Manana Angstrom")

    def test_typography_mapped(self) -> None:
        """
        Dashes, quotes, ellipsis, euro and check marks get ASCII equivalents.
        """
        self.assertEqual(
            to_ascii("\u2014\u2013\u2018x\u2019\u201cy\u201d\u2026 \u20ac5 \u2713 stra\u00dfe"),
            "--'x'\"y\"... EUR5 v strasse",
        )

    def test_compatibility_forms(self) -> None:
        """
        Compatibility characters decompose (ligatures, full-width letters).
        """
        self.assertEqual(to_ascii("\ufb01ne \uff21"), "fine A")

    def test_other_characters_become_question_marks(self) -> None:
        """
        Anything without an ASCII spelling becomes C{"?"}, one per character.
        """
        self.assertEqual(to_ascii("\u65e5\u672c x"), "?? x")

    def test_ascii_unchanged(self) -> None:
        """
        ASCII text is returned as is.
        """
        self.assertEqual(to_ascii("plain [2J text"), "plain [2J text")


class RecordTests(SynchronousTestCase):
    """
    L{render_record} renders one account like a classic fingerd.
    """

    def test_short_form(self) -> None:
        """
        The short form shows login and name on one line, the status, the UTC update time with its age, and the plan.
        """
        self.assertEqual(
            render_record(ALICE, False, NOW),
            [
                "Login: alice" + " " * 28 + "Name: Alice Liddell",
                "Status: Down the rabbit hole",
                "Updated: 2026-11-23 10:00 UTC (2 hours ago)",
                "Plan:",
                "Tea at four.",
                "Bring a watch.",
            ],
        )

    def test_verbose_form(self) -> None:
        """
        The verbose form adds office, phone, role and who made the last update.
        """
        lines = render_record(ALICE, True, NOW)
        self.assertEqual(lines[1], "Office: Room 4" + " " * 26 + "Phone: 555-0100")
        self.assertIn("Role: admin", lines)
        self.assertIn("Updated: 2026-11-23 10:00 UTC (2 hours ago) by dodo", lines)

    def test_short_form_hides_verbose_fields(self) -> None:
        """
        The short form shows neither office, phone, role nor the author of the update.
        """
        text = "\n".join(render_record(ALICE, False, NOW))
        for hidden in ("Room 4", "555-0100", "Role:", "dodo"):
            self.assertNotIn(hidden, text)

    def test_keys_never_shown(self) -> None:
        """
        Authorized keys appear in neither form.
        """
        for verbose in (False, True):
            self.assertNotIn("SECRETKEYMATERIAL", "\n".join(render_record(ALICE, verbose, NOW)))

    def test_empty_account(self) -> None:
        """
        An account never changed, without status or plan, says so.
        """
        lines = render_record(Account("bob"), False, NOW)
        self.assertEqual(lines, ["Login: bob" + " " * 30 + "Name:", "No status.", "Never updated", "No plan."])

    def test_ages(self) -> None:
        """
        The age of the update is in the largest whole unit, singular when one, and "just now" under a minute or
        when the clock is behind.
        """
        for delta, age in [(30, "just now"), (-50, "just now"), (60, "1 minute ago"), (7200, "2 hours ago"),
                           (86400 * 3 + 5, "3 days ago")]:
            record = render_record(Account("bob", updated_at=NOW - delta), False, NOW)
            self.assertTrue(record[2].endswith(f"({age})"), record[2])

    def test_hostile_fields_sanitized(self) -> None:
        """
        Control characters in any field, plan lines included, never appear in the record.
        """
        hostile = Account(
            "mallory",
            real_name="Mal\x1b]0;pwned\x07lory",
            status="\x1b[2J\x07Hi\x9b31m\u202eevil",
            plan="\x1b[2Jone\r\ntwo\x85\n\x00three",
            office="\x90dcs",
            phone="\t555",
            role="user\x1b",
            updated_at=NOW,
            updated_by="x\x1by",
        )
        lines = render_record(hostile, True, NOW)
        for line in lines:
            self.assertEqual(forbidden_in(line), set(), line)
        self.assertIn("Status: [2JHi31mevil", lines)
        self.assertEqual(lines[-3:], ["[2Jone", "two", "three"])


class ListingTests(SynchronousTestCase):
    """
    L{render_listing} renders the user list in fixed columns.
    """

    def test_header_and_rows(self) -> None:
        """
        A header, then one aligned row per visible account: login, name and status columns.
        """
        rows = list(render_listing([ALICE, Account("bob", "Bob", "")]))
        self.assertEqual(rows[0], LISTING_HEADER)
        self.assertEqual(rows[1], "alice            Alice Liddell            Down the rabbit hole")
        self.assertEqual(rows[2], "bob              Bob")
        self.assertEqual(rows[0].index("Name"), rows[1].index("Alice"))
        self.assertEqual(rows[0].index("Status"), rows[1].index("Down"))

    def test_hidden_skipped(self) -> None:
        """
        Hidden accounts are not listed.
        """
        rows = list(render_listing([ALICE, Account("hatter", "The Hatter", hidden=True)]))
        self.assertEqual(len(rows), 2)
        self.assertNotIn("hatter", "\n".join(rows))

    def test_long_fields_cut(self) -> None:
        """
        A long name and a long status are cut to their column, marked with C{"+"}; the status column still starts
        at the same place.
        """
        rows = list(render_listing([Account("bob", "B" * 60, "S" * 100)]))
        name_at, status_at = LISTING_HEADER.index("Name"), LISTING_HEADER.index("Status")
        self.assertEqual(rows[1][name_at:status_at], "B" * (NAME_WIDTH - 1) + "+ ")
        self.assertTrue(rows[1].endswith("S+"))
        self.assertLessEqual(len(rows[1]), 80)

    def test_wide_characters_fit(self) -> None:
        """
        Wide characters count two columns: a long CJK name is cut so the status column stays aligned.
        """
        rows = list(render_listing([Account("bob", "\u65e5" * 30, "here")]))
        status_at = LISTING_HEADER.index("Status")
        self.assertEqual(display_width(rows[1][: rows[1].index("here")]), status_at)

    def test_long_login_kept(self) -> None:
        """
        A login longer than its column is never cut.
        """
        login = "a" * 32
        rows = list(render_listing([Account(login, "Long")]))
        self.assertTrue(rows[1].startswith(login + " Long"))

    def test_sanitized(self) -> None:
        """
        Names and statuses are sanitized.
        """
        rows = list(render_listing([Account("eve", "E\x1b[1mve", "\x07\x9b2J")]))
        self.assertEqual(forbidden_in(rows[1]), set())
        self.assertIn("E[1mve", rows[1])

    def test_lazy_generator(self) -> None:
        """
        The listing is a generator consuming its input lazily: it works on an endless stream of accounts.
        """
        endless: Iterator[Account] = (Account(f"user{n}") for n in itertools.count())
        listing = render_listing(endless)
        self.assertTrue(inspect.isgenerator(listing))
        rows = list(itertools.islice(listing, 4))
        self.assertEqual(rows[3].split(), ["user2"])


class FitTests(SynchronousTestCase):
    """
    L{fit} fits text into terminal columns.
    """

    def test_pad_and_cut(self) -> None:
        """
        Short text is padded, long text cut with C{"+"}, both to exactly the width.
        """
        self.assertEqual(fit("ab", 5), "ab   ")
        self.assertEqual(fit("abcdefg", 5), "abcd+")
        self.assertEqual(fit("abcdefg", 5, pad=False), "abcd+")
        self.assertEqual(fit("ab", 5, pad=False), "ab")

    def test_never_split_wide_character(self) -> None:
        """
        A wide character that would straddle the cut is dropped whole, and padding restores the width.
        """
        cut = fit("\u65e5\u672c\u8a9e", 5)
        self.assertEqual(cut, "\u65e5\u672c+")
        self.assertEqual(display_width(cut), 5)
        self.assertEqual(fit("\u65e5\u672c\u8a9e\u8a9e", 6), "\u65e5\u672c+ ")


class CapTests(SynchronousTestCase):
    """
    L{cap_lines} bounds the encoded size of an answer.
    """

    def test_small_output_unchanged(self) -> None:
        """
        Output under the cap passes unchanged.
        """
        self.assertEqual(list(cap_lines(["a", "b"], 100)), ["a", "b"])

    def test_truncated(self) -> None:
        """
        Output over the cap stops with the truncation line, and the whole never exceeds the cap.
        """
        capped = list(cap_lines(["x" * 10] * 100, 100))
        self.assertEqual(capped[-1], TRUNCATED)
        self.assertEqual(capped[:-1], ["x" * 10] * 6)
        self.assertLessEqual(len(encode_lines(capped)), 100)

    def test_exact_fit(self) -> None:
        """
        Output exactly at the cap is not truncated.
        """
        lines = ["x" * 8] * 10
        self.assertEqual(list(cap_lines(lines, 100)), lines)
        self.assertEqual(list(cap_lines(lines, 99))[-1], TRUNCATED)

    def test_lazy(self) -> None:
        """
        Lines past the cap are never consumed: an endless input ends.
        """
        capped = list(cap_lines(itertools.repeat("line"), 1000))
        self.assertEqual(capped[-1], TRUNCATED)

    def test_counts_encoded_bytes(self) -> None:
        """
        Sizes are encoded bytes: three-byte UTF-8 characters count three, and ASCII spellings their own length.
        """
        self.assertEqual(list(cap_lines(["\u20ac" * 10, "x"], 40)), ["\u20ac" * 10, "x"])
        self.assertEqual(list(cap_lines(["\u20ac" * 10, "x"], 30)), [TRUNCATED])
        self.assertEqual(list(cap_lines(["\ufdfa"], 10, ascii_only=True)), [])

    @settings(deadline=None)
    @given(st.lists(st.text()), st.integers(min_value=20, max_value=500), st.booleans())
    def test_property_bound(self, lines: list[str], cap: int, ascii_only: bool) -> None:
        """
        Whatever the lines, the encoded capped output never exceeds the cap.
        """
        self.assertLessEqual(len(encode_lines(cap_lines(lines, cap, ascii_only), ascii_only)), cap)


class EncodeTests(SynchronousTestCase):
    """
    L{encode_lines} produces the bytes sent to the peer.
    """

    def test_crlf_utf8(self) -> None:
        """
        Every line ends with CRLF, in UTF-8 by default.
        """
        self.assertEqual(encode_lines(["Ren\u00e9e", "a \u2014 b"]), "Ren\u00e9e\r\na \u2014 b\r\n".encode())

    def test_ascii(self) -> None:
        """
        In ASCII mode lines are spelled by L{to_ascii}.
        """
        self.assertEqual(encode_lines(["Ren\u00e9e", "a \u2014 b"], ascii_only=True), b"Renee\r\na - b\r\n")

    def test_empty(self) -> None:
        """
        No lines, no bytes.
        """
        self.assertEqual(encode_lines([]), b"")

    @settings(deadline=None)
    @given(st.lists(st.text(alphabet=st.characters(exclude_categories=()))))
    def test_property_ascii_only(self, lines: list[str]) -> None:
        """
        In ASCII mode the output is pure ASCII whatever the text (surrogates included).
        """
        self.assertTrue(encode_lines(lines, ascii_only=True).isascii())
