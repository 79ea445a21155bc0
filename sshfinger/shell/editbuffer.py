"""
The pure model behind L{sshfinger.shell.lineedit}: display widths and wrapping, the line being edited, the
history and the reverse search.  Nothing here touches a terminal, so all of it can be tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sshfinger.finger.render import display_width

#: Columns between listed completion candidates.
COLUMN_GAP = 2

#: History entries kept in memory; older ones are dropped.
HISTORY_LIMIT = 1000

_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


#: Columns a character takes on a terminal: 2 for East Asian wide, 0 for combining marks (and other non-spacing
#: marks and format characters, such as variation selectors), else 1.  The finger renderer's measure, so the shell
#: and finger answers agree.
char_width = display_width


def strip_escapes(text: str) -> str:
    """
    C{text} without its CSI escape sequences (colours and the like take no room on the screen).
    """
    return _CSI.sub("", text)


#: Columns a row of text (no escape sequences) takes.
text_width = display_width


def advance(row: int, column: int, width: int, char_columns: int) -> tuple[int, int]:
    """
    Where the cursor stands after printing a character C{char_columns} wide at C{(row, column)}.

    A character that does not fit at the end of a row starts the next one, as terminals do; a row filled to the
    margin counts as ending at the start of the next row.
    """
    if column + char_columns > width:
        row, column = row + 1, 0
    column += char_columns
    if column >= width:
        row, column = row + 1, 0
    return row, column


def layout(text: str, width: int) -> list[tuple[int, int]]:
    """
    Where the cursor stands after each prefix of C{text} printed from column 0 of a terminal C{width} wide.

    @return: C{len(text) + 1} positions C{(row, column)}.
    """
    width = max(width, 2)
    row = column = 0
    positions = [(0, 0)]
    for char in text:
        row, column = advance(row, column, width, char_width(char))
        positions.append((row, column))
    return positions


def position(text: str, width: int) -> tuple[int, int]:
    """
    Where the cursor stands after printing C{text} from column 0 of a terminal C{width} wide: the last of
    L{layout}'s positions, computed without a loop for ASCII text (one column per character), so redrawing a long
    line stays cheap.
    """
    width = max(width, 2)
    if text.isascii():
        return divmod(len(text), width)
    return layout(text, width)[-1]


def common_prefix(words: Sequence[str]) -> str:
    """
    The longest common prefix of C{words}.
    """
    if not words:
        return ""
    first, last = min(words), max(words)
    for index, char in enumerate(first):
        if index >= len(last) or last[index] != char:
            return first[:index]
    return first


def in_quotes(text: str) -> bool:
    """
    Whether C{text} ends inside an unterminated quoted string (POSIX shell rules: backslash escapes outside
    single quotes).
    """
    quote = ""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
    return bool(quote)


def columns(names: Sequence[str], width: int) -> list[str]:
    """
    C{names} laid out in as many columns as fit in C{width}, row by row.
    """
    cell = max(text_width(name) for name in names) + COLUMN_GAP
    per_row = max(1, width // cell)
    rows = [names[i : i + per_row] for i in range(0, len(names), per_row)]
    return ["".join(name + " " * (cell - text_width(name)) for name in row).rstrip() for row in rows]


def describe(candidates: Sequence[tuple[str, str]]) -> list[str]:
    """
    One line per candidate: the name, padded, then its description.
    """
    cell = max(text_width(name) for name, _ in candidates) + COLUMN_GAP
    return [f"  {name}{' ' * (cell - text_width(name))}{about}".rstrip() for name, about in candidates]


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class EditBuffer:
    """
    The line being edited: characters and a cursor.  Combining marks travel with the character before them.

    @ivar chars: the line, one character per item.
    @ivar cursor: the index in L{chars} the cursor stands before.
    @ivar overwrite: whether typing replaces the character under the cursor.
    """

    def __init__(self, text: str = "") -> None:
        """
        @param text: the initial line; the cursor goes to its end.
        """
        self.chars = list(text)
        self.cursor = len(self.chars)
        self.overwrite = False

    @property
    def text(self) -> str:
        """
        The whole line.
        """
        return "".join(self.chars)

    def set(self, text: str, cursor: int | None = None) -> None:
        """
        Replace the line; the cursor goes to C{cursor} (default: the end).
        """
        self.chars = list(text)
        self.cursor = len(self.chars) if cursor is None else max(0, min(cursor, len(self.chars)))

    def insert(self, text: str) -> None:
        """
        Type C{text} at the cursor (replacing characters in overwrite mode).
        """
        for char in text:
            if self.overwrite and self.cursor < len(self.chars) and char_width(char):
                self.chars[self.cursor] = char
            else:
                self.chars.insert(self.cursor, char)
            self.cursor += 1

    def replace(self, start: int, end: int, text: str) -> None:
        """
        Replace C{chars[start:end]} with C{text}; the cursor goes after it.
        """
        self.chars[start:end] = list(text)
        self.cursor = start + len(text)

    def _left_of(self, index: int) -> int:
        index = max(index - 1, 0)
        while index > 0 and char_width(self.chars[index]) == 0:
            index -= 1
        return index

    def _right_of(self, index: int) -> int:
        index = min(index + 1, len(self.chars))
        while index < len(self.chars) and char_width(self.chars[index]) == 0:
            index += 1
        return index

    def left(self) -> None:
        """
        One character left.
        """
        self.cursor = self._left_of(self.cursor)

    def right(self) -> None:
        """
        One character right.
        """
        self.cursor = self._right_of(self.cursor)

    def home(self) -> None:
        """
        To the start of the line.
        """
        self.cursor = 0

    def end(self) -> None:
        """
        To the end of the line.
        """
        self.cursor = len(self.chars)

    def word_left(self) -> None:
        """
        To the start of this or the previous word.
        """
        self.cursor = self.word_start()

    def word_right(self) -> None:
        """
        To the end of this or the next word.
        """
        self.cursor = self.word_end()

    def word_start(self) -> int:
        """
        The start of the (alphanumeric) word before the cursor.
        """
        index = self.cursor
        while index > 0 and not _is_word(self.chars[index - 1]):
            index -= 1
        while index > 0 and _is_word(self.chars[index - 1]):
            index -= 1
        return index

    def word_end(self) -> int:
        """
        The end of the (alphanumeric) word after the cursor.
        """
        index = self.cursor
        while index < len(self.chars) and not _is_word(self.chars[index]):
            index += 1
        while index < len(self.chars) and _is_word(self.chars[index]):
            index += 1
        return index

    def blank_word_start(self) -> int:
        """
        The start of the whitespace-delimited word before the cursor (what Ctrl-W kills).
        """
        index = self.cursor
        while index > 0 and self.chars[index - 1].isspace():
            index -= 1
        while index > 0 and not self.chars[index - 1].isspace():
            index -= 1
        return index

    def cut(self, start: int, end: int) -> str:
        """
        Remove C{chars[start:end]}, leave the cursor at C{start}, and return what was removed.
        """
        removed = "".join(self.chars[start:end])
        del self.chars[start:end]
        self.cursor = start
        return removed

    def kill_to_end(self) -> str:
        """
        Cut from the cursor to the end of the line; return what was cut.
        """
        return self.cut(self.cursor, len(self.chars))

    def kill_to_start(self) -> str:
        """
        Cut from the start of the line to the cursor.
        """
        return self.cut(0, self.cursor)

    def kill_blank_word(self) -> str:
        """
        Cut the whitespace-delimited word before the cursor.
        """
        return self.cut(self.blank_word_start(), self.cursor)

    def kill_word_backward(self) -> str:
        """
        Cut back to the start of the (alphanumeric) word.
        """
        return self.cut(self.word_start(), self.cursor)

    def kill_word_forward(self) -> str:
        """
        Cut to the end of the (alphanumeric) word.
        """
        return self.cut(self.cursor, self.word_end())

    def delete_backward(self) -> None:
        """
        Delete the character before the cursor.
        """
        if self.cursor:
            self.cut(self._left_of(self.cursor), self.cursor)

    def delete_forward(self) -> None:
        """
        Delete the character under the cursor.
        """
        self.cut(self.cursor, self._right_of(self.cursor))

    def transpose(self) -> None:
        """
        Swap the character before the cursor with the one under it (the last two at the end of the line).
        """
        if len(self.chars) < 2 or self.cursor == 0:
            return
        index = min(self.cursor, len(self.chars) - 1)
        self.chars[index - 1], self.chars[index] = self.chars[index], self.chars[index - 1]
        self.cursor = index + 1


class History:
    """
    Entered lines, oldest first, and where Up/Down browsing stands.

    @ivar entries: the lines.
    @ivar index: the entry shown (C{len(entries)}: the line being typed, not an entry).
    @ivar scratch: the half-typed line, put aside while browsing.
    """

    def __init__(self, lines: Sequence[str] = ()) -> None:
        """
        @param lines: initial entries, oldest first.
        """
        self.entries: list[str] = list(lines)[-HISTORY_LIMIT:]
        self.index = len(self.entries)
        self.scratch = ""

    def reset(self) -> None:
        """
        Stop browsing: the next Up shows the newest entry.
        """
        self.index = len(self.entries)
        self.scratch = ""

    def add(self, line: str) -> None:
        """
        Append C{line}, unless it is blank or repeats the newest entry; stop browsing.
        """
        if line.strip() and (not self.entries or self.entries[-1] != line):
            self.entries.append(line)
            del self.entries[:-HISTORY_LIMIT]
        self.reset()

    def previous(self, current: str) -> str | None:
        """
        Go one entry back; C{current} is kept aside when leaving the line being typed.

        @return: the entry to show, or L{None} at the oldest.
        """
        if self.index == 0:
            return None
        if self.index >= len(self.entries):
            self.index, self.scratch = len(self.entries), current
        self.index -= 1
        return self.entries[self.index]

    def next(self) -> str | None:
        """
        Go one entry forward; past the newest comes the line put aside.

        @return: the line to show, or L{None} when not browsing.
        """
        if self.index >= len(self.entries):
            return None
        self.index += 1
        return self.scratch if self.index == len(self.entries) else self.entries[self.index]


class ReverseSearch:
    """
    A Ctrl-R search through a L{History}.

    @ivar query: what was typed.
    @ivar index: the entry matched, or C{len(history.entries)} for none yet.
    @ivar failed: whether the query matches nothing (from where the search stands).
    @ivar original: the line and cursor before the search, restored on cancel.
    """

    def __init__(self, history: History, original: str, cursor: int) -> None:
        """
        @param history: what to search.
        @param original: the line being edited when the search started.
        @param cursor: its cursor.
        """
        self.history = history
        self.query = ""
        self.index = len(history.entries)
        self.failed = False
        self.original = (original, cursor)

    def _find(self, start: int) -> None:
        entries = self.history.entries
        for index in range(min(start, len(entries) - 1), -1, -1):
            if self.query in entries[index]:
                self.index, self.failed = index, False
                return
        self.failed = True

    def type(self, text: str) -> None:
        """
        Refine the query: the match stays if it still matches, else an older one is looked for.
        """
        self.query += text
        self._find(self.index)

    def erase(self) -> None:
        """
        Take the last character off the query and search again from the newest entry.
        """
        self.query = self.query[:-1]
        self.index, self.failed = len(self.history.entries), False
        if self.query:
            self._find(self.index)

    def older(self, last_query: str) -> None:
        """
        Find an older match (Ctrl-R again); with an empty query, search for C{last_query}.
        """
        if not self.query:
            self.query = last_query
            if self.query:
                self._find(self.index)
        elif not self.failed:
            self._find(self.index - 1)

    def result(self) -> tuple[str, int]:
        """
        The line shown (the match, else the original line) and the cursor within it.
        """
        if self.index < len(self.history.entries):
            line = self.history.entries[self.index]
            return line, max(line.find(self.query), 0)
        return self.original

    def label(self) -> str:
        """
        The prompt shown during the search.
        """
        failed = "failed " if self.failed else ""
        return f"({failed}reverse-i-search)`{self.query}': "
