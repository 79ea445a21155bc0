"""
L{LineEditor}: a line editor for insults terminals, far beyond Twisted's stock L{HistoricRecvLine}.

It keeps the line as text (UTF-8 input is decoded incrementally), redraws the whole edit area on every change
(so wide characters, lines longer than the terminal and resizes come out right), and binds the keys people
expect from readline: Ctrl-A/E/B/F, Ctrl-K/U/W/Y, Ctrl-T, Ctrl-H, Ctrl-D, Ctrl-L, Ctrl-C, Ctrl-P/N, Alt-B/F/D,
Ctrl-R reverse search, Tab completion and C{?} help.  Up never saves the half-typed line into history: it is kept
aside and comes back when you go down past the newest entry.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

from twisted.conch.recvline import HistoricRecvLine

ESC = "\x1b"

#: Columns between listed completion candidates.
COLUMN_GAP = 2


def char_width(char: str) -> int:
    """
    Columns a character takes on a terminal: 2 for East Asian wide, 0 for combining marks, else 1.
    """
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def layout(text: str, width: int) -> list[tuple[int, int]]:
    """
    Where the cursor stands after each prefix of C{text} printed from column 0 of a terminal C{width} wide.

    @return: C{len(text) + 1} positions C{(row, column)}; a wide character that does not fit at the end of a
        row moves to the next row, as terminals do.
    """
    width = max(width, 2)
    row = column = 0
    positions = [(0, 0)]
    for char in text:
        w = char_width(char)
        if column + w > width:
            row, column = row + 1, 0
        column += w
        if column >= width:
            row, column = row + 1, 0
        positions.append((row, column))
    return positions


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


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass
class Search:
    """
    The state of a Ctrl-R reverse incremental search.

    @ivar query: what was typed.
    @ivar index: the history entry matched (C{len(history)} when none).
    @ivar failed: whether the query matches nothing.
    @ivar original: the line before the search, restored on cancel.
    """

    query: str
    index: int
    failed: bool
    original: str


class LineEditor(HistoricRecvLine):
    """
    A readline-like editor.  Subclasses override L{line_submitted}, L{complete}, L{end_of_input} and
    L{interrupt}, and print with L{write_line} (above the line being edited).

    @ivar prompt: the prompt, drawn before the line.
    @ivar echo: whether typed characters are shown (off for passwords).
    @ivar width: the terminal's width in columns.
    """

    prompt = "> "
    echo = True
    #: Whether C{?} lists completions (a command shell) rather than always typing itself (Python).
    question_lists = True

    def __init__(self, history: Sequence[str] = ()) -> None:
        """
        @param history: initial history lines, oldest first.
        """
        self.buffer: list[str] = []
        self.cursor = 0
        self._history: list[str] = list(history)
        self._history_index = len(self._history)
        self._scratch = ""
        self._kill = ""
        self._overwrite = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._search: Search | None = None
        self._cursor_row = 0
        self._last_key_tab = False
        self._connected = False

    # Connection and terminal.

    def connectionMade(self) -> None:
        """
        Set up the terminal; draw the prompt.
        """
        self._connected = True
        super().connectionMade()

    def initializeScreen(self) -> None:
        """
        Draw the prompt where the cursor is (no terminal reset: the client's scrollback stays).
        """
        self._cursor_row = 0
        self.draw_prompt()

    def connectionLost(self, reason: object = None) -> None:
        """
        Stop drawing.
        """
        self._connected = False

    def is_active(self) -> bool:
        """
        Whether drawing makes sense (the terminal is connected); subclasses may add conditions.
        """
        return self._connected

    def terminalSize(self, width: int, height: int) -> None:
        """
        The terminal was resized: re-wrap the edit area for the new width.
        """
        before = self._cursor_position()
        self.width, self.height = max(width, 2), height
        if self._connected:
            # Most terminals re-flow wrapped lines: find the cursor's row in the new layout.
            self._cursor_row = layout(before, self.width)[-1][0]
            self.draw_prompt()

    def _write(self, text: str) -> None:
        if self.is_active():
            self.terminal.write(text.encode("utf-8"))

    # Public helpers for subclasses.

    def current_line(self) -> str:
        """
        The line being edited.
        """
        return "".join(self.buffer)

    def set_line(self, text: str) -> None:
        """
        Replace the line being edited and put the cursor at its end (not redrawn).
        """
        self.buffer = list(text)
        self.cursor = len(self.buffer)

    def set_prompt(self, text: str) -> None:
        """
        Change the prompt (drawn by the next L{draw_prompt}).
        """
        self.prompt = text

    def history_lines(self) -> list[str]:
        """
        The history, oldest first.
        """
        return list(self._history)

    def set_history(self, lines: Sequence[str]) -> None:
        """
        Replace the history; browsing starts again from the newest entry.
        """
        self._history = list(lines)
        self._history_index = len(self._history)

    def write_line(self, text: str) -> None:
        """
        Print C{text} (which may hold newlines) above the edit area; the prompt and the line follow below it.
        """
        self._write(self._to_edit_start() + ESC + "[J" + text.replace("\n", "\r\n") + "\r\n")
        self._cursor_row = 0
        self.draw_prompt()

    def clear_screen(self) -> None:
        """
        Clear the whole screen, leaving the cursor at the top.
        """
        self._write(ESC + "[H" + ESC + "[2J")
        self._cursor_row = 0

    def draw_prompt(self) -> None:
        """
        Redraw the prompt and the line, wrapped to the terminal width, with the cursor in place.
        """
        if not self.is_active():
            return
        prompt, text, cursor = self._visible()
        width = self.width
        positions = layout(prompt + text, width)
        end_row, end_column = positions[-1]
        shown = self.decorate(text) if self._search is None and self.echo else text
        out = [self._to_edit_start(), ESC, "[J", prompt, shown]
        if end_column == 0 and end_row > 0:
            out.append("\r\n")  # leave the pending-wrap state of a line that ends at the margin
        row, column = positions[len(prompt) + cursor]
        if end_row > row:
            out.append(f"{ESC}[{end_row - row}A")
        out.append("\r")
        if column:
            out.append(f"{ESC}[{column}C")
        self._cursor_row = row
        self._write("".join(out))

    # Override points.

    def decorate(self, text: str) -> str:
        """
        The line as drawn: subclasses may add colour (zero-width escape sequences only).
        """
        return text

    def line_submitted(self, line: str) -> None:
        """
        Called with each line entered.
        """

    def complete(self, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
        """
        Completion candidates for Tab and C{?}: where the word starts, and C{(candidate, description)} pairs.
        """
        return len(before_cursor), []

    def end_of_input(self) -> None:
        """
        Ctrl-D on an empty line: close the connection.
        """
        self.terminal.loseConnection()

    def interrupt(self) -> None:
        """
        Ctrl-C: drop the line and prompt again.
        """
        self._write(self._to_end() + "^C\r\n")
        self._cursor_row = 0
        self.set_line("")
        self._history_index = len(self._history)
        self.draw_prompt()

    # Keys.

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        """
        Dispatch one key from insults (a one-byte character, or a special key constant).
        """
        tab = keyID == self.terminal.TAB and modifier is None
        if self._search is not None and self._search_key(keyID, modifier):
            self._last_key_tab = False
            return
        if modifier == self.terminal.ALT:
            self._alt_key(keyID)
        elif isinstance(keyID, bytes) and len(keyID) == 1:
            self._byte(keyID)
        else:
            self._special_key(keyID)
        self._last_key_tab = tab

    def _byte(self, key: bytes) -> None:
        code = key[0]
        if code >= 0x80:
            self._insert(self._decoder.decode(key))
            return
        handler = self._control_keys().get(code)
        if handler is not None:
            handler()
        elif code >= 0x20 and code != 0x7F:
            self._insert(self._decoder.decode(key))
            if key == b"?" and self.question_lists:
                self._help_or_literal()

    def _control_keys(self) -> dict[int, Any]:
        return {
            0x01: self.move_home,
            0x02: self.move_left,
            0x03: self.interrupt,
            0x04: self._ctrl_d,
            0x05: self.move_end,
            0x06: self.move_right,
            0x08: self.delete_backward,
            0x09: self._tab,
            0x0A: self._enter,
            0x0B: self.kill_to_end,
            0x0C: self._redraw_screen,
            0x0D: self._enter,
            0x0E: self.history_next,
            0x10: self.history_previous,
            0x12: self.start_search,
            0x14: self.transpose,
            0x15: self.kill_to_start,
            0x17: self.kill_word_backward,
            0x19: self.yank,
            0x7F: self.delete_backward,
        }

    def _special_key(self, key: Any) -> None:
        t = self.terminal
        handlers = {
            t.LEFT_ARROW: self.move_left,
            t.RIGHT_ARROW: self.move_right,
            t.UP_ARROW: self.history_previous,
            t.DOWN_ARROW: self.history_next,
            t.HOME: self.move_home,
            t.END: self.move_end,
            t.DELETE: self.delete_forward,
            t.INSERT: self._toggle_overwrite,
        }
        handler = handlers.get(key)
        if handler is not None:
            handler()

    def _alt_key(self, key: Any) -> None:
        handler = {
            b"b": self.word_left,
            b"f": self.word_right,
            b"d": self.kill_word_forward,
            b"\x7f": self.kill_word_backward,
            b"\x08": self.kill_word_backward,
        }.get(key.lower() if isinstance(key, bytes) else key)
        if handler is not None:
            handler()

    # Editing.

    def _insert(self, text: str) -> None:
        for char in text:
            if not char.isprintable():
                continue
            if self._overwrite and self.cursor < len(self.buffer):
                self.buffer[self.cursor] = char
            else:
                self.buffer.insert(self.cursor, char)
            self.cursor += 1
        self.draw_prompt()

    def _toggle_overwrite(self) -> None:
        self._overwrite = not self._overwrite

    def move_left(self) -> None:
        """
        Ctrl-B, Left.
        """
        self.cursor = max(self.cursor - 1, 0)
        self.draw_prompt()

    def move_right(self) -> None:
        """
        Ctrl-F, Right.
        """
        self.cursor = min(self.cursor + 1, len(self.buffer))
        self.draw_prompt()

    def move_home(self) -> None:
        """
        Ctrl-A, Home.
        """
        self.cursor = 0
        self.draw_prompt()

    def move_end(self) -> None:
        """
        Ctrl-E, End.
        """
        self.cursor = len(self.buffer)
        self.draw_prompt()

    def _word_start(self) -> int:
        index = self.cursor
        while index > 0 and not _is_word(self.buffer[index - 1]):
            index -= 1
        while index > 0 and _is_word(self.buffer[index - 1]):
            index -= 1
        return index

    def _word_end(self) -> int:
        index = self.cursor
        while index < len(self.buffer) and not _is_word(self.buffer[index]):
            index += 1
        while index < len(self.buffer) and _is_word(self.buffer[index]):
            index += 1
        return index

    def word_left(self) -> None:
        """
        Alt-B: to the start of this or the previous word.
        """
        self.cursor = self._word_start()
        self.draw_prompt()

    def word_right(self) -> None:
        """
        Alt-F: to the end of this or the next word.
        """
        self.cursor = self._word_end()
        self.draw_prompt()

    def delete_backward(self) -> None:
        """
        Backspace, Ctrl-H.
        """
        if self.cursor > 0:
            self.cursor -= 1
            del self.buffer[self.cursor]
        self.draw_prompt()

    def delete_forward(self) -> None:
        """
        Delete, and Ctrl-D on a non-empty line.
        """
        if self.cursor < len(self.buffer):
            del self.buffer[self.cursor]
        self.draw_prompt()

    def _ctrl_d(self) -> None:
        if self.buffer:
            self.delete_forward()
        else:
            self.end_of_input()

    def _cut(self, start: int, end: int) -> None:
        if end > start:
            self._kill = "".join(self.buffer[start:end])
            del self.buffer[start:end]
            self.cursor = start
        self.draw_prompt()

    def kill_to_end(self) -> None:
        """
        Ctrl-K.
        """
        self._cut(self.cursor, len(self.buffer))

    def kill_to_start(self) -> None:
        """
        Ctrl-U.
        """
        self._cut(0, self.cursor)

    def kill_word_backward(self) -> None:
        """
        Ctrl-W: the whitespace-delimited word before the cursor.
        """
        index = self.cursor
        while index > 0 and self.buffer[index - 1].isspace():
            index -= 1
        while index > 0 and not self.buffer[index - 1].isspace():
            index -= 1
        self._cut(index, self.cursor)

    def kill_word_forward(self) -> None:
        """
        Alt-D.
        """
        self._cut(self.cursor, self._word_end())

    def yank(self) -> None:
        """
        Ctrl-Y: insert the last killed text.
        """
        self._insert(self._kill)

    def transpose(self) -> None:
        """
        Ctrl-T: swap the two characters before the cursor (at the end) or around it.
        """
        if len(self.buffer) < 2 or self.cursor == 0:
            return
        index = min(self.cursor, len(self.buffer) - 1)
        self.buffer[index - 1], self.buffer[index] = self.buffer[index], self.buffer[index - 1]
        self.cursor = index + 1
        self.draw_prompt()

    def _redraw_screen(self) -> None:
        self.clear_screen()
        self.draw_prompt()

    # History.

    def history_previous(self) -> None:
        """
        Up, Ctrl-P.  The half-typed line is kept aside, not saved into history.
        """
        if self._history_index == 0:
            return
        if self._history_index == len(self._history):
            self._scratch = self.current_line()
        self._history_index -= 1
        self.set_line(self._history[self._history_index])
        self.draw_prompt()

    def history_next(self) -> None:
        """
        Down, Ctrl-N; past the newest entry the half-typed line comes back.
        """
        if self._history_index >= len(self._history):
            return
        self._history_index += 1
        newest = self._history_index == len(self._history)
        self.set_line(self._scratch if newest else self._history[self._history_index])
        self.draw_prompt()

    def _enter(self) -> None:
        line = self.current_line()
        self._write(self._to_end() + "\r\n")
        self._cursor_row = 0
        self.set_line("")
        if self.echo and line.strip() and (not self._history or self._history[-1] != line):
            self._history.append(line)
        self._history_index = len(self._history)
        self._scratch = ""
        self.line_submitted(line)
        self.draw_prompt()

    # Reverse search.

    def start_search(self) -> None:
        """
        Ctrl-R: start a reverse incremental search (again: find an older match).
        """
        self._search = Search("", len(self._history), False, self.current_line())
        self.draw_prompt()

    def _find(self, start: int) -> None:
        search = self._search
        assert search is not None
        for index in range(min(start, len(self._history) - 1), -1, -1):
            if search.query in self._history[index]:
                search.index, search.failed = index, False
                return
        search.failed = True

    def _search_key(self, key: Any, modifier: Any) -> bool:
        """
        Handle a key during a search; return whether it was consumed.
        """
        search = self._search
        assert search is not None
        if modifier is None and key == b"\x12":
            self._find(search.index - 1)
        elif modifier is None and key in (b"\x7f", b"\x08"):
            search.query = search.query[:-1]
            self._find(len(self._history))
        elif modifier is None and key in (b"\x07", b"\x03"):
            self._search = None
            self.set_line(search.original)
        elif modifier is None and isinstance(key, bytes) and len(key) == 1 and (key[0] >= 0x80 or 0x20 <= key[0] < 0x7F):
            search.query += self._decoder.decode(key)
            self._find(search.index if search.index < len(self._history) else len(self._history))
        else:
            self._accept_search()
            return key == ESC.encode()
        self.draw_prompt()
        return True

    def _accept_search(self) -> None:
        search, self._search = self._search, None
        if search is not None and not search.failed and search.index < len(self._history):
            self.set_line(self._history[search.index])
            self._history_index = len(self._history)
        self.draw_prompt()

    def _visible(self) -> tuple[str, str, int]:
        """
        What the edit area shows: prompt, text and cursor index within the text.
        """
        search = self._search
        if search is not None:
            match = self._history[search.index] if search.index < len(self._history) and search.query else ""
            label = "failed reverse-i-search" if search.failed else "reverse-i-search"
            at = match.find(search.query) if search.query else 0
            return f"({label})`{search.query}': ", match, max(at, 0)
        if not self.echo:
            return self.prompt, "", 0
        return self.prompt, self.current_line(), self.cursor

    # Completion.

    def _tab(self) -> None:
        before = self.current_line()[: self.cursor]
        start, candidates = self.complete(before)
        names = sorted({name for name, _ in candidates})
        word = before[start:]
        if len(names) == 1:
            self._insert(names[0][len(word) :] + " ")
            return
        prefix = common_prefix(names)
        if len(prefix) > len(word):
            self._insert(prefix[len(word) :])
        elif names and self._last_key_tab:
            self.write_line(self._columns(names))

    def _columns(self, names: Sequence[str]) -> str:
        cell = max(len(name) for name in names) + COLUMN_GAP
        per_row = max(1, self.width // cell)
        rows = [names[i : i + per_row] for i in range(0, len(names), per_row)]
        return "\n".join("".join(name.ljust(cell) for name in row).rstrip() for row in rows)

    def _help_or_literal(self) -> None:
        """
        After C{?} was inserted: if the word before it has completions, take it out again and list them.
        """
        before = self.current_line()[: self.cursor - 1]
        start, candidates = self.complete(before)
        if not candidates:
            return
        self.cursor -= 1
        del self.buffer[self.cursor]
        width = max(len(name) for name, _ in candidates) + COLUMN_GAP
        self.write_line("\n".join(f"  {name.ljust(width)}{about}" for name, about in candidates))

    # Cursor bookkeeping.

    def _cursor_position(self) -> str:
        prompt, text, cursor = self._visible()
        return prompt + text[:cursor]

    def _to_edit_start(self) -> str:
        up = f"{ESC}[{self._cursor_row}A" if self._cursor_row else ""
        return up + "\r"

    def _to_end(self) -> str:
        """
        Move from the cursor to the end of the text in the edit area.
        """
        prompt, text, _ = self._visible()
        end_row, end_column = layout(prompt + text, self.width)[-1]
        down = end_row - self._cursor_row
        return (f"{ESC}[{down}B" if down > 0 else "") + "\r" + (f"{ESC}[{end_column}C" if end_column else "")
