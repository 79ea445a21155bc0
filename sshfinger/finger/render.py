"""
Text of finger answers: pure functions, C{str} in and C{str} out, with no Twisted in sight.

Stored text is whatever people typed, so every field passes through L{sanitize} before it reaches a peer's
terminal.  Answers are lists (or iterators) of lines without line endings; L{cap_lines} bounds their size and
L{encode_lines} turns them into the CRLF-terminated bytes RFC 1288 asks for, in UTF-8 or (L{to_ascii}) plain
ASCII for old clients that garble UTF-8.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable, Iterator

from sshfinger.model.account import Account
from sshfinger.model.sshsig import signed_plan_line

#: The line that replaces whatever did not fit under the output cap.
TRUNCATED = "[output truncated]"

#: The header of L{render_listing}, and the widths (in terminal columns) of its first two columns.
LOGIN_WIDTH = 16
NAME_WIDTH = 24
STATUS_WIDTH = 37
LISTING_HEADER = f"{'Login':<{LOGIN_WIDTH}} {'Name':<{NAME_WIDTH}} Status"

#: Column at which the right half of a paired line (C{Name:}, C{Phone:}) starts in L{render_record}.
PAIR_COLUMN = 40

#: Marks a truncated column in a listing (like C{ps}): ASCII, so both encodings keep the columns aligned.
_CUT_MARK = "+"


def _build_sanitize_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in range(0x00, 0x20):
        table[code] = None
    table[0x09] = " "
    table[0x7F] = None
    for code in range(0x80, 0xA0):
        table[code] = None
    for code in range(0x202A, 0x202F):
        table[code] = None
    for code in range(0x2066, 0x206A):
        table[code] = None
    # LINE SEPARATOR and PARAGRAPH SEPARATOR break lines in some consumers (str.splitlines among them).
    table[0x2028] = " "
    table[0x2029] = " "
    # Lone surrogates cannot be encoded at all.
    for code in range(0xD800, 0xE000):
        table[code] = "\N{REPLACEMENT CHARACTER}"
    return table


_SANITIZE_TABLE = _build_sanitize_table()


def sanitize(text: str) -> str:
    """
    Make one line of stored text safe for a peer's terminal.

    Removes every C0 control (U+0000-U+001F, line breaks included: a caller wanting several lines splits the text
    first), DEL, every C1 control (U+0080-U+009F) and the Unicode bidirectional overrides and isolates
    (U+202A-U+202E, U+2066-U+2069).  A tab and the Unicode line and paragraph separators become a space, a lone
    surrogate becomes U+FFFD.  An escape sequence such as C{"\\x1b[2J"} thus loses its ESC and arrives as the
    harmless text C{"[2J"}.
    """
    return text.translate(_SANITIZE_TABLE)


#: Typographic characters with a better ASCII spelling than C{"?"} (applied before NFKD decomposition).
_ASCII_MAP: dict[int, str] = {
    ord(char): replacement
    for chars, replacement in [
        ("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        ("\u2018\u2019\u201a\u201b\u2032", "'"),
        ("\u201c\u201d\u201e\u201f\u2033", '"'),
        ("\u2026", "..."),
        ("\u2039", "<"),
        ("\u203a", ">"),
        ("\u00ab", "<<"),
        ("\u00bb", ">>"),
        ("\u2022\u2023\u2043", "*"),
        ("\u00b7", "."),
        ("\u00d7", "x"),
        ("\u00f7", "/"),
        ("\u2713\u2714", "v"),
        ("\u2717\u2718", "x"),
        ("\u20ac", "EUR"),
        ("\u00a3", "GBP"),
        ("\u00a9", "(c)"),
        ("\u00ae", "(R)"),
        ("\u00df", "ss"),
        ("\u00e6", "ae"),
        ("\u00c6", "AE"),
        ("\u0153", "oe"),
        ("\u0152", "OE"),
        ("\u00f8", "o"),
        ("\u00d8", "O"),
        ("\u0111", "d"),
        ("\u0110", "D"),
        ("\u0142", "l"),
        ("\u0141", "L"),
        ("\u00fe", "th"),
        ("\u00de", "Th"),
        ("\u00f0", "d"),
        ("\u00d0", "D"),
    ]
    for char in chars
}


def to_ascii(text: str) -> str:
    """
    Spell C{text} in ASCII for C{--ascii} mode.

    Common typographic characters get an ASCII equivalent (C{"\u2014"} becomes C{"-"}, C{"\u2026"} C{"..."},
    C{"\u20ac"} C{"EUR"}), then the text is NFKD-decomposed and combining marks are dropped (C{"\u00e9"} becomes
    C{"e"}); any character still outside ASCII becomes C{"?"}.  Control characters are left alone: run
    L{sanitize} first.
    """
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_MAP))
    out = []
    for char in decomposed:
        if char.isascii():
            out.append(char)
        elif unicodedata.combining(char) or unicodedata.category(char) == "Mn":
            continue
        else:
            out.append(_ASCII_MAP.get(ord(char), "?"))
    return "".join(out)


def char_width(char: str) -> int:
    """
    Columns a character takes on a terminal: 2 for East Asian wide and full-width, 0 for combining marks and
    other non-spacing marks and format characters (such as variation selectors), else 1.  The one width table
    of sshfinger: the shell's line editor uses it too.
    """
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """
    Return the number of terminal columns C{text} takes: wide East Asian characters count two, combining marks
    and format characters none.
    """
    if text.isascii():
        return len(text)
    return sum(char_width(char) for char in text)


def fit(text: str, width: int, pad: bool = True) -> str:
    """
    Fit C{text} into C{width} terminal columns.

    Text that is too wide is cut on a character boundary (never inside a wide character or before its combining
    marks) and ends with C{"+"}, like C{ps} does with long user names.  With C{pad}, the result is padded with
    spaces to exactly C{width} columns.
    """
    used = display_width(text)
    if used > width:
        kept: list[str] = []
        used = 0
        limit = width - len(_CUT_MARK)
        for char in text:
            columns = char_width(char)
            if used + columns > limit:
                break
            kept.append(char)
            used += columns
        text = "".join(kept) + _CUT_MARK
        used += len(_CUT_MARK)
    if pad and used < width:
        text += " " * (width - used)
    return text


def _pair(left: str, right: str) -> str:
    """
    Put C{right} at L{PAIR_COLUMN} (or one space after a wider C{left}), like a classic fingerd.
    """
    gap = max(1, PAIR_COLUMN - display_width(left))
    return f"{left}{' ' * gap}{right}".rstrip()


def age_text(seconds: float) -> str:
    """
    How long ago, coarsely: C{"just now"}, C{"5 minutes ago"}, C{"2 days ago"}.
    """
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"  # pragma: no cover


def format_update(account: Account, now: float, with_author: bool) -> str:
    """
    Return the C{Updated:} line of a record: the UTC time of the last change and its age relative to C{now},
    optionally followed by who made it; C{"Never updated"} for an account never changed.
    """
    if not account.updated_at:
        return "Never updated"
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(account.updated_at))
    except (OverflowError, ValueError, OSError):
        return "Updated: at an unknown time"
    line = f"Updated: {stamp} ({age_text(now - account.updated_at)})"
    author = sanitize(account.updated_by)
    if with_author and author:
        line += f" by {author}"
    return line


def render_record(account: Account, verbose: bool, now: float, for_public: bool = False) -> list[str]:
    """
    Render one account as a classic fingerd would, for a C{user} or C{/W user} query.

    The short form shows the login and name (C{"Login: alice   ...   Name: Alice Liddell"}), the status, the time
    of the last update and the plan (or C{"No plan."}) with C{"Plan signed with ..."} under it while its
    signature verifies (L{signed_plan_line}); the verbose form adds the office, phone, role and the author of the
    last update, except C{for_public}: an anonymous peer never learns who is an admin, so the role and the author
    (often an admin's login) are left out.  Keys and the hidden flag are never shown.  Every stored text passes
    through L{sanitize}; the plan is split on newlines first.

    @param now: the current POSIX time, for the age of the last update.
    @param for_public: render for an anonymous peer (finger, the web): no role, no author.
    @return: lines without line endings.
    """
    lines = [_pair(f"Login: {sanitize(account.login)}", f"Name: {sanitize(account.real_name)}")]
    if verbose:
        office = sanitize(account.office) or "(none)"
        phone = sanitize(account.phone) or "(none)"
        lines.append(_pair(f"Office: {office}", f"Phone: {phone}"))
        if not for_public:
            lines.append(f"Role: {sanitize(account.role)}")
        if account.fediverse:
            lines.append(f"Fediverse: {sanitize(account.fediverse)}")
    status = sanitize(account.status)
    lines.append(f"Status: {status}" if status else "No status.")
    lines.append(format_update(account, now, with_author=verbose and not for_public))
    if account.plan:
        lines.append("Plan:")
        lines.extend(sanitize(line) for line in account.plan.split("\n"))
        signed = signed_plan_line(account.plan, account.plan_signature, account.keys)
        if signed:
            lines.append(signed)
    else:
        lines.append("No plan.")
    return lines


def render_listing(accounts: Iterable[Account]) -> Iterator[str]:
    """
    Render the user list (the answer to an empty query) lazily: a header, then one line per visible account.

    Columns have fixed widths: the login (never cut: a login longer than L{LOGIN_WIDTH} pushes its row's other
    columns right), the name cut to L{NAME_WIDTH} columns and the status cut to L{STATUS_WIDTH}, both with
    L{fit}.  Hidden accounts are skipped.  A generator, so a huge store streams.
    """
    yield LISTING_HEADER
    for account in accounts:
        if account.hidden:
            continue
        login = sanitize(account.login).ljust(LOGIN_WIDTH)
        name = fit(sanitize(account.real_name), NAME_WIDTH)
        status = fit(sanitize(account.status), STATUS_WIDTH, pad=False)
        yield f"{login} {name} {status}".rstrip()


def encode_line(line: str, ascii_only: bool = False) -> bytes:
    """
    Encode one line (without its line ending): UTF-8, or ASCII through L{to_ascii}.  Never raises.
    """
    if ascii_only:
        return to_ascii(line).encode("ascii", "replace")
    return line.encode("utf-8", "replace")


def cap_lines(lines: Iterable[str], max_bytes: int, ascii_only: bool = False) -> Iterator[str]:
    """
    Pass lines through until the encoded answer would exceed C{max_bytes}, then end with L{TRUNCATED}.

    Sizes are those of L{encode_lines} with the same C{ascii_only} (each line plus its CRLF), and the whole
    output, the final L{TRUNCATED} line included, never exceeds C{max_bytes}: an answer that fits exactly is sent
    whole, and the L{TRUNCATED} line is left out if even it does not fit.  Lazy: at most one line past the cap is
    consumed, and at most a L{TRUNCATED}-sized tail of lines is held back.
    """
    budget = max_bytes
    reserve = len(TRUNCATED) + 2
    # Lines that fit only in the room kept for TRUNCATED: sent only if the input ends before the cap is hit.
    pending: list[str] = []
    pending_size = 0
    for line in lines:
        size = len(encode_line(line, ascii_only)) + 2
        if not pending and size <= budget - reserve:
            budget -= size
            yield line
        elif pending_size + size <= budget:
            pending.append(line)
            pending_size += size
        else:
            if reserve <= budget:
                yield TRUNCATED
            return
    yield from pending


def encode_lines(lines: Iterable[str], ascii_only: bool = False) -> bytes:
    """
    Encode an answer: every line terminated by CRLF, UTF-8 by default or ASCII through L{to_ascii}.

    Lines must not contain line breaks themselves (L{sanitize} removes them).
    """
    return b"".join(encode_line(line, ascii_only) + b"\r\n" for line in lines)


__all__ = [
    "LISTING_HEADER",
    "TRUNCATED",
    "cap_lines",
    "char_width",
    "display_width",
    "encode_line",
    "encode_lines",
    "fit",
    "format_update",
    "render_listing",
    "render_record",
    "sanitize",
    "to_ascii",
]
