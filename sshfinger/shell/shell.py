"""
L{CommandShell}: the interactive SSH shell, a terminal protocol that runs L{sshfinger.shell.commands} on the
lines its L{LineEditor} reads.

It adds what only a person at a terminal needs: the prompt with login and host, answering a command's questions
(a multi-line plan, a password without echo, a confirmation), history kept per login in the store, and an idle
timeout announced a minute before it strikes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.conch.insults.insults import TerminalProtocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sshfinger.finger.render import sanitize
from sshfinger.model.account import Actor
from sshfinger.shell import commands
from sshfinger.shell.app import CommandError, Context, Interaction, Reply, ShellApp
from sshfinger.shell.lineedit import LineEditor
from sshfinger.shell.manhole import ManholeShell, manhole_namespace

#: Seconds of warning before the idle timeout closes the session.
IDLE_WARNING = 60.0

#: Most characters a multi-line answer (a plan typed or pasted) may hold, as for standard input in exec.
MAX_ANSWER = 64 * 1024


class CommandShell(TerminalProtocol):
    """
    The command shell of one SSH session.

    @ivar context: the command context (login, role, store).
    @ivar editor: the line editor, created when the terminal connects.
    @ivar busy: whether a command is running (typed lines are ignored meanwhile).
    """

    log = Logger()

    def __init__(
        self,
        app: ShellApp,
        context: Context,
        size: tuple[int, int],
        on_exit: Callable[[int], None],
        colour: bool = True,
        manhole_only: bool = False,
    ) -> None:
        """
        @param app: the shared L{ShellApp}.
        @param context: this session's command context.
        @param size: the terminal's (columns, rows).
        @param on_exit: ends the session with an exit status.
        @param colour: whether the terminal takes colour (for the manhole).
        @param manhole_only: open the manhole at once and end the session when it is left
            (C{ssh -t HOST manhole}).
        """
        self.app = app
        self.context = context
        self.size = size
        self.on_exit = on_exit
        self.busy = False
        self.pending: Interaction | None = None
        self.answers: list[str] = []
        self.ended = False
        self._idle: IDelayedCall | None = None
        self._active_at = 0.0
        self._warned = False
        self.colour = colour
        self.manhole_only = manhole_only
        self.manhole: ManholeShell | None = None
        self.editor: LineEditor | None = None

    def is_active(self) -> bool:
        """
        Draw nothing once the session is ending.
        """
        return not self.ended and self.manhole is None

    def say(self, text: str) -> None:
        """
        Print a message above whichever prompt is showing (this shell's or the manhole's).
        """
        if self.manhole is not None:
            self.manhole.editor.write_line(text)
        else:
            self.write_line(text)

    def farewell(self, text: str) -> None:
        """
        Print the last line of the session, with no prompt after it (above the manhole's, if it is open).
        """
        editor = self.manhole.editor if self.manhole is not None else self.editor
        if editor is not None:
            editor.write_line(text, redraw=False)

    def write_line(self, text: str) -> None:
        """
        Print a line above the prompt.
        """
        if self.editor is not None:
            self.editor.write_line(text)

    def draw_prompt(self) -> None:
        """
        Draw the prompt and the line being edited again.
        """
        if self.editor is not None:
            self.editor.draw_prompt()

    def set_prompt(self, text: str) -> None:
        """
        Change the prompt (drawn by the next L{draw_prompt}).
        """
        if self.editor is not None:
            self.editor.set_prompt(text)

    def set_echo(self, echo: bool) -> None:
        """
        Show typed characters, or not (passwords).
        """
        if self.editor is not None:
            self.editor.echo = echo

    def command_prompt(self) -> str:
        """
        The prompt: login and host.
        """
        return f"{self.context.login}@{self.app.hostname}> "

    def connectionMade(self) -> None:
        """
        Greet, load this login's history from the store and start the idle timer.
        """
        self.editor = LineEditor(
            self.terminal,
            self.line_submitted,
            complete=self.complete,
            on_end=self.end_of_input,
            on_interrupt=self.interrupt,
            active=self.is_active,
        )
        self.editor.set_prompt(self.command_prompt())
        self.editor.start()
        self.terminalSize(*self.size)
        self.reset_idle()
        if self.manhole_only:
            self.run(commands.run(self.context, ["manhole"]))
            return
        role = "admin" if self.context.is_admin else "user"
        self.write_line(f"sshfinger on {self.app.hostname}: logged in as {self.context.login} ({role}).")
        self.write_line("Type 'help' for the commands; Tab completes, '?' lists choices.")
        self.app.store.history(self.context.login).addCallbacks(self.load_history, self._history_failed)

    def load_history(self, lines: list[str]) -> None:
        """
        Put the stored history before anything typed in this session.
        """
        self.prepend_history(lines)

    def _history_failed(self, reason: Failure) -> None:
        self.log.failure("Cannot load the shell history of {login}", reason, login=self.context.login)

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        """
        Any key resets the idle timer; the editor handles it.
        """
        self.reset_idle()
        if self.editor is not None:
            self.editor.keystroke(keyID, modifier)

    def type_text(self, text: str) -> None:
        """
        Printable text arriving at once (a paste): resets the idle timer; the editor types it.
        """
        self.reset_idle()
        if self.editor is not None:
            self.editor.type_text(text)

    def unhandledControlSequence(self, seq: bytes) -> None:
        """
        Keys insults does not parse go to the editor.
        """
        if self.editor is not None:
            self.editor.control_sequence(seq)

    def reset_idle(self) -> None:
        """
        Restart the idle countdown: note the time (a key costs no timer churn); the timer checks it when it fires.
        """
        self._active_at = self.app.clock.seconds()
        self._warned = False
        if self._idle is None or not self._idle.active():
            self._idle = self.app.clock.callLater(self._quiet_before_warning(), self._idle_fired)

    def _quiet_before_warning(self) -> float:
        """
        Seconds without input before the warning (or, for a timeout shorter than the warning, the end).
        """
        timeout = self.app.idle_timeout
        return timeout - IDLE_WARNING if timeout > IDLE_WARNING else timeout

    def _idle_fired(self) -> None:
        self._idle = None
        if self.ended:
            return
        timeout, clock = self.app.idle_timeout, self.app.clock
        quiet = clock.seconds() - self._active_at
        due = timeout if self._warned else self._quiet_before_warning()
        if quiet < due:  # there was input since the timer was set
            self._idle = clock.callLater(due - quiet, self._idle_fired)
            return
        if not self._warned and timeout > IDLE_WARNING:
            self._warned = True
            self.say(f"Idle for too long: the session closes in {int(IDLE_WARNING)} s unless you type.")
            self._idle = clock.callLater(timeout - quiet, self._idle_fired)
            return
        self.farewell("Idle timeout: goodbye.")
        self.end(0)

    def end(self, code: int) -> None:
        """
        End the session with exit status C{code}.
        """
        if self.ended:
            return
        self.ended = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self.on_exit(code)

    def connectionLost(self, reason: object = None) -> None:
        """
        Stop the idle timer and the drawing.
        """
        if self.editor is not None:
            self.editor.stop()
        self.ended = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()

    def complete(self, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
        """
        Complete command names and logins (not while answering a question).
        """
        if self.pending is not None:
            return len(before_cursor), []
        return commands.complete(self.context, before_cursor)

    def end_of_input(self) -> None:
        """
        Ctrl-D on an empty line: cancel a question, or leave.
        """
        if self.pending is not None:
            if self.pending.kind == "text":
                self.line_submitted(".")
            else:
                self.interrupt()
            return
        self.farewell("bye")
        self.end(0)

    def interrupt(self) -> None:
        """
        Ctrl-C: drop the line, or cancel a question.
        """
        if self.pending is not None:
            self.pending, self.answers = None, []
            self.set_echo(True)
            self.set_prompt(self.command_prompt())
            self.write_line("^C (cancelled)")
            self.draw_prompt()
            return
        if self.editor is not None:
            self.editor.interrupt()

    def line_submitted(self, line: str) -> None:
        """
        Run a command, or take an answer to the pending question.
        """
        if self.busy or self.ended:
            return
        if self.pending is not None:
            self.answer(line)
            return
        self.app.store.add_history(self.context.login, line).addErrback(self._history_failed)
        try:
            argv = commands.split(line)
        except CommandError as e:
            self.show_error(str(e))
            return
        self.run(commands.run(self.context, argv))

    def prepend_history(self, lines: list[str]) -> None:
        """
        Insert older history lines before this session's.
        """
        if self.editor is not None:
            self.editor.set_history([*lines, *self.editor.history_lines()])

    def run(self, d: Deferred[Any]) -> None:
        """
        Wait for a command's result, show it, and prompt again.
        """
        self.busy = True

        def done(result: Reply | Interaction) -> None:
            self.busy = False
            if isinstance(result, Interaction):
                self.ask(result)
            else:
                self.show(result)

        def failed(reason: Failure) -> None:
            self.busy = False
            if reason.check(CommandError):
                self.show_error(reason.getErrorMessage())
                if self.manhole_only:
                    self.end(1)
            else:
                self.log.failure("Shell command failed for {login}", reason, login=self.context.login)
                self.show_error(f"internal error ({reason.type.__name__}); the event is logged")

        d.addCallbacks(done, failed)

    def ask(self, interaction: Interaction) -> None:
        """
        Start answering a command's question.
        """
        self.pending, self.answers = interaction, []
        if interaction.kind == "text":
            self.write_line(interaction.prompt)
            self.set_prompt("... ")
        else:
            self.set_prompt(interaction.prompt)
            self.set_echo(interaction.kind != "secret")
        self.draw_prompt()

    def answer(self, line: str) -> None:
        """
        Take one line of the answer; finish the command when the answer is complete.
        """
        interaction = self.pending
        assert interaction is not None
        if interaction.kind == "text" and line != ".":
            self.answers.append(line)
            if sum(len(answer) + 1 for answer in self.answers) > MAX_ANSWER:
                self.pending, self.answers = None, []
                self.set_prompt(self.command_prompt())
                self.show_error(f"the text is longer than {MAX_ANSWER} characters; nothing changed")
                return
            self.draw_prompt()
            return
        if interaction.kind == "secret" and not self.answers:
            self.answers.append(line)
            self.set_prompt("Again: ")
            self.draw_prompt()
            return
        answers, self.answers, self.pending = self.answers, [], None
        self.set_echo(True)
        self.set_prompt(self.command_prompt())
        if interaction.kind == "secret":
            if answers[0] != line:
                self.show_error("the passwords differ; nothing changed")
                return
            text = line
        elif interaction.kind == "text":
            text = "\n".join(answers)
        else:
            text = line
        self.run(Deferred.fromCoroutine(interaction.finish(text)))  # type: ignore[arg-type]

    def show(self, reply: Reply) -> None:
        """
        Print a command's output (control characters removed) and prompt again.
        """
        if reply.manhole:
            self.enter_manhole()
            return
        if reply.clear and self.editor is not None:
            self.editor.clear_screen()
        if reply.exit:
            for line in reply.lines:
                self.farewell(sanitize(line))
            self.end(0)
            return
        for line in reply.lines:
            self.write_line(sanitize(line))
        self.draw_prompt()

    def enter_manhole(self) -> None:
        """
        Hand the terminal to a Python manhole until Ctrl-D.
        """
        actor = Actor(self.context.login, "manhole", self.context.actor.peer)
        namespace = manhole_namespace(self.app, actor, self.write_line)
        self.manhole = ManholeShell(
            namespace,
            actor,
            self.app.store,
            self.leave_manhole,
            colour=self.colour,
            size=self.size,
            on_activity=self.reset_idle,
            on_lost=self.connectionLost,
        )
        self.log.info("Manhole opened by {login} from {peer}", login=actor.login, peer=actor.peer)
        self.terminal.terminalProtocol = self.manhole
        self.manhole.makeConnection(self.terminal)

    def leave_manhole(self) -> None:
        """
        Give the terminal back to the command shell (or end the session if it was opened for the manhole).
        """
        manhole, self.manhole = self.manhole, None
        self.terminal.terminalProtocol = self
        if self.manhole_only or manhole is None:
            self.end(0)
            return
        self.write_line("Back in the command shell.")
        self.terminalSize(*self.size)

    def terminalSize(self, width: int, height: int) -> None:
        """
        Resize this shell's editor, and the manhole when it is open.
        """
        self.size = (width, height)
        if self.editor is not None:
            self.editor.resize(width, height)
        if self.manhole is not None:
            self.manhole.terminalSize(width, height)

    def show_error(self, message: str) -> None:
        """
        Print a one-line error and prompt again.
        """
        self.write_line(f"error: {sanitize(message)}")
        self.draw_prompt()
