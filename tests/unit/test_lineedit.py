"""
Tests for L{sshfinger.shell.lineedit} and L{sshfinger.shell.editbuffer}.

Keys are fed as the raw bytes an SSH client sends, through insults' C{ServerProtocol} (so its escape parsing is
exercised), and what the editor draws is replayed on L{Screen}, a small terminal model that knows UTF-8, wide
characters and the pending-wrap state at the right margin (Twisted's C{TerminalBuffer} knows none of them).
"""

from __future__ import annotations

import codecs
import unicodedata

from twisted.conch.insults.insults import ServerProtocol, TerminalProtocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.shell.editbuffer import char_width, columns, common_prefix, in_quotes, layout, position
from sshfinger.shell.lineedit import LineEditor

UP, DOWN, LEFT, RIGHT = b"\x1b[A", b"\x1b[B", b"\x1b[D", b"\x1b[C"
HOME, END, DELETE, INSERT = b"\x1b[1~", b"\x1b[4~", b"\x1b[3~", b"\x1b[2~"
HISTORY = ["finger bob", "status hello", "whoami"]


class Screen:
    """
    A terminal screen as xterm behaves: a character written in the last column leaves the cursor there until
    the next character wraps; a wide character that does not fit at the end of a row goes to the next one.

    @ivar cells: one string per cell; the right half of a wide character is C{""}.
    @ivar x: the cursor's column.
    @ivar y: the cursor's row.
    """

    def __init__(self, width: int, height: int) -> None:
        """
        @param width: columns.
        @param height: rows.
        """
        self.width, self.height = width, height
        self.cells = [[" "] * width for _ in range(height)]
        self.x = self.y = 0
        self.pending = False
        self.escape = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def resize(self, width: int) -> None:
        """
        Change the width without re-flowing (rows are cut or padded, as xterm does).
        """
        self.cells = [(row + [" "] * width)[:width] for row in self.cells]
        self.width, self.x, self.pending = width, min(self.x, width - 1), False

    def rows(self) -> list[str]:
        """
        The screen's text, one string per row, trailing blanks removed.
        """
        return ["".join(row).rstrip() for row in self.cells]

    def feed(self, data: bytes) -> None:
        """
        Interpret output bytes.
        """
        for char in self.decoder.decode(data):
            if self.escape:
                self.escape += char
                if self.escape != "\x1b[" and (len(self.escape) == 2 or "@" <= char <= "~"):
                    self._sequence(self.escape)
                    self.escape = ""
            elif char == "\x1b":
                self.escape = char
            elif char == "\r":
                self.x, self.pending = 0, False
            elif char == "\n":
                self._line_feed()
            elif char >= " ":
                self._put(char)

    def _line_feed(self) -> None:
        self.pending = False
        if self.y == self.height - 1:
            del self.cells[0]
            self.cells.append([" "] * self.width)
        else:
            self.y += 1

    def _put(self, char: str) -> None:
        if unicodedata.combining(char):
            self.cells[self.y][self.x if self.pending else max(self.x - 1, 0)] += char
            return
        wide = unicodedata.east_asian_width(char) in "WF"
        if self.pending or self.x + wide >= self.width:
            self.x = 0
            self._line_feed()
        self.cells[self.y][self.x] = char
        if wide:
            self.cells[self.y][self.x + 1] = ""
        self.x += 2 if wide else 1
        if self.x >= self.width:
            self.x, self.pending = self.width - 1, True

    def _sequence(self, seq: str) -> None:
        self.pending = False
        if seq == "\x1bc":
            self.cells = [[" "] * self.width for _ in range(self.height)]
            self.x = self.y = 0
        if not seq.startswith("\x1b[") or seq[2:3] == "?":
            return
        params, final = seq[2:-1], seq[-1]
        n = int(params) if params.isdigit() else 1
        if final == "A":
            self.y = max(self.y - n, 0)
        elif final == "B":
            self.y = min(self.y + n, self.height - 1)
        elif final == "C":
            self.x = min(self.x + n, self.width - 1)
        elif final == "D":
            self.x = max(self.x - n, 0)
        elif final == "H":
            row, _, column = params.partition(";")
            self.y, self.x = int(row or 1) - 1, int(column or 1) - 1
        elif final == "K":
            self.cells[self.y][self.x :] = [" "] * (self.width - self.x)
        elif final == "J" and params == "2":
            self.cells = [[" "] * self.width for _ in range(self.height)]
        elif final == "J":
            self.cells[self.y][self.x :] = [" "] * (self.width - self.x)
            self.cells[self.y + 1 :] = [[" "] * self.width for _ in range(self.height - self.y - 1)]


