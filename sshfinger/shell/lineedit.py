"""
L{LineEditor}: a line editor for insults terminals, far beyond Twisted's stock C{HistoricRecvLine}.

It is a component: the terminal protocol that owns it (the command shell, the manhole) passes it keys and
resizes, and is called back with each line entered, for completions, on Ctrl-C and on Ctrl-D.

It keeps the line as text (UTF-8 input is decoded incrementally), redraws the whole edit area on every change
(so wide characters, lines longer than the terminal and resizes come out right), and binds the keys people
expect from readline: Ctrl-A/E/B/F, Ctrl-K/U/W/Y, Ctrl-T, Ctrl-H, Ctrl-D, Ctrl-L, Ctrl-C, Ctrl-P/N, Alt-B/F/D,
Alt-Backspace, Ctrl-R reverse search, Tab completion and C{?} help.  Up never saves the half-typed line into
history: it is kept aside and comes back when you go down past the newest entry.

The model (widths, wrapping, the buffer, history, search) lives in L{sshfinger.shell.editbuffer}, the drawing
in L{sshfinger.shell.editarea}.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from typing import Any

from twisted.conch.insults.insults import ITerminalTransport

from sshfinger.shell.editarea import ESC, EditArea, View
from sshfinger.shell.editbuffer import (
    EditBuffer,
    History,
    ReverseSearch,
    char_width,
    columns,
    common_prefix,
    describe,
    in_quotes,
    layout,
)

__all__ = ["ESC", "LineEditor", "char_width", "common_prefix", "layout"]

#: Sequences insults does not parse, that terminals send for keys we bind (Ctrl/Alt-arrows, application
#: mode), and the Alt letter (bytes) or control character (int) that does the same.
_SEQUENCES: dict[bytes, bytes | int] = {
    b"\x1b[1;5D": b"b",
    b"\x1b[1;3D": b"b",
    b"\x1b[1;5C": b"f",
    b"\x1b[1;3C": b"f",
    b"\x1b[OA": 0x10,
    b"\x1b[OB": 0x0E,
    b"\x1b[OC": 0x06,
    b"\x1b[OD": 0x02,
    b"\x1b[OH": 0x01,
    b"\x1b[OF": 0x05,
    b"\x1b[7~": 0x01,
    b"\x1b[8~": 0x05,
}


class LineEditor(EditArea):
    """
    A readline-like editor drawing on a terminal.  Its owner passes it keys (L{keystroke},
    L{control_sequence}) and sizes (L{resize}), prints with L{write_line} / L{write_text} (above the line being
    edited), and is called back through the functions given to the constructor.

    @ivar prompt: the prompt drawn before the line (str, may hold non-ASCII; escape sequences take no room).
    @ivar echo: whether typed characters are shown.  While off (password entry) nothing typed is drawn, put in
        the history or the kill buffer, and history, search and completion keys do nothing.
    @ivar question_lists: whether C{?} lists completions (a command shell) rather than always typing itself
        (Python).
    @ivar decorate: adds colour to the line as drawn (zero-width escape sequences only), or L{None}.
    """

    echo = True
    #: Characters a line may hold; typing beyond it is ignored.
    max_line = 4096

    def __init__(
        self,
        terminal: ITerminalTransport,
        on_line: Callable[[str], None] = lambda line: None,
        *,
        complete: Callable[[str], tuple[int, list[tuple[str, str]]]] | None = None,
        on_end: Callable[[], None] | None = None,
        on_interrupt: Callable[[], None] | None = None,
        decorate: Callable[[str], str] | None = None,
        active: Callable[[], bool] | None = None,
        history: Sequence[str] = (),
        question_lists: bool = True,
    ) -> None:
        """
        @param terminal: where to draw; its key constants are bound.
        @param on_line: called with each line entered.
        @param complete: completion candidates for Tab and C{?} (see L{complete}); by default none.
        @param on_end: Ctrl-D on an empty line; by default the connection is closed.
        @param on_interrupt: Ctrl-C; by default L{interrupt} (drop the line).  An owner that wants the default
            too calls L{interrupt}.
        @param decorate: see L{decorate}.
        @param active: whether drawing makes sense (see L{EditArea.is_active}).
        @param history: initial history lines, oldest first.
        @param question_lists: see L{question_lists}.
        """
        super().__init__(terminal, active)
        self.on_line = on_line
        self._complete = complete
        self.on_end = on_end
        self.on_interrupt = on_interrupt
        self.decorate = decorate
        self.question_lists = question_lists
        self._edit = EditBuffer()
        self._history = History(history)
        self._kill = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._search: ReverseSearch | None = None
        self._last_query = ""
        self._last_key: tuple[Any, Any] = (None, None)
        #: Whether the candidates were listed and no other key came since (a run of C{?} lists once).
        self._listed = False
        e = self._edit
        self._control: dict[int, Callable[[], object]] = {
            0x01: self._move(e.home),
            0x02: self._move(e.left),
            0x03: self._ctrl_c,
            0x04: self._ctrl_d,
            0x05: self._move(e.end),
            0x06: self._move(e.right),
            0x08: self._move(e.delete_backward),
            0x0A: self.handle_RETURN,
            0x0B: self._cut(e.kill_to_end),
            0x0C: self.redraw_screen,
            0x0D: self.handle_RETURN,
            0x0E: self.history_next,
            0x10: self.history_previous,
            0x12: self.start_search,
            0x14: self._move(e.transpose),
            0x15: self._cut(e.kill_to_start),
            0x17: self._cut(e.kill_blank_word),
            0x19: lambda: self._type(self._kill),
            0x7F: self._move(e.delete_backward),
        }
        self._alt: dict[bytes, Callable[[], object]] = {
            b"b": self._move(e.word_left),
            b"f": self._move(e.word_right),
            b"d": self._cut(e.kill_word_forward),
            b"\x7f": self._cut(e.kill_word_backward),
            b"\x08": self._cut(e.kill_word_backward),
        }
        t: Any = terminal
        self._special: dict[Any, Callable[[], object]] = {
            t.LEFT_ARROW: self._move(e.left),
            t.RIGHT_ARROW: self._move(e.right),
            t.UP_ARROW: self.history_previous,
            t.DOWN_ARROW: self.history_next,
            t.HOME: self._move(e.home),
            t.END: self._move(e.end),
            t.DELETE: self._move(e.delete_forward),
            t.INSERT: self.toggle_overwrite,
        }

    def decorated(self) -> bool:
        """
        Whether a decorator colours the line.
        """
        return self.decorate is not None

    # Public helpers for the owner.

    def current_line(self) -> str:
        """
        The line being edited.
        """
        return self._edit.text

    def set_line(self, text: str) -> None:
        """
        Replace the line being edited, put the cursor at its end and redraw.
        """
        self._edit.set(text)
        self.draw_prompt()

    def set_prompt(self, text: str) -> None:
        """
        Change the prompt (drawn by the next L{draw_prompt}).
        """
        self.prompt = text

    def history_lines(self) -> list[str]:
        """
        The history, oldest first.
        """
        return list(self._history.entries)

    def set_history(self, lines: Sequence[str]) -> None:
        """
        Replace the history; browsing starts again from the newest entry.
        """
        self._history = History(lines)

    # What the owner is called back for.

    def lineReceived(self, line: str | bytes) -> None:
        """
        Enter: keep the line in the history (not a blank line, a repeat of the newest entry, or anything typed
        with echo off), then hand it to the owner.
        """
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        if self.echo:
            self._history.add(line)
        else:
            self._history.reset()
        self.on_line(line)

    def complete(self, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
        """
        Completion candidates for Tab and C{?}, from the owner (none by default).

        @param before_cursor: the line up to the cursor.
        @return: where the word being completed starts in C{before_cursor}, and C{(candidate, description)}
            pairs.
        """
        if self._complete is None:
            return len(before_cursor), []
        return self._complete(before_cursor)

    def _ctrl_c(self) -> None:
        if self.on_interrupt is None:
            self.interrupt()
        else:
            self.on_interrupt()

    def interrupt(self) -> None:
        """
        Ctrl-C's default: show C{^C}, drop the line and prompt again.
        """
        self._leave_edit_area("^C")
        self._edit.set("")
        self._history.reset()
        self._decoder.reset()
        self.draw_prompt()

    # Keys.

    def keystroke(self, keyID: Any, modifier: Any) -> None:
        """
        Dispatch one key from insults (the owner's C{keystrokeReceived}): a one-byte character (UTF-8 arrives a
        byte at a time), or a special key constant; C{ESC} followed by a character arrives as that character with
        the C{ALT} modifier.
        """
        previous, self._last_key = self._last_key, (keyID, modifier)
        if keyID not in (b"?", b"\t") or modifier is not None:
            self._listed = False
        if keyID == b"\n" and modifier is None and previous == (b"\r", None):
            return  # CR LF is one Enter
        if self._search is not None and self._search_key(keyID, modifier):
            return
        if modifier is not None:
            if modifier == getattr(self.terminal, "ALT", None) and isinstance(keyID, bytes):
                handler = self._alt.get(keyID.lower())
                if handler is not None:
                    handler()
        elif isinstance(keyID, bytes) and len(keyID) == 1:
            self._byte(keyID, again=previous == (b"\t", None))
        else:
            handler = self._special.get(keyID)
            if handler is not None:
                handler()

    def type_text(self, text: str) -> None:
        """
        Type printable ASCII that arrived in one chunk (a paste) at once, as key after key would type it.
        """
        if self._search is not None or self._decoder.getstate()[0]:
            for char in text:
                self.keystroke(char.encode("ascii"), None)
            return
        self._last_key = (text[-1:].encode("ascii"), None)
        self._listed = False
        self._type(text)

    def control_sequence(self, seq: bytes) -> None:
        """
        The owner's C{unhandledControlSequence}: keys insults does not parse (Ctrl/Alt-arrows, application-mode
        arrows).  Bind the usual ones, ignore the rest.
        """
        key = _SEQUENCES.get(seq)
        if key is not None:
            if self._search is not None:
                self._accept_search()
            (self._alt[key] if isinstance(key, bytes) else self._control[key])()

    def _byte(self, key: bytes, again: bool) -> None:
        code = key[0]
        if code >= 0x80 or 0x20 <= code < 0x7F:
            if key != b"?" or not self._question():
                self.character(key)
        elif code == 0x09:
            self._tab(again)
        else:
            handler = self._control.get(code)
            if handler is not None:
                handler()

    def character(self, ch: bytes | str) -> None:
        """
        Type one character: a byte of UTF-8 (decoded once the character is complete) or text.
        """
        text = self._decoder.decode(ch) if isinstance(ch, bytes) else ch
        self._type(text)

    def _type(self, text: str) -> None:
        text = "".join(char for char in text if char.isprintable())
        text = text[: max(self.max_line - len(self._edit.chars), 0)]
        if not text:
            return
        edit = self._edit
        at_end = edit.cursor == len(edit.chars)
        edit.insert(text)
        if self.echo and at_end:
            self.draw_appended(text)
        elif self.echo:
            self.draw_prompt()

    def _refresh(self) -> None:
        if self.echo or self._search is not None:
            self.draw_prompt()

    def _move(self, change: Callable[[], object]) -> Callable[[], None]:
        """
        A key binding that changes the buffer with C{change}, then redraws.
        """

        def key() -> None:
            change()
            self._refresh()

        return key

    def _cut(self, kill: Callable[[], str]) -> Callable[[], None]:
        """
        A key binding that cuts text with C{kill} (a method of the buffer) and keeps it for Ctrl-Y, unless
        echo is off.
        """

        def key() -> None:
            removed = kill()
            if removed and self.echo:
                self._kill = removed
            self._refresh()

        return key

    def _ctrl_d(self) -> None:
        if self._edit.chars:
            self._edit.delete_forward()
            self._refresh()
        elif self.on_end is None:
            self.terminal.loseConnection()
        else:
            self.on_end()

    def toggle_overwrite(self) -> None:
        """
        Insert: switch between inserting and overwriting.
        """
        self._edit.overwrite = not self._edit.overwrite

    # History.

    def history_previous(self) -> None:
        """
        Up, Ctrl-P.  The half-typed line is kept aside, not saved into history.
        """
        if self.echo:
            line = self._history.previous(self._edit.text)
            if line is not None:
                self.set_line(line)

    def history_next(self) -> None:
        """
        Down, Ctrl-N; past the newest entry the half-typed line comes back.
        """
        if self.echo:
            line = self._history.next()
            if line is not None:
                self.set_line(line)

    def handle_RETURN(self) -> None:
        """
        Enter: finish the edit area, pass the line to L{lineReceived}, then prompt again.
        """
        line = self._edit.text
        self._leave_edit_area()
        self._edit.set("")
        self._decoder.reset()
        self.lineReceived(line)
        self.draw_prompt()

    # Reverse search.

    def start_search(self) -> None:
        """
        Ctrl-R: start a reverse incremental search through the history.
        """
        if self.echo:
            self._search = ReverseSearch(self._history, self._edit.text, self._edit.cursor)
            self.draw_prompt()

    def _search_key(self, key: Any, modifier: Any) -> bool:
        """
        Handle a key during a search; return whether it was consumed (else the search was accepted and the
        key is handled as usual).
        """
        search = self._search
        assert search is not None
        if modifier is None and isinstance(key, bytes) and len(key) == 1:
            code = key[0]
            if code == 0x12:
                search.older(self._last_query)
            elif code in (0x7F, 0x08):
                search.erase()
            elif code in (0x03, 0x07):
                self._cancel_search()
                return True
            elif code >= 0x80 or 0x20 <= code < 0x7F:
                search.type("".join(char for char in self._decoder.decode(key) if char.isprintable()))
            else:
                self._accept_search()
                return False
            self.draw_prompt()
            return True
        self._accept_search()
        return key == ESC.encode()

    def _accept_search(self) -> None:
        search, self._search = self._search, None
        assert search is not None
        line, cursor = search.result()
        if search.query:
            self._last_query = search.query
        if search.index < len(self._history.entries):
            self._history.index, self._history.scratch = search.index, search.original[0]
        self._edit.set(line, cursor)
        self.draw_prompt()

    def _cancel_search(self) -> None:
        search, self._search = self._search, None
        assert search is not None
        self._edit.set(*search.original)
        self.draw_prompt()

    def view(self) -> View:
        """
        What the edit area shows: the search, the prompt alone (echo off), or the prompt and the line.
        """
        if self._search is not None:
            line, cursor = self._search.result()
            return View(self._search.label(), line, cursor, line)
        if not self.echo:
            return View(self.prompt, "", 0, "")
        text = self._edit.text
        shown = text if self.decorate is None else self.decorate(text)
        return View(self.prompt, text, self._edit.cursor, shown)

    # Completion.

    def _tab(self, again: bool) -> None:
        """
        Tab: complete a single candidate (and add a space), else the candidates' common prefix; a second Tab
        that adds nothing lists them.
        """
        if not self.echo:
            return
        text, cursor = self._edit.text, self._edit.cursor
        before = text[:cursor]
        start, candidates = self.complete(before)
        start = max(0, min(start, len(before)))
        names = sorted(dict.fromkeys(name for name, _ in candidates))
        if len(names) == 1:
            self._edit.replace(start, cursor, names[0])
            if text[cursor : cursor + 1] == " ":
                self._edit.right()
            else:
                self._edit.insert(" ")
            self.draw_prompt()
        elif names:
            prefix = common_prefix(names)
            if len(prefix) > cursor - start:
                self._edit.replace(start, cursor, prefix)
                self.draw_prompt()
            elif again and not self._listed:
                self._listed = True
                self.write_below(columns(names, self.width))

    def _question(self) -> bool:
        """
        C{?}: list the candidates with their descriptions, unless there are none or the cursor is inside
        quotes (then C{?} is typed).  Return whether it listed.
        """
        if not (self.echo and self.question_lists):
            return False
        before = self._edit.text[: self._edit.cursor]
        if in_quotes(before):
            return False
        if self._listed:
            return True  # listed already, and nothing changed since
        _, candidates = self.complete(before)
        if not candidates:
            return False
        self._listed = True
        self.write_below(describe(candidates))
        return True
