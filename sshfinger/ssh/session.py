"""
The SSH avatar and its session: an interactive shell with a pty, or one command for scripts (exec).

Twisted's C{manhole_ssh.TerminalSession} refuses resizes and drops the connection on EOF; L{Session} handles
every L{ISession} request itself.  Forwarding of any kind is refused: the avatar offers only session channels
and answers no global requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.conch.avatar import ConchUser
from twisted.conch.insults.insults import ServerProtocol
from twisted.conch.interfaces import EnvironmentVariableNotPermitted, ISession, ISessionSetEnv
from twisted.conch.ssh import common
from twisted.conch.ssh.session import wrapProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from sshfinger.model.peers import describe_peer
from sshfinger.sftp.protocol import SubsystemSession, sftp_subsystem
from sshfinger.shell.app import ShellApp
from sshfinger.shell.manhole import wants_colour
from sshfinger.shell.shell import CommandShell
from sshfinger.ssh.execution import MAX_COMMAND, ExecProtocol, exited

#: What an exec request longer than L{MAX_COMMAND} is replaced with before Conch sees it (Conch logs the command
#: whole: a megabyte of it would be formatted and written to the log).
OVERLONG = b"\x00overlong command"

#: Seconds a resize waits for more resizes before the shell redraws for the last one (a flood of window-change
#: requests then costs one redraw).
RESIZE_DELAY = 0.05

#: Window changes a session may send at once, and per second after that.  Past them the client is flooding (a
#: person dragging a window corner sends a few dozen a second): the connection is closed, since even ignored
#: requests cost the SSH layer work that delays everyone else.
RESIZE_BURST = 200
RESIZE_RATE = 50.0

#: Environment variables a client may send (C{SendEnv}); others are refused.
ACCEPTED_ENV = frozenset({"TERM", "NO_COLOR", "LANG", "LC_ALL", "LC_CTYPE"})


#: Longest escape sequence kept while it is being received.
MAX_ESCAPE = 64

#: Plain printable ASCII, except C{?} (which lists completions): typed as it is.
_PLAIN = re.compile(rb"[\x20-\x3e\x40-\x7e]{2,}")


class ShellTerminal(ServerProtocol):
    """
    The insults terminal of a shell session, writing what it draws while handling one chunk of input as one
    write (one SSH packet): a pasted line is echoed at once, not a packet per character.
    """

    _batch: list[bytes] | None = None

    def dataReceived(self, data: bytes) -> None:
        """
        Handle the input, then send everything drawn meanwhile.  The editor's redraws are held until the end of
        the chunk, and runs of plain printable ASCII (a paste) are typed at once rather than key by key.
        """
        self._batch = []
        editor = getattr(self.terminalProtocol, "editor", None)
        if editor is not None:
            editor.hold()
        try:
            self._feed(data)
        finally:
            if editor is not None:
                editor.release()
            self.flush()

    def _feed(self, data: bytes) -> None:
        done = 0
        for run in _PLAIN.finditer(data):
            if run.start() > done:
                super().dataReceived(data[done : run.start()])
            type_text = getattr(self.terminalProtocol, "type_text", None)
            if self.state == b"data" and type_text is not None:  # insults is not inside an escape sequence
                type_text(run.group().decode("ascii"))
            else:
                super().dataReceived(run.group())
            done = run.end()
        if done < len(data):
            super().dataReceived(data[done:])
        if self.state != b"data" and len(getattr(self, "escBuf", ())) > MAX_ESCAPE:
            self.state = b"data"  # an escape sequence no terminal sends: drop it rather than collect it for ever
            del self.escBuf

    def write(self, data: bytes) -> None:
        """
        Write now, or at the end of the input being handled.
        """
        if self._batch is not None:
            self._batch.append(data)
        else:
            super().write(data)

    def loseConnection(self) -> None:
        """
        Send what is held, then close.
        """
        self.flush()
        super().loseConnection()

    def flush(self) -> None:
        """
        Send what is held (before the session ends, say) and write directly again.
        """
        batch, self._batch = self._batch, None
        if batch:
            super().write(b"".join(batch))


class SessionChannel(SubsystemSession):
    """
    The session channel (L{SubsystemSession}: subsystems end properly, C{scp -O} is refused), except that an exec
    command longer than L{MAX_COMMAND} is replaced by L{OVERLONG} before Conch logs and parses it;
    L{Session.execCommand} refuses it.
    """

    def request_exec(self, data: bytes) -> int:
        """
        Hand Conch the command, or L{OVERLONG} in place of an overlong one.
        """
        if len(data) > MAX_COMMAND + 4:  # the command is a length-prefixed string
            data = common.NS(OVERLONG)
        result: int = super().request_exec(data)
        return result


class ShellUser(ConchUser):
    """
    An authenticated SSH login.  Offers session channels only: no port forwarding, no agent forwarding.

    @ivar login: the login, lower-case.
    """

    def __init__(self, login: str, app: ShellApp) -> None:
        """
        @param login: the authenticated login.
        @param app: the shared application state.
        """
        super().__init__()
        self.login = login
        self.app = app
        self.channelLookup[b"session"] = SessionChannel
        self.subsystemLookup[b"sftp"] = sftp_subsystem

    def __conform__(self, interface: Any) -> Any:
        """
        Adapt to L{ISession} with a new L{Session} per channel (no global adapter registry needed).
        """
        if interface is ISession:
            return Session(self)
        return None

    def logout(self) -> None:
        """
        Called by cred when the connection ends.
        """


def peer_of(process: Any) -> str:
    """
    The address of the client behind an C{SSHSessionProcessProtocol}, as L{describe_peer} writes it.
    """
    try:
        address = process.getPeer().address
    except Exception:
        address = None
    return describe_peer(address)


@implementer(ISession, ISessionSetEnv)
class Session:
    """
    One session channel: a pty and shell, or an exec command.
    """

    log = Logger()

    def __init__(self, user: ShellUser) -> None:
        """
        @param user: the avatar that opened the channel.
        """
        self.user = user
        self.term: str | None = None
        self.window = (24, 80)
        self.env: dict[str, str] = {}
        self.shell: ShellTerminal | None = None
        self.exec: ExecProtocol | None = None
        self._resize: IDelayedCall | None = None
        self._resize_budget = (float(RESIZE_BURST), 0.0)
        self._flooded = False
        self.peer = ""

    def setEnv(self, name: bytes, value: bytes) -> None:
        """
        Accept C{TERM}, C{NO_COLOR} and locale variables; refuse the rest.
        """
        key = name.decode("ascii", "replace")
        if key not in ACCEPTED_ENV or len(value) > 256:
            raise EnvironmentVariableNotPermitted(name, value)
        self.env[key] = value.decode("utf-8", "replace")

    def getPty(self, term: bytes, windowSize: tuple[int, int, int, int], modes: object) -> None:
        """
        Remember the terminal type and size for the shell.
        """
        self.term = term.decode("ascii", "replace")
        self.window = (windowSize[0], windowSize[1])

    def windowChanged(self, newWindowSize: tuple[int, int, int, int]) -> None:
        """
        Remember the new size; the shell re-wraps its line for the last size once resizes stop arriving for
        L{RESIZE_DELAY} seconds, so a flood of resizes costs one redraw.
        """
        self.window = (newWindowSize[0], newWindowSize[1])
        if not self._spend_resize():
            return
        if self.shell is not None and self._resize is None:
            self._resize = self.user.app.clock.callLater(RESIZE_DELAY, self._apply_resize)

    def _spend_resize(self) -> bool:
        """
        Count a window change against L{RESIZE_BURST} and L{RESIZE_RATE}; on a flood, close the connection
        (once) and return false.
        """
        if self._flooded:
            return False
        tokens, then = self._resize_budget
        now = self.user.app.clock.seconds()
        tokens = min(float(RESIZE_BURST), tokens + (now - then) * RESIZE_RATE) - 1
        self._resize_budget = (tokens, now)
        if tokens >= 0:
            return True
        self._flooded = True
        self.log.warn(
            "SSH window-change flood from {login} at {peer} [{conn}]: connection closed",
            outcome="flood",
            **self._log_fields(),
        )
        conn = getattr(self.user, "conn", None)
        if conn is not None and conn.transport is not None:
            conn.transport.loseConnection()
        return False

    def _apply_resize(self) -> None:
        self._resize = None
        if self.shell is not None and self.shell.terminalProtocol is not None:
            self.shell.terminalProtocol.terminalSize(self.window[1], self.window[0])

    def openShell(self, process: Any) -> None:
        """
        Start the interactive command shell (with a pty) or read commands from standard input (without).
        """
        if self._refused(process):
            return
        peer = self.peer = peer_of(process)
        if self.term is None:
            self._start_exec(process, None)
            return
        self._start_shell(process, peer, manhole_only=False)

    def _start_shell(self, process: Any, peer: str, manhole_only: bool) -> None:
        app = self.user.app
        rows, cols = self.window
        context = app.context(self.user.login, "shell", peer, True)
        colour = wants_colour(self.term, self.env)
        self.shell = ShellTerminal(
            CommandShell, app, context, (cols, rows), self._ended(process), colour, manhole_only
        )
        self.shell.makeConnection(process)
        process.makeConnection(wrapProtocol(self.shell))

    def execCommand(self, process: Any, command: bytes) -> None:
        """
        Run one shell command for a script: plain output, exit status 0 or 1 with the error on stderr.
        """
        if self._refused(process):
            return
        if command == OVERLONG or len(command) > MAX_COMMAND:
            self._refuse_exec(process, f"error: command longer than {MAX_COMMAND} bytes; refused\n")
            return
        text = command.decode("utf-8", "replace")
        if self.term is not None and text.strip() == "manhole":
            self._start_shell(process, peer_of(process), manhole_only=True)
            return
        self._start_exec(process, text)

    def _start_exec(self, process: Any, command: str | None) -> None:
        app = self.user.app
        context = app.context(self.user.login, "exec", peer_of(process), False)
        self.exec = ExecProtocol(context, command, process, app.clock, app.idle_timeout)
        self.exec.makeConnection(process)
        process.makeConnection(wrapProtocol(self.exec))
        self.exec.start()

    def _log_fields(self) -> dict[str, str]:
        """
        The fields every SSH event carries (L{sshfinger.ssh.server.ServerTransport.log_fields}): the peer, the
        connection id and the login.
        """
        transport = getattr(getattr(self.user, "conn", None), "transport", None)
        fields = getattr(transport, "log_fields", None)
        if callable(fields):
            return dict(fields())
        return {"peer": self.peer, "conn": "-", "login": self.user.login}

    def _refused(self, process: Any) -> bool:
        """
        End the session with a clear message if the login has no account in the store.
        """
        login = self.user.login
        if self.user.app.store.peek(login) is not None:
            return False
        self.log.info(
            "SSH login {login} from {peer} [{conn}] has no account in the store; session refused",
            **self._log_fields(),
        )
        self._refuse_exec(
            process, f"sshfinger: {login} has no account in the user store; ask an admin to run 'add {login}'\r\n"
        )
        return True

    def _refuse_exec(self, process: Any, message: str) -> None:
        """
        End the channel with C{message} on stderr and exit status 1.  Input the client still sends is discarded
        (Conch hands it to the protocol wired in here, and fails if there is none).
        """
        sink = Protocol()
        sink.makeConnection(process)
        process.makeConnection(wrapProtocol(sink))
        process.errReceived(message.encode("utf-8"))
        process.processEnded(exited(1))

    def _ended(self, process: Any) -> Callable[[int], None]:
        def end(code: int) -> None:
            if self.shell is not None:
                self.shell.flush()  # the last words leave before the exit status
            process.processEnded(exited(code))

        return end

    def eofReceived(self) -> None:
        """
        The client closed its standard input: an exec command may now read all of it; a shell ignores it.
        """
        if self.exec is not None:
            self.exec.stdin_closed()

    def closed(self) -> None:
        """
        The channel is closed; the protocols are told through their connectionLost.  A pending redraw is dropped.
        """
        if self._resize is not None and self._resize.active():
            self._resize.cancel()
        self._resize = None
        self.shell = None