class PlainHost(TerminalProtocol):
    """
    The smallest owner of a L{LineEditor}: passes it keys and sizes, and takes no callbacks (the defaults).
    """

    def __init__(self) -> None:
        """
        Not connected yet.
        """
        self.editor: LineEditor | None = None

    def make_editor(self) -> LineEditor:
        """
        The editor, with the default callbacks.
        """
        return LineEditor(self.terminal)

    def connectionMade(self) -> None:
        """
        Create the editor and draw the prompt.
        """
        self.editor = self.make_editor()
        self.editor.start()

    def keystrokeReceived(self, keyID: object, modifier: object) -> None:
        """
        Pass a key to the editor.
        """
        assert self.editor is not None
        self.editor.keystroke(keyID, modifier)

    def unhandledControlSequence(self, seq: bytes) -> None:
        """
        Pass an unparsed sequence to the editor.
        """
        assert self.editor is not None
        self.editor.control_sequence(seq)

    def terminalSize(self, width: int, height: int) -> None:
        """
        Pass a resize to the editor.
        """
        assert self.editor is not None
        self.editor.resize(width, height)


class RecordingEditor(PlainHost):
    """
    An owner of a L{LineEditor} that records what it is told, and completes the last word from L{words}.
    """

    words = [("alice", "Alice Liddell"), ("albert", "Albert Einstein"), ("bob", "Bob Dobbs")]

    def __init__(self) -> None:
        """
        Nothing recorded yet.
        """
        super().__init__()
        self.lines: list[str] = []
        self.ended = 0
        self.interrupted = 0

    def make_editor(self) -> LineEditor:
        """
        An editor calling back this owner, with three history lines.
        """
        return LineEditor(
            self.terminal,
            self.lines.append,
            complete=self.complete,
            on_end=self.end_of_input,
            on_interrupt=self.interrupt,
            history=HISTORY,
        )

    def complete(self, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
        """
        Candidates for the last word (quotes are stripped: deciding about quotes is the editor's job).
        """
        start = before_cursor.rfind(" ") + 1
        word = before_cursor[start:].lstrip("\"'")
        return start, [(name, about) for name, about in self.words if name.startswith(word)]

    def end_of_input(self) -> None:
        """
        Count Ctrl-D on an empty line.
        """
        self.ended += 1

    def interrupt(self) -> None:
        """
        Count Ctrl-C, then do the default.
        """
        self.interrupted += 1
        assert self.editor is not None
        self.editor.interrupt()


class EditorTestCase(SynchronousTestCase):
    """
    An editor behind insults' C{ServerProtocol}, and a L{Screen} showing what it drew.
    """

    width = 40
    height = 12
    editor_class: type[PlainHost] = RecordingEditor

    def setUp(self) -> None:
        """
        Connect the editor to a string transport and tell it the terminal size, as the SSH session does.
        """
        self.transport = StringTransport()
        self.server = ServerProtocol(self.editor_class)
        self.server.makeConnection(self.transport)
        self.host = self.server.terminalProtocol
        self.editor = self.host.editor
        self.host.terminalSize(self.width, self.height)
        self.screen = Screen(self.width, self.height)
        self.output = b""

    def keys(self, *chunks: bytes) -> None:
        """
        Type raw bytes, as an SSH client sends them.
        """
        for chunk in chunks:
            self.server.dataReceived(chunk)

    def sync(self) -> None:
        """
        Show everything written so far on the screen.
        """
        data = self.transport.value()
        self.transport.clear()
        self.output += data
        self.screen.feed(data)

    def rows(self) -> list[str]:
        """
        The screen's rows.
        """
        self.sync()
        return self.screen.rows()

    def cursor(self) -> tuple[int, int]:
        """
        The screen cursor's C{(column, row)}.
        """
        self.sync()
        return self.screen.x, self.screen.y

    def line(self) -> str:
        """
        The line being edited.
        """
        return self.editor.current_line()


class HelperTests(SynchronousTestCase):
    """
    The pure helpers of L{sshfinger.shell.editbuffer}.
    """

    def test_widths(self) -> None:
        """
        East Asian wide characters and emoji take two columns, combining marks none.
        """
        self.assertEqual([char_width(c) for c in "a中\u0301🙂"], [1, 2, 0, 2])

    def test_position_is_layout_end(self) -> None:
        """
        L{position} (fast for ASCII) agrees with the last of L{layout}'s positions, at and around the margin.
        """
        for text in ("", "abc", "x" * 10, "x" * 11, "x" * 4000, "a中b" * 7, "e\u0301" * 13):
            for width in (2, 5, 10, 11, 80):
                self.assertEqual(position(text, width), layout(text, width)[-1], (text[:10], width))

    def test_layout_wraps(self) -> None:
        """
        A wide character that does not fit at the end of a row starts the next one; a full row ends at the start
        of the next.
        """
        self.assertEqual(layout("abc中", 4)[-1], (1, 2))
        self.assertEqual(layout("abcd", 4)[-1], (1, 0))

    def test_common_prefix(self) -> None:
        """
        The common prefix of candidates.
        """
        self.assertEqual(common_prefix(["alice", "albert"]), "al")
        self.assertEqual(common_prefix([]), "")

    def test_in_quotes(self) -> None:
        """
        Open double or single quotes are detected; closed or escaped ones are not.
        """
        self.assertTrue(in_quotes('say "hi'))
        self.assertTrue(in_quotes("it's"))
        self.assertFalse(in_quotes('say "hi" there'))
        self.assertFalse(in_quotes('say \\"hi'))

    def test_columns_by_display_width(self) -> None:
        """
        Listed names are padded by display width, so wide names line up.
        """
        self.assertEqual(columns(["中文", "ab", "cd"], 12), ["中文  ab", "cd"])


class MovementTests(EditorTestCase):
    """
    Typing and cursor movement.
    """

    def test_typing_draws(self) -> None:
        """
        The prompt and the typed text are drawn, with the cursor after them.
        """
        self.keys(b"hello")
        self.assertEqual(self.rows()[0], "> hello")
        self.assertEqual(self.cursor(), (7, 0))

    def test_left_right_ctrl_b_f(self) -> None:
        """
        Arrows and Ctrl-B/F move one character; typing inserts at the cursor.
        """
        self.keys(b"ac", LEFT, b"b", b"\x02\x02", b"_", b"\x06\x06", b"!", RIGHT, b".")
        self.assertEqual(self.line(), "_ab!c.")
        self.keys(LEFT, LEFT)
        self.assertEqual(self.cursor(), (6, 0))

    def test_home_end_ctrl_a_e(self) -> None:
        """
        Ctrl-A, Home (either encoding) go to the start; Ctrl-E, End (either encoding) to the end.
        """
        self.keys(b"bc", b"\x01", b"a", END, b"d", HOME, b"<", b"\x05", b">", b"\x1b[H", b"[", b"\x1b[F", b"]")
        self.assertEqual(self.line(), "[<abcd>]")

    def test_word_motion(self) -> None:
        """
        Alt-B and Alt-F (ESC b, ESC f) move by words; the letters are not inserted.
        """
        self.keys(b"one two three", b"\x1bb")
        self.assertEqual(self.cursor(), (10, 0))
        self.keys(b"X", b"\x1bb\x1bb", b"Y", b"\x1bf", b"Z")
        self.assertEqual(self.line(), "one YtwoZ Xthree")

    def test_ctrl_arrows(self) -> None:
        """
        Ctrl-Left and Ctrl-Right (sequences insults does not parse) move by words.
        """
        self.keys(b"one two", b"\x1b[1;5D", b"X", b"\x1b[1;5D\x1b[1;5C", b"Y")
        self.assertEqual(self.line(), "one XtwoY")

    def test_application_mode_keys(self) -> None:
        """
        Arrows and Home in application cursor mode (C{ESC O x}) work like the usual ones.
        """
        self.keys(b"bc", b"\x1bOD", b"_", b"\x1bOH", b"a", b"\x1bOA")
        self.assertEqual(self.line(), "whoami")

    def test_insert_toggles_overwrite(self) -> None:
        """
        Insert toggles overwrite mode, and back.
        """
        self.keys(b"abc", HOME, INSERT, b"XY", INSERT, b"Z")
        self.assertEqual(self.line(), "XYZc")

    def test_combining_marks_travel_with_their_letter(self) -> None:
        """
        Left skips a combining mark with its letter, and Backspace deletes both.
        """
        self.keys("e\u0301x".encode(), LEFT, LEFT, b"[", b"\x05", LEFT, b"\x7f")
        self.assertEqual(self.line(), "[x")


class DeletionTests(EditorTestCase):
    """
    Backspace, Delete, the kills, yank, transpose and Ctrl-D.
    """

    def test_backspace_ctrl_h_delete(self) -> None:
        """
        0x7F and Ctrl-H both delete backward; Delete deletes forward; nothing stale stays on the screen.
        """
        self.keys(b"abcd", b"\x7f", b"\x08", HOME, DELETE)
        self.assertEqual(self.line(), "b")
        self.assertEqual(self.rows()[0], "> b")

    def test_ctrl_k_and_yank(self) -> None:
        """
        Ctrl-K kills to the end; Ctrl-Y yanks it back, twice if asked.
        """
        self.keys(b"set alice", b"\x1bb", b"\x0b")
        self.assertEqual(self.line(), "set ")
        self.keys(b"\x19\x19")
        self.assertEqual(self.line(), "set alicealice")

    def test_ctrl_u(self) -> None:
        """
        Ctrl-U kills to the start; Ctrl-Y yanks it.
        """
        self.keys(b"abc def", LEFT, LEFT, LEFT, b"\x15")
        self.assertEqual(self.line(), "def")
        self.keys(b"\x05\x19")
        self.assertEqual(self.line(), "defabc ")

    def test_ctrl_w(self) -> None:
        """
        Ctrl-W kills the whitespace-delimited word before the cursor.
        """
        self.keys(b"set alice st-at.us  ", b"\x17")
        self.assertEqual(self.line(), "set alice ")

    def test_alt_d_and_alt_backspace(self) -> None:
        """
        Alt-D kills the next word; Alt-Backspace the (alphanumeric) word before the cursor.
        """
        self.keys(b"one two", b"\x01\x1bd")
        self.assertEqual(self.line(), " two")
        self.keys(b"\x05", b"/path/to", b"\x1b\x7f")
        self.assertEqual(self.line(), " two/path/")

    def test_ctrl_t(self) -> None:
        """
        Ctrl-T swaps the last two characters at the end of the line, or the two around the cursor.
        """
        self.keys(b"ab", b"\x14")
        self.assertEqual(self.line(), "ba")
        self.keys(b"cd", LEFT, b"\x14")
        self.assertEqual(self.line(), "badc")

    def test_ctrl_d(self) -> None:
        """
        Ctrl-D deletes forward on a line; on an empty line it calls end_of_input.
        """
        self.keys(b"ab", HOME, b"\x04")
        self.assertEqual((self.line(), self.host.ended), ("b", 0))
        self.keys(b"\x04\x04")
        self.assertEqual((self.line(), self.host.ended), ("", 1))

    def test_control_characters_never_inserted(self) -> None:
        """
        Unbound control characters are ignored; Ctrl-K and Ctrl-L do their job instead of inserting themselves.
        """
        self.keys(b"a\x00\x0f\x16\x1c\x1d\x1e\x1f\x0c\x07b\x0b\r")
        self.assertEqual(self.host.lines, ["ab"])


class DefaultsTests(EditorTestCase):
    """
    The default override points of a plain L{LineEditor}.
    """

    editor_class = PlainHost

    def test_end_of_input_disconnects(self) -> None:
        """
        Ctrl-D on an empty line closes the connection by default.
        """
        self.keys(b"\x04")
        self.assertTrue(self.transport.disconnecting)

    def test_complete_and_question_mark(self) -> None:
        """
        With no completions, Tab does nothing and C{?} is typed.
        """
        self.assertEqual(self.editor.complete("abc"), (3, []))
        self.keys(b"x\t?")
        self.assertEqual(self.line(), "x?")


class LineTests(EditorTestCase):
    """
    Enter, Ctrl-C, Ctrl-L, UTF-8, echo, long lines, the margin, resizes, printing above the line.
    """

    def test_enter(self) -> None:
        """
        CR, LF and CR LF each submit one line, and a fresh prompt follows each.
        """
        self.keys(b"a\r", b"b\n", b"c\r\n")
        self.assertEqual(self.host.lines, ["a", "b", "c"])
        self.assertEqual(self.rows()[:4], ["> a", "> b", "> c", ">"])

    def test_ctrl_c(self) -> None:
        """
        Ctrl-C calls interrupt, which shows C{^C}, drops the line and prompts again.
        """
        self.keys(b"oops\x03")
        self.assertEqual((self.line(), self.host.lines, self.host.interrupted), ("", [], 1))
        self.assertEqual(self.rows()[:2], ["> oops^C", ">"])
        self.assertEqual(self.cursor(), (2, 1))

    def test_ctrl_l(self) -> None:
        """
        Ctrl-L clears the screen and redraws the prompt and line at the top.
        """
        self.keys(b"one\r", b"two\r", b"three", b"\x0c")
        self.assertEqual(self.rows()[:2], ["> three", ""])
        self.assertEqual(self.line(), "three")

    def test_utf8_bytewise(self) -> None:
        """
        UTF-8 arriving one byte at a time is decoded; the screen shows each character in its column.
        """
        for byte in "é ü 中!".encode():
            self.keys(bytes([byte]))
        self.assertEqual(self.rows()[0], "> é ü 中!")
        self.assertEqual([self.screen.cells[0][i] for i in (2, 4, 6, 8)], ["é", "ü", "中", "!"])
        self.assertEqual(self.cursor(), (9, 0))
        self.keys(b"\r")
        self.assertEqual(self.host.lines, ["é ü 中!"])

    def test_wide_characters_edit(self) -> None:
        """
        The cursor moves by display columns over wide characters, and inserting between them redraws right.
        """
        self.keys("中文🙂".encode(), LEFT, LEFT)
        self.assertEqual(self.cursor(), (4, 0))
        self.keys(b"a")
        self.assertEqual(self.rows()[0], "> 中a文🙂")
        self.assertEqual(self.screen.cells[0][7], "🙂")
        self.assertEqual(self.cursor(), (5, 0))

    def test_invalid_utf8_replaced(self) -> None:
        """
        Bytes that are not UTF-8 become U+FFFD instead of being dropped or crashing.
        """
        self.keys(b"\xffa\r")
        self.assertEqual(self.host.lines, ["\ufffda"])

    def test_non_ascii_prompt(self) -> None:
        """
        A prompt with wide characters is measured by display width.
        """
        self.editor.set_prompt("中> ")
        self.editor.draw_prompt()
        self.keys(b"ab", LEFT)
        self.assertEqual(self.rows()[0], "中> ab")
        self.assertEqual(self.cursor(), (5, 0))

    def test_coloured_prompt(self) -> None:
        """
        Escape sequences in the prompt take no room: the cursor is placed by what is visible.
        """
        self.editor.set_prompt("\x1b[1m>\x1b[0m ")
        self.editor.draw_prompt()
        self.keys(b"abc", LEFT)
        self.assertEqual((self.rows()[0], self.cursor()), ("> abc", (4, 0)))

    def test_decorate(self) -> None:
        """
        A decorate function colours the line as drawn, while the line itself stays plain.
        """
        self.editor.decorate = lambda text: "\x1b[1m" + text + "\x1b[0m"
        self.keys(b"ab")
        self.sync()
        self.assertIn(b"\x1b[1mab\x1b[0m", self.output)
        self.assertEqual((self.rows()[0], self.line()), ("> ab", "ab"))

    def test_paste_is_cheap(self) -> None:
        """
        A long paste arriving in one chunk is not redrawn whole for every character.
        """
        self.keys(b"p" * 2000)
        self.sync()
        self.assertEqual(self.line(), "p" * 2000)
        self.assertLess(len(self.output), 3000)
        self.assertEqual(self.cursor(), (2002 % self.width, self.height - 1))
        self.assertEqual(self.rows()[-2], "p" * self.width)

    def test_echo_off(self) -> None:
        """
        With echo off the prompt is drawn but typed characters are not; the line is submitted, kept out of the
        history, and history and completion keys do nothing.
        """
        self.editor.echo = False
        self.editor.set_prompt("Password: ")
        self.editor.draw_prompt()
        self.keys(b"s3", UP, b"\t", b"\x12", b"cr\xc3\xa9t\r")
        self.assertEqual(self.host.lines, ["s3crét"])
        self.assertEqual(self.rows()[0], "Password:")
        self.assertNotIn(b"s3", self.output)
        self.assertEqual(self.editor.history_lines(), HISTORY)

    def test_echo_off_kills_not_kept(self) -> None:
        """
        Text killed while echo is off cannot be yanked back into view later.
        """
        self.editor.echo = False
        self.keys(b"secret\x15")
        self.editor.echo = True
        self.keys(b"\x19")
        self.assertEqual(self.line(), "")

    def test_long_line_editable(self) -> None:
        """
        A line longer than the terminal wraps over rows and stays editable from its start.
        """
        self.keys(b"x" * 100, b"\x01", b"START ")
        self.assertEqual(self.cursor(), (8, 0))
        self.keys(b"\x05", b" END")
        rows = self.rows()
        self.assertEqual(rows[0], "> START " + "x" * 32)
        self.assertEqual(rows[1:4], ["x" * 40, "x" * 28 + " END", ""])
        self.assertEqual(self.cursor(), (32, 2))
        self.keys(b"\r")
        self.assertEqual(self.host.lines, ["START " + "x" * 100 + " END"])

    def test_line_ending_at_margin(self) -> None:
        """
        A line that fills the row exactly puts the cursor at the start of the next row, and typing goes on there.
        """
        self.keys(b"y" * 38)
        self.assertEqual(self.cursor(), (0, 1))
        self.keys(b"z")
        self.assertEqual(self.rows()[:2], ["> " + "y" * 38, "z"])
        self.keys(b"\x7f")
        self.assertEqual(self.cursor(), (0, 1))
        self.keys(b"\x01")
        self.assertEqual(self.cursor(), (2, 0))

    def test_wide_character_at_margin(self) -> None:
        """
        A wide character that does not fit in the last column goes to the next row, where the cursor follows.
        """
        self.keys(b"a" * 37, "中".encode())
        self.assertEqual(self.screen_cell(1, 0), "中")
        self.assertEqual(self.cursor(), (2, 1))
        self.keys(b"b", LEFT, LEFT, b"c")
        self.assertEqual(self.line(), "a" * 37 + "c中b")
        self.assertEqual(self.rows()[:2], ["> " + "a" * 37 + "c", "中b"])

    def screen_cell(self, row: int, column: int) -> str:
        """
        One cell of the screen.
        """
        self.sync()
        return self.screen.cells[row][column]

    def test_resize_narrower(self) -> None:
        """
        After the terminal narrows, the line is redrawn wrapped to the new width, nothing stale left.
        """
        self.editor.write_line("one\ntwo\nthree")
        self.keys(b"z" * 30)
        self.sync()
        self.screen.resize(20)
        self.host.terminalSize(20, self.height)
        rows = self.rows()
        self.assertEqual(rows[:2], ["one", "two"])
        self.assertEqual(rows[2:5], ["> " + "z" * 18, "z" * 12, ""])
        self.assertEqual(self.cursor(), (12, 3))

    def test_resize_wider(self) -> None:
        """
        After the terminal widens, a wrapped line is joined onto one row.
        """
        self.screen.resize(20)
        self.host.terminalSize(20, self.height)
        self.keys(b"z" * 30)
        self.assertEqual(self.rows()[1], "z" * 12)
        self.sync()
        self.screen.resize(40)
        self.host.terminalSize(40, self.height)
        self.assertEqual(self.rows()[:2], ["> " + "z" * 30, ""])
        self.assertEqual(self.cursor(), (32, 0))

    def test_write_line_above(self) -> None:
        """
        Text printed while a line is being typed appears above it; the typed line stays and typing goes on.
        """
        self.keys(b"half typed")
        self.editor.write_line("Idle warning")
        self.keys(b"!")
        self.assertEqual(self.rows()[:3], ["Idle warning", "> half typed!", ""])
        self.assertEqual(self.line(), "half typed!")

    def test_write_line_above_wrapped_line(self) -> None:
        """
        Printing above a line that wraps, with the cursor on its first row, leaves no piece of it behind.
        """
        self.keys(b"x" * 60, b"\x01")
        self.editor.write_line("msg")
        self.assertEqual(self.rows()[:4], ["msg", "> " + "x" * 38, "x" * 22, ""])
        self.assertEqual(self.cursor(), (2, 1))

    def test_write_text(self) -> None:
        """
        write_text turns newlines into CR LF and ends the text's row before the prompt.
        """
        self.keys(b"ab")
        self.editor.write_text("first\nsecond")
        self.assertEqual(self.rows()[:3], ["first", "second", "> ab"])
        self.assertIn(b"first\r\n", self.output.replace(b"\r\r\n", b"\r\n"))

    def test_set_line_and_prompt(self) -> None:
        """
        set_line replaces the line (cursor at its end); set_prompt and draw_prompt redraw with a new prompt.
        """
        self.editor.set_line("abc")
        self.editor.set_prompt("$ ")
        self.editor.draw_prompt()
        self.assertEqual((self.rows()[0], self.line(), self.cursor()), ("$ abc", "abc", (5, 0)))


class HistoryTests(EditorTestCase):
    """
    Up/Down and Ctrl-P/N.
    """

    def test_up_down(self) -> None:
        """
        Up and Ctrl-P go back, Down and Ctrl-N forward, and the screen follows.
        """
        self.keys(UP)
        self.assertEqual(self.line(), "whoami")
        self.keys(b"\x10")
        self.assertEqual(self.rows()[0], "> status hello")
        self.keys(DOWN)
        self.assertEqual(self.rows()[0], "> whoami")
        self.keys(b"\x0e")
        self.assertEqual(self.line(), "")

    def test_up_keeps_half_typed_line_aside(self) -> None:
        """
        Up does not save a half-typed line into history; coming back down past the newest entry restores it.
        """
        self.keys(b"half", UP, UP)
        self.assertEqual(self.line(), "status hello")
        self.keys(DOWN, DOWN)
        self.assertEqual(self.line(), "half")
        self.assertEqual(self.editor.history_lines(), HISTORY)

    def test_submitted_lines_join_history(self) -> None:
        """
        Submitted lines are appended, not blank ones nor an immediate repeat, and Up finds them.
        """
        self.keys(b"who\r", b"who\r", b"  \r", UP)
        self.assertEqual(self.editor.history_lines(), [*HISTORY, "who"])
        self.assertEqual(self.line(), "who")


class SearchTests(EditorTestCase):
    """
    Ctrl-R reverse incremental search.
    """

    def test_find_refine_older_enter(self) -> None:
        """
        Ctrl-R finds the newest match, refines as you type, finds older matches, and Enter runs the match.
        """
        self.keys(b"\x12", b"o")
        self.assertEqual(self.rows()[0], "(reverse-i-search)`o': whoami")
        self.keys(b"\x12")
        self.assertEqual(self.rows()[0], "(reverse-i-search)`o': status hello")
        self.keys(b"\x12")
        self.assertEqual(self.rows()[0], "(reverse-i-search)`o': finger bob")
        self.keys(b"b")
        self.assertEqual(self.rows()[0], "(reverse-i-search)`ob': finger bob")
        self.keys(b"\r")
        self.assertEqual(self.host.lines, ["finger bob"])
        self.assertEqual(self.rows()[:2], ["> finger bob", ">"])

    def test_backspace_and_failure(self) -> None:
        """
        A query that matches nothing says so; Backspace shortens the query and searches again.
        """
        self.keys(b"\x12", b"whx")
        self.assertEqual(self.rows()[0], "(failed reverse-i-search)`whx': whoami")
        self.keys(b"\x7f")
        self.assertEqual(self.rows()[0], "(reverse-i-search)`wh': whoami")

    def test_escape_accepts_for_editing(self) -> None:
        """
        Esc accepts the match into the line, cursor at the match, without submitting it.
        """
        self.keys(b"draft", b"\x12", b"hel", b"\x1b\x1b")
        self.assertEqual((self.line(), self.host.lines), ("status hello", []))
        self.assertEqual(self.rows()[0], "> status hello")
        self.assertEqual(self.cursor(), (9, 0))
        self.keys(b"X")
        self.assertEqual(self.line(), "status Xhello")

    def test_arrow_accepts(self) -> None:
        """
        An arrow key accepts the match and moves in it.
        """
        self.keys(b"\x12", b"bob", RIGHT)
        self.assertEqual(self.line(), "finger bob")
        self.assertEqual(self.cursor(), (10, 0))
        self.keys(b"\x05!")
        self.assertEqual(self.line(), "finger bob!")

    def test_repeat_last_search(self) -> None:
        """
        Ctrl-R Ctrl-R searches again for the previous query.
        """
        self.keys(b"\x12", b"o", b"\x1b\x1b", b"\x15", b"\x12\x12")
        self.assertEqual(self.rows()[0], "(reverse-i-search)`o': whoami")

    def test_ctrl_g_and_ctrl_c_cancel(self) -> None:
        """
        Ctrl-G and Ctrl-C end the search and give back the line as it was before it.
        """
        self.keys(b"draft", b"\x12", b"who", b"\x07")
        self.assertEqual(self.line(), "draft")
        self.assertEqual(self.rows()[0], "> draft")
        self.keys(b"\x12", b"fin", b"\x03")
        self.assertEqual((self.line(), self.host.interrupted), ("draft", 0))


class CompletionTests(EditorTestCase):
    """
    Tab and C{?}.
    """

    def test_single_candidate(self) -> None:
        """
        Tab with one candidate completes it and adds a space.
        """
        self.keys(b"finger b\t")
        self.assertEqual(self.line(), "finger bob ")
        self.assertEqual(self.cursor(), (13, 0))

    def test_single_candidate_mid_line(self) -> None:
        """
        Completing in the middle of a line does not double the following space.
        """
        self.keys(b"finger b now", LEFT * 4, b"\t", b"!")
        self.assertEqual(self.line(), "finger bob !now")

    def test_common_prefix_then_list(self) -> None:
        """
        Tab with several candidates inserts their common prefix; a second Tab lists them below the line, and
        the prompt and line are drawn again under the list.
        """
        self.keys(b"finger a\t")
        self.assertEqual(self.line(), "finger al")
        self.assertNotIn("albert", "\n".join(self.rows()))
        self.keys(b"\t")
        self.assertEqual(self.rows()[:3], ["> finger al", "albert  alice", "> finger al"])
        self.assertEqual(self.cursor(), (11, 2))

    def test_question_mark_lists(self) -> None:
        """
        C{?} where candidates exist lists them (in the order complete gave) with their descriptions and types
        nothing.
        """
        self.keys(b"finger al?")
        rows = self.rows()
        self.assertEqual(rows[:4], ["> finger al", "  alice   Alice Liddell", "  albert  Albert Einstein", "> finger al"])
        self.assertEqual(self.line(), "finger al")

    def test_question_mark_literal(self) -> None:
        """
        C{?} inside quotes, or where nothing completes, is typed as itself.
        """
        self.keys(b'status "al?')
        self.assertEqual(self.line(), 'status "al?')
        self.keys(b"\x15", b"zz?")
        self.assertEqual(self.line(), "zz?")

    def test_question_mark_literal_when_not_listing(self) -> None:
        """
        An editor with C{question_lists} off (the Python manhole) always types C{?}.
        """
        self.editor.question_lists = False
        self.keys(b"al?")
        self.assertEqual(self.line(), "al?")

    def test_repeated_listing_once(self) -> None:
        """
        A run of C{?} (or of Tabs) lists the candidates once, not once per key (a paste of a thousand C{?} must
        not print a thousand lists); after another key it lists again.
        """
        self.keys(b"al", b"?" * 1000)
        self.sync()
        self.assertEqual(self.output.count(b"Alice Liddell"), 1)
        self.keys(b"\x15al", b"\t" * 1000)
        self.sync()
        self.assertEqual(self.output.count(b"albert  alice"), 1)
        self.keys(b"i?")
        self.sync()
        self.assertEqual(self.output.count(b"Alice Liddell"), 2)
