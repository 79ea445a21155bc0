"""
L{EditArea}: the drawing half of L{sshfinger.shell.lineedit.LineEditor}, on an insults terminal it is given.

The edit area is the prompt and the line being edited, wrapped over as many rows as the terminal width needs.
It is always redrawn whole: move up to its first row, erase to the end of the screen, write the prompt and the
line, then move the cursor to its place, computed from display widths.  Output from the program is printed above
it (L{EditArea.write_text}) or below it (L{EditArea.write_below}), and it is drawn again underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from twisted.conch.insults.insults import ITerminalTransport

from sshfinger.shell.editbuffer import advance, char_width, position, strip_escapes

ESC = "\x1b"


class View(NamedTuple):
    """
    What the edit area shows.

    @ivar prompt: the prompt (escape sequences in it take no room).
    @ivar text: the text after it, as laid out.
    @ivar cursor: the cursor's index in C{text}.
    @ivar shown: C{text} as written (possibly with colour escape sequences added).
    """

    prompt: str
    text: str
    cursor: int
    shown: str


class EditArea:
    """
    Draws a L{View} on an insults terminal, keeping track of the rows it covers.

    @ivar terminal: where it draws.
    @ivar prompt: the prompt, drawn before the line.
    @ivar width: the terminal's width in columns.
    @ivar height: the terminal's height in rows.
    """

    prompt = "> "

    def __init__(self, terminal: ITerminalTransport, active: Callable[[], bool] | None = None) -> None:
        """
        @param terminal: the terminal to draw on.
        @param active: tells whether drawing makes sense (besides being started and not stopped); by default
            always.
        """
        self.terminal = terminal
        self.width, self.height = 80, 24
        self._active = active
        self._connected = False
        #: The cursor's row, counted from the edit area's first row.
        self._cursor_row = 0
        #: Where the end of the drawn text is, as C{(row, column)} from the edit area's first row and column.
        self._end = (0, 0)
        #: Whether redraws wait for L{release} (while a chunk of input is handled), and whether one is due.
        self._holding = False
        self._dirty = False

    def view(self) -> View:
        """
        What to draw: subclasses show their line; this shows only the prompt.
        """
        return View(self.prompt, "", 0, "")

    def decorated(self) -> bool:
        """
        Whether the line is drawn with added escape sequences (then it is always redrawn whole).
        """
        return False

    def start(self) -> None:
        """
        Start drawing: draw the prompt where the cursor is (no terminal reset: the client's scrollback stays).
        """
        self._connected = True
        self._cursor_row, self._end = 0, (0, 0)
        self.draw_prompt()

    def stop(self) -> None:
        """
        Stop drawing for good (the connection is gone).
        """
        self._connected = False

    def is_active(self) -> bool:
        """
        Whether drawing makes sense: started, not stopped, and the owner agrees.
        """
        return self._connected and (self._active is None or self._active())

    def resize(self, width: int, height: int) -> None:
        """
        The terminal was resized: re-wrap the edit area for the new width.

        Terminals that re-flow wrapped rows move the cursor to its row in the new layout; others leave it where
        it was.  Redrawing from the higher of the two leaves nothing stale behind in either case.
        """
        old_row = self._cursor_row
        self.width, self.height = max(width, 2), max(height, 1)
        if self._connected:
            view = self.view()
            new_row = position(strip_escapes(view.prompt) + view.text[: view.cursor], self.width)[0]
            self._cursor_row = max(old_row, new_row)
            self.draw_prompt()

    def _write(self, text: str) -> None:
        if self.is_active():
            self.terminal.write(text.encode("utf-8"))

    def hold(self) -> None:
        """
        Hold redraws until L{release}: keys handled in one chunk of input (a paste of arrows, say) then cost one
        redraw, however many there are.
        """
        self._holding = True

    def release(self) -> None:
        """
        Stop holding redraws, and draw once if any was asked for.
        """
        self._holding = False
        if self._dirty:
            self.draw_prompt()

    def _flush(self) -> None:
        """
        Draw a held redraw now, before writing anything that relies on what the screen shows.
        """
        if self._dirty:
            holding, self._holding = self._holding, False
            self.draw_prompt()
            self._holding = holding

    def draw_prompt(self) -> None:
        """
        Redraw the prompt and the line, wrapped to the terminal width, with the cursor in place (or note that it
        is due, while holding).
        """
        if self._holding:
            self._dirty = True
            return
        self._dirty = False
        if not self.is_active():
            return
        view = self.view()
        plain = strip_escapes(view.prompt)
        end_row, end_column = position(plain + view.text, self.width)
        row, column = position(plain + view.text[: view.cursor], self.width)
        out = [self._to_edit_start(), ESC, "[J", view.prompt, view.shown]
        if end_column == 0 and end_row > 0:
            out.append("\r\n")  # leave the pending-wrap state of a line that ends at the margin
        if end_row > row:
            out.append(f"{ESC}[{end_row - row}A")
        out.append("\r")
        if column:
            out.append(f"{ESC}[{column}C")
        self._cursor_row, self._end = row, (end_row, end_column)
        self._write("".join(out))

    def draw_appended(self, text: str) -> None:
        """
        Show C{text}, just added at the end of the line, by writing it: the terminal wraps it the way
        L{layout} does, so typing and pasting stay cheap.  Undecorated text only, without zero-width
        characters (which would attach to the wrong cell after a wrap); anything else is redrawn whole.
        """
        if self._dirty:
            return  # the held redraw shows it
        row, column = self._end
        if self.decorated() or not self.is_active() or row != self._cursor_row:
            self.draw_prompt()
            return
        for char in text:
            w = char_width(char)
            if not w:
                self.draw_prompt()
                return
            row, column = advance(row, column, self.width, w)
        # A row filled to the margin leaves the terminal's cursor waiting there: move it to the next row.
        self._write(text + ("\r\n" if column == 0 else ""))
        self._cursor_row, self._end = row, (row, column)

    def write_text(self, text: str, redraw: bool = True) -> None:
        """
        Print C{text} above the edit area (C{"\\n"} becomes C{"\\r\\n"}; a final newline is added if missing,
        since the prompt always starts a row), then redraw the prompt and the line below it (unless C{redraw} is
        false: the last words of a session).
        """
        body = text.replace("\r\n", "\n").replace("\n", "\r\n")
        if not body.endswith("\r\n"):
            body += "\r\n"
        self._write(self._to_edit_start() + ESC + "[J" + body)
        self._cursor_row, self._end = 0, (0, 0)
        if redraw:
            self.draw_prompt()

    def write_line(self, text: str, redraw: bool = True) -> None:
        """
        Print C{text} and a newline above the edit area; see L{write_text}.
        """
        self.write_text(text + "\n", redraw)

    def write_below(self, lines: list[str]) -> None:
        """
        Print C{lines} below the edit area, which stays on the screen, and draw it again under them.
        """
        self._leave_edit_area()
        self._write("".join(line + "\r\n" for line in lines))
        self.draw_prompt()

    def clear_screen(self) -> None:
        """
        Clear the whole screen, leaving the cursor at the top (the prompt is drawn by the next L{draw_prompt}).
        """
        self._write(ESC + "[H" + ESC + "[2J")
        self._cursor_row, self._end = 0, (0, 0)

    def redraw_screen(self) -> None:
        """
        Ctrl-L: clear the screen and draw the prompt and line at the top.
        """
        self.clear_screen()
        self.draw_prompt()

    def _to_edit_start(self) -> str:
        up = f"{ESC}[{self._cursor_row}A" if self._cursor_row else ""
        return up + "\r"

    def _leave_edit_area(self, mark: str = "") -> None:
        """
        Move below the drawn edit area (writing C{mark} at its end first), leaving it on the screen.
        """
        self._flush()
        row, column = self._end
        down = row - self._cursor_row
        out = (f"{ESC}[{down}B" if down > 0 else "") + "\r" + (f"{ESC}[{column}C" if column else "") + mark
        if mark or column or not row:
            out += "\r\n"
        self._write(out)
        self._cursor_row, self._end = 0, (0, 0)
