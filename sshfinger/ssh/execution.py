"""
L{ExecProtocol}: commands run without a terminal, for scripts: the one of an exec request (C{ssh host status
Away}), or one per line of standard input for a shell request without a pty.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from sshfinger.finger.render import sanitize
from sshfinger.shell import commands
from sshfinger.shell.app import CommandError, Context, Interaction

#: Most bytes of standard input an exec command reads (a plan, a password).
MAX_STDIN = 64 * 1024

#: Longest command line (bytes) an exec request or a line of standard input may hold; longer ones are refused
#: before they are decoded or split.
MAX_COMMAND = 8 * 1024


def exited(code: int) -> Failure:
    """
    The reason to hand C{processEnded} so the client gets exit status C{code}.
    """
    return Failure(ProcessDone(None) if code == 0 else ProcessTerminated(exitCode=code))


class ExecProtocol(Protocol):
    """
    Runs commands without a terminal: the one from the exec request, or (for a shell without a pty) one per
    line of standard input.  Output is plain text; errors go to stderr; the exit status is 0 only if every
    command succeeded.

    A command that asks for input reads it from standard input: in exec mode all of it (C{plan < file}) or its
    first line (C{passwd}); in line mode the lines up to a lone C{.} or the next line.
    """

    log = Logger()

    def __init__(
        self, context: Context, command: str | None, process: Any, clock: IReactorTime, idle_timeout: float
    ) -> None:
        """
        @param context: the command context.
        @param command: the command line, or L{None} to read command lines from standard input.
        @param process: the C{SSHSessionProcessProtocol} to write to.
        @param clock: for the idle timeout.
        @param idle_timeout: seconds without input after which a command still waiting for input is ended.
        """
        self.context = context
        self.command = command
        self.process = process
        self.stdin = bytearray()
        self.stdin_done = False
        self.status = 0
        self.finished = False
        self._waiter: Deferred[None] | None = None
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._idle: IDelayedCall | None = None

    def start(self) -> None:
        """
        Run the command (or the lines of standard input), then end the channel with the exit status.
        """
        self._reset_idle()
        ensureDeferred(self._main()).addErrback(self._crashed)

    def _reset_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        if not self.finished:
            self._idle = self._clock.callLater(self._idle_timeout, self._idle_fired)

    def _idle_fired(self) -> None:
        self._error(f"no input for {self._idle_timeout:.0f} s; giving up")
        self._finish()

    async def _main(self) -> None:
        if self.command is not None:
            await self._run_line(self.command)
        else:
            while not self.finished:
                line = await self._next_line()
                if line is None:
                    break
                if len(line.encode("utf-8", "replace")) > MAX_COMMAND:
                    self._error(f"command longer than {MAX_COMMAND} bytes; refused")
                elif await self._run_line(line):
                    break
        self._finish()

    def dataReceived(self, data: bytes) -> None:
        """
        Collect standard input, bounded by L{MAX_STDIN}.
        """
        if len(self.stdin) + len(data) > MAX_STDIN:
            self._error(f"standard input is larger than {MAX_STDIN} bytes")
            self._finish()
            return
        self.stdin.extend(data)
        self._reset_idle()
        self._wake()

    def stdin_closed(self) -> None:
        """
        All of standard input has arrived.
        """
        self.stdin_done = True
        self._wake()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        The channel went away: stop writing, and stop waiting for input.
        """
        self.finished = True
        self.stdin_done = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    async def _more(self) -> None:
        self._waiter = Deferred()
        await self._waiter

    async def _next_line(self) -> str | None:
        while True:
            newline = self.stdin.find(b"\n")
            if newline >= 0:
                line = bytes(self.stdin[:newline]).rstrip(b"\r")
                del self.stdin[: newline + 1]
                return line.decode("utf-8", "replace")
            if self.stdin_done:
                if not self.stdin:
                    return None
                rest = bytes(self.stdin)
                self.stdin.clear()
                return rest.decode("utf-8", "replace")
            await self._more()

    async def _read_answer(self, kind: str) -> str:
        text = await self._read_raw_answer(kind)
        if self.finished:
            raise CommandError("input cancelled")  # timed out or disconnected: never act on partial input
        return text

    async def _read_raw_answer(self, kind: str) -> str:
        if self.command is None:
            if kind != "text":
                return await self._next_line() or ""
            lines = []
            while (line := await self._next_line()) not in (None, "."):
                lines.append(line)
            return "\n".join(lines)
        while not self.stdin_done:
            await self._more()
        text = bytes(self.stdin).decode("utf-8", "replace")
        self.stdin.clear()
        return text.splitlines()[0] if kind != "text" and text else text

    async def _run_line(self, line: str) -> bool:
        """
        Run one command line; return whether the session should end.
        """
        try:
            result = await commands.run(self.context, commands.split(line))
            while isinstance(result, Interaction):
                result = await result.finish(await self._read_answer(result.kind))
        except CommandError as e:
            self._error(str(e))
            return False
        for text in result.lines:
            self._out(text)
        return result.exit

    def _crashed(self, reason: Failure) -> None:
        self.log.failure("Command {command!r} failed", reason, command=self.command)
        self._error("internal error; the event is logged")
        self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self.process.processEnded(exited(self.status))

    def _out(self, line: str) -> None:
        if not self.finished:
            self.process.write(sanitize(line).encode("utf-8") + b"\n")

    def _error(self, message: str) -> None:
        self.status = 1
        if not self.finished:
            self.process.errReceived(f"error: {sanitize(message)}\n".encode())
