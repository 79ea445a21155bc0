"""
Tests for L{sshfinger.shell.lineedit}: every key binding, fed as raw terminal bytes through insults'
C{ServerProtocol}, with the output drawn on an in-memory terminal (C{TerminalBuffer}).
"""

from __future__ import annotations

from twisted.conch.insults.helper import TerminalBuffer
from twisted.conch.insults.insults import ClientProtocol, ServerProtocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.shell.lineedit import LineEditor, char_width, common_prefix, layout

UP, DOWN, LEFT, RIGHT = b"\x1b[A", b"\x1b[B", b"\x1b[D", b"\x1b[C"
HOME, END, DELETE = b"\x1b[1~", b"\x1b[4~", b"\x1b[3~"


class RecordingEditor(LineEditor):
    """
    A L{LineEditor} that records submitted lines and ends, and completes from a fixed word list.
    """

    words = [("alice", "Alice Liddell"), ("albert", "Albert"), ("bob", "Bob")]

    def __init__(self) -> None:
        """
        Nothing submitted yet.
        """
        super().__init__(["finger bob", "status hello", "whoami"])
        self.lines: list[str] = []
        self.ended = 0
        self.prompt = "> "

    def line_submitted(self, line: str) -> None:
        """
        Record the line.
        """
        self.lines.append(line)

    def complete(self, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
        """
        Complete the last word from L{words}, not inside quotes.
        """
        if before_cursor.count('"') % 2:
            return len(before_cursor), []
        start = before_cursor.rfind(" ") + 1
        word = before_cursor[start:]
        return start, [(name, about) for name, about in self.words if name.startswith(word)]

    def end_of_input(self) -> None:
        """
        Count Ctrl-D on an empty line.
        """
        self.ended += 1


class EditorTestCase(SynchronousTestCase):
    """
    An editor behind insults, and a screen showing what it drew.
    """

    width = 40

    def setUp(self) -> None:
        """
        Connect the editor to a string transport.
        """
        self.transport = StringTransport()
        self.server = ServerProtocol(RecordingEditor)
        self.server.makeConnection(self.transport)
        self.editor: RecordingEditor = self.server.terminalProtocol
        self.editor.terminalSize(self.width, 10)

    def keys(self, *chunks: bytes) -> None:
        """
        Type raw bytes, as an SSH client sends them.
        """
        for chunk in chunks:
            self.server.dataReceived(chunk)

    def screen(self, width: int | None = None) -> list[str]:
        """
        Replay everything drawn so far on a fresh terminal of C{width} columns; return its rows.
        """
        buffer = TerminalBuffer()
        client = ClientProtocol(lambda: buffer)
        client.makeConnection(StringTransport())
        buffer.width, buffer.height = width or self.width, 10
        buffer.reset()
        client.dataReceived(self.transport.value())
        self.buffer = buffer
        return bytes(buffer).decode("utf-8", "replace").split("\n")

    def line(self) -> str:
        """
        The line being edited.
        """
        return self.editor.current_line()


class HelperTests(SynchronousTestCase):
    """
    The pure helpers.
    """

    def test_widths(self) -> None:
        """
        Wide characters take two columns, combining marks none.
        """
        self.assertEqual([char_width(c) for c in "a中\u0301"], [1, 2, 0])

    def test_layout_wraps_wide_characters(self) -> None:
        """
        A wide character that does not fit at the end of a row starts the next one.
        """
        self.assertEqual(layout("abc中", 4)[-1], (1, 2))
        self.assertEqual(layout("abcd", 4)[-1], (1, 0))

    def test_common_prefix(self) -> None:
        """
        The common prefix of candidates.
        """
        self.assertEqual(common_prefix(["alice", "albert"]), "al")
        self.assertEqual(common_prefix([]), "")


class MovementTests(EditorTestCase):
    """
    Cursor movement and insertion.
    """

    def test_home_end_insert(self) -> None:
        """
        Ctrl-A/Home and Ctrl-E/End move to the ends; typing inserts at the cursor.
        """
        self.keys(b"bc", b"\x01", b"a", END, b"d", HOME, b">", b"\x05", b"!")
        self.assertEqual(self.line(), ">abcd!")

    def test_left_right_ctrl_b_f(self) -> None:
        """
        Arrows and Ctrl-B/F move one character.
        """
        self.keys(b"ac", LEFT, b"b", b"\x02\x02", b"_", b"\x06\x06\x06", b"!", RIGHT, b"?")
        self.assertEqual(self.line(), "_abc!?")

    def test_word_motion(self) -> None:
        """
        Alt-B and Alt-F move by words.
        """
        self.keys(b"one two three", b"\x1bb", b"X", b"\x1bb\x1bb", b"Y", b"\x1bf", b"Z")
        self.assertEqual(self.line(), "one YtwoZ Xthree")

    def test_insert_toggles_overwrite(self) -> None:
        """
        Insert toggles overwrite mode.
        """
        self.keys(b"abc", HOME, b"\x1b[2~", b"XY", b"\x1b[2~", b"Z")
        self.assertEqual(self.line(), "XYZc")

    def test_screen_and_cursor(self) -> None:
        """
        The screen shows the prompt and line; the cursor stands where editing happens.
        """
        self.keys(b"hello", LEFT, LEFT)
        rows = self.screen()
        self.assertEqual(rows[0].rstrip(), "> hello")
        self.assertEqual(self.buffer.reportCursorPosition(), (5, 0))


class DeletionTests(EditorTestCase):
    """
    Backspace, Delete, kills and yank.
    """

    def test_backspace_and_ctrl_h(self) -> None:
        """
        0x7F and Ctrl-H both delete backward; Delete deletes forward.
        """
        self.keys(b"abcd", b"\x7f", b"\x08", HOME, DELETE)
        self.assertEqual(self.line(), "b")
        self.assertEqual(self.screen()[0].rstrip(), "> b")

    def test_kill_and_yank(self) -> None:
        """
        Ctrl-K kills to the end, Ctrl-U to the start, Ctrl-W the previous word; Ctrl-Y yanks the last kill.
        """
        self.keys(b"set alice status", b"\x17")
        self.assertEqual(self.line(), "set alice ")
        self.keys(b"\x19\x19")
        self.assertEqual(self.line(), "set alice statusstatus")
        self.keys(b"\x01\x1bf", b"\x0b")
        self.assertEqual(self.line(), "set")
        self.keys(b"\x15")
        self.assertEqual(self.line(), "")
        self.keys(b"\x19")
        self.assertEqual(self.line(), "set")

    def test_alt_d_and_transpose(self) -> None:
        """
        Alt-D kills the next word; Ctrl-T transposes.
        """
        self.keys(b"one two", b"\x01\x1bd")
        self.assertEqual(self.line(), " two")
        self.keys(b"\x05\x14")
        self.assertEqual(self.line(), " tow")

    def test_ctrl_d(self) -> None:
        """
        Ctrl-D deletes forward on a line; on an empty line it ends input.
        """
        self.keys(b"ab", HOME, b"\x04")
        self.assertEqual((self.line(), self.editor.ended), ("b", 0))
        self.keys(b"\x04\x04")
        self.assertEqual(self.editor.ended, 1)

    def test_control_characters_never_inserted(self) -> None:
        """
        Unbound control characters (Ctrl-V, Ctrl-O...) are ignored, not inserted raw.
        """
        self.keys(b"a\x16\x0f\x1cb")
        self.assertEqual(self.line(), "ab")


class LineTests(EditorTestCase):
    """
    Enter, Ctrl-C, Ctrl-L, UTF-8, echo, long lines, resize, printing above.
    """

    def test_enter_submits(self) -> None:
        """
        Enter submits the line (CR or LF) and starts a new empty one.
        """
        self.keys(b"hello\r", b"world\n")
        self.assertEqual(self.editor.lines, ["hello", "world"])
        self.assertEqual(self.line(), "")

    def test_ctrl_c_drops_line(self) -> None:
        """
        Ctrl-C drops the line without submitting it.
        """
        self.keys(b"oops\x03")
        self.assertEqual((self.line(), self.editor.lines), ("", []))
        self.assertIn("> oops^C", self.screen()[0])

    def test_ctrl_l_clears(self) -> None:
        """
        Ctrl-L clears the screen and redraws the prompt and line at the top.
        """
        self.keys(b"one\r", b"two\r", b"three", b"\x0c")
        rows = self.screen()
        self.assertEqual(rows[0].rstrip(), "> three")
        self.assertEqual(self.line(), "three")

    def test_utf8_input(self) -> None:
        """
        Multi-byte UTF-8 arriving a byte at a time is decoded; editing works on characters, not bytes.
        """
        for byte in "é ü 中".encode():
            self.keys(bytes([byte]))
        self.keys(b"\x7f", "文".encode(), b"\r")
        self.assertEqual(self.editor.lines, ["é ü 文"])
        self.assertIn("é ü 文".encode(), self.transport.value())

    def test_wide_characters_cursor(self) -> None:
        """
        The cursor is placed by display columns: after a wide character it moves two columns.
        """
        self.keys("中文".encode(), LEFT)
        self.transport.clear()
        self.editor.draw_prompt()
        self.assertTrue(self.transport.value().endswith(b"\r\x1b[4C"))

    def test_echo_off(self) -> None:
        """
        With echo off typed characters are not drawn, not kept in history, but are submitted.
        """
        self.editor.echo = False
        self.keys(b"s3cret\r")
        self.assertNotIn(b"s3cret", self.transport.value())
        self.assertEqual(self.editor.lines, ["s3cret"])
        self.assertNotIn("s3cret", self.editor.history_lines())

    def test_long_line_editable(self) -> None:
        """
        A line longer than the terminal wraps over rows and stays editable from its start.
        """
        text = b"x" * 100
        self.keys(text, b"\x01", b"START ", b"\x05", b" END")
        rows = self.screen()
        self.assertEqual(rows[0], "> START " + "x" * 32)
        self.assertEqual("".join(row.rstrip() for row in rows[:4]), "> START " + "x" * 100 + " END")
        self.keys(b"\r")
        self.assertEqual(self.editor.lines, ["START " + "x" * 100 + " END"])

    def test_line_ending_at_margin(self) -> None:
        """
        A line that fills the row exactly puts the cursor at the start of the next row.
        """
        self.keys(b"y" * (self.width - 2))
        rows = self.screen()
        self.assertEqual(rows[0], "> " + "y" * (self.width - 2))
        self.assertEqual(self.buffer.reportCursorPosition(), (0, 1))

    def test_resize_rewraps(self) -> None:
        """
        After a resize the edit area is redrawn for the new width.
        """
        self.keys(b"z" * 30)
        self.transport.clear()
        self.editor.terminalSize(20, 10)
        rows = self.screen(width=20)
        self.assertEqual(rows[0], "> " + "z" * 18)
        self.assertEqual(rows[1].rstrip(), "z" * 12)

    def test_write_line_above(self) -> None:
        """
        Text printed while a line is being typed appears above it; the typed line stays intact.
        """
        self.keys(b"half typed")
        self.editor.write_line("Idle warning")
        rows = self.screen()
        self.assertEqual(rows[0].rstrip(), "Idle warning")
        self.assertEqual(rows[1].rstrip(), "> half typed")
        self.assertEqual(self.line(), "half typed")


class HistoryTests(EditorTestCase):
    """
    Up/Down, Ctrl-P/N and Ctrl-R.
    """

    def test_up_down(self) -> None:
        """
        Up and Ctrl-P go back, Down and Ctrl-N forward.
        """
        self.keys(UP)
        self.assertEqual(self.line(), "whoami")
        self.keys(b"\x10")
        self.assertEqual(self.line(), "status hello")
        self.keys(DOWN)
        self.assertEqual(self.line(), "whoami")
        self.keys(b"\x0e")
        self.assertEqual(self.line(), "")

    def test_up_keeps_half_typed_line_aside(self) -> None:
        """
        Up does not save a half-typed line into history; coming back down restores it.
        """
        self.keys(b"half", UP, UP)
        self.assertEqual(self.line(), "status hello")
        self.keys(DOWN, DOWN)
        self.assertEqual(self.line(), "half")
        self.assertEqual(self.editor.history_lines(), ["finger bob", "status hello", "whoami"])

    def test_submitted_lines_join_history(self) -> None:
        """
        Submitted lines are appended, not blank ones nor an immediate repeat.
        """
        self.keys(b"who\r", b"who\r", b"  \r")
        self.assertEqual(self.editor.history_lines()[-2:], ["whoami", "who"])

    def test_reverse_search(self) -> None:
        """
        Ctrl-R finds the newest match, refines as you type, finds older matches, and Enter runs the match.
        """
        self.keys(b"\x12", b"o")
        self.assertIn("(reverse-i-search)`o': whoami", self.screen()[0])
        self.keys(b"\x12")
        self.assertIn("`o': status hello", self.screen()[0])
        self.keys(b"\x12")
        self.assertIn("`o': finger bob", self.screen()[0])
        self.keys(b"\x7f", b"st")
        self.assertIn("`st': status hello", self.screen()[0])
        self.keys(b"\r")
        self.assertEqual(self.editor.lines, ["status hello"])

    def test_reverse_search_accept_and_cancel(self) -> None:
        """
        An arrow key accepts the match for editing; Ctrl-G cancels back to the original line; a query that
        matches nothing says so.
        """
        self.keys(b"\x12", b"fin", RIGHT)
        self.assertEqual(self.line(), "finger bob")
        self.keys(b"\x15", b"draft", b"\x12", b"zzz")
        self.assertIn("failed reverse-i-search", self.screen()[0])
        self.keys(b"\x07")
        self.assertEqual(self.line(), "draft")


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

    def test_common_prefix_then_list(self) -> None:
        """
        Tab with several candidates inserts their common prefix; a second Tab lists them.
        """
        self.keys(b"finger a\t")
        self.assertEqual(self.line(), "finger al")
        self.assertNotIn("albert", "\n".join(self.screen()))
        self.keys(b"\t")
        rows = self.screen()
        self.assertIn("alice", "\n".join(rows))
        self.assertIn("albert", "\n".join(rows))
        self.assertEqual(self.line(), "finger al")

    def test_question_mark_lists(self) -> None:
        """
        C{?} where candidates exist lists them with descriptions and inserts nothing.
        """
        self.keys(b"finger al?")
        text = "\n".join(self.screen())
        self.assertIn("alice", text)
        self.assertIn("Alice Liddell", text)
        self.assertEqual(self.line(), "finger al")

    def test_question_mark_literal(self) -> None:
        """
        C{?} inside quotes or where nothing completes is typed as itself.
        """
        self.keys(b'status "why?')
        self.assertEqual(self.line(), 'status "why?')
        self.keys(b"\x15", b"zz?")
        self.assertEqual(self.line(), "zz?")
