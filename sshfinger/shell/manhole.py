"""
The admin's Python manhole: a REPL inside the running server, on the shell's line editor.

Built on L{twisted.conch.manhole.ManholeInterpreter} (Deferreds are shown as they fire), with what Twisted's
C{Manhole}/C{ColoredManhole} lack: colouring that never drops the connection (any tokenizer error just leaves the
line plain), the shell's key bindings, UTF-8 input, resizes, Tab completion of names and attributes, top-level
C{await}, and a cap on what one statement may print.  Every input line goes to the audit trail.

Code typed here runs on the reactor thread: a blocking statement freezes the whole server.
"""

from __future__ import annotations

import ast
import inspect
import re
import rlcompleter
import types
from collections.abc import Callable, Generator, Iterator, MutableMapping
from typing import Any

from twisted.conch.insults.insults import TerminalProtocol
from twisted.conch.manhole import ManholeInterpreter, lastColorizedLine
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sshfinger.model.account import Account, Actor, Change
from sshfinger.model.audit import format_change
from sshfinger.shell.app import ShellApp
from sshfinger.shell.lineedit import ESC, LineEditor
from sshfinger.store.interfaces import IUserStore

#: Most characters one statement may print before its output is cut.
OUTPUT_CAP = 16 * 1024
TRUNCATED = "[output truncated]"
_NAME_AT_END = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")

BANNER = """\
sshfinger manhole: Python inside the running server. Ctrl-D leaves.
  store     the user store (store.update(login, {{"status": ...}}, actor) returns a Deferred)
  users     live accounts: users["alice"] is the record; users["alice"] = "text" sets her status
  services  the running MultiService; finger, ssh: its finger and SSH services
  reactor, log, actor (you, for store calls), audit(n=20, login=None)
  `await` works at top level. Output per statement is capped at {cap} characters.
WARNING: code runs on the reactor thread; a blocking statement freezes the whole server."""


class UsersMapping(MutableMapping[str, Any]):
    """
    The tutorial's users dict, live over the store: reading gives the current L{Account}; assigning a string
    sets that account's status (persisted, then visible to finger).

    @ivar pending: the Deferred of the last write, for those who want to wait on it.
    """

    def __init__(self, store: IUserStore, actor: Actor, report: Callable[[str], None]) -> None:
        """
        @param store: the user store.
        @param actor: who the writes are recorded as.
        @param report: prints an asynchronous error in the session.
        """
        self._store = store
        self._actor = actor
        self._report = report
        self.pending: Deferred[Any] | None = None

    def __getitem__(self, login: str) -> Account:
        """
        The account, from memory.
        """
        account = self._store.peek(login)
        if account is None:
            raise KeyError(login)
        return account

    def __setitem__(self, login: str, status: str) -> None:
        """
        Set C{login}'s status (an account is created if missing).
        """
        if self._store.peek(login) is None:
            d = self._store.create(login, self._actor, {"status": status})
        else:
            d = self._store.update(login, {"status": status}, self._actor)
        self.pending = d.addErrback(self._failed, login)

    def _failed(self, reason: Failure, login: str) -> None:
        self._report(f"users[{login!r}] not saved: {reason.getErrorMessage()}")

    def __delitem__(self, login: str) -> None:
        """
        Deleting accounts is deliberate: use store.delete().
        """
        raise TypeError("use store.delete(login, actor) to delete an account")

    def __iter__(self) -> Iterator[str]:
        """
        Every login.
        """
        return iter(self._store.logins())

    def __len__(self) -> int:
        """
        How many accounts.
        """
        return len(self._store.logins())


class AuditLines(list[str]):
    """
    Lines of the audit trail, shown one per line.
    """

    def __repr__(self) -> str:
        """
        One entry per line.
        """
        return "\n".join(self) or "(no entries)"


class ManholeShell(TerminalProtocol):
    """
    The Python REPL protocol.  Runs inside an insults C{ServerProtocol}, reading lines with a L{LineEditor}.

    @ivar editor: the line editor, created when the terminal connects.
    """

    log = Logger()

    def __init__(
        self,
        namespace: dict[str, Any],
        actor: Actor,
        store: IUserStore,
        on_exit: Callable[[], None],
        colour: bool = True,
        size: tuple[int, int] = (80, 24),
        on_activity: Callable[[], None] = lambda: None,
        on_lost: Callable[[Any], None] = lambda reason: None,
    ) -> None:
        """
        @param namespace: the names the admin starts with (see L{manhole_namespace}).
        @param actor: the admin, for the audit trail.
        @param store: where input lines are recorded.
        @param on_exit: called on Ctrl-D (return to the command shell, or end the session).
        @param colour: colour the input as Python.
        @param size: the terminal's (columns, rows).
        @param on_activity: called on every key (the idle timer).
        @param on_lost: called when the connection goes away.
        """
        self.namespace = namespace
        self.actor = actor
        self.store = store
        self.on_exit = on_exit
        self.colour = colour
        self.size = size
        self.on_activity = on_activity
        self.on_lost = on_lost
        self.interpreter = AsyncInterpreter(self, namespace)
        self.completer = rlcompleter.Completer(namespace)
        self._printed = 0
        self._pending = ""
        self.leaving = False
        self._editor: LineEditor | None = None

    @property
    def editor(self) -> LineEditor:
        """
        The line editor (the terminal has connected: insults connects a protocol before passing it anything).
        """
        if self._editor is None:
            raise RuntimeError("the manhole is not connected to a terminal")
        return self._editor

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        """
        Any key counts as activity; the editor handles it.
        """
        self.on_activity()
        self.editor.keystroke(keyID, modifier)

    def type_text(self, text: str) -> None:
        """
        Printable text arriving at once (a paste) counts as activity; the editor types it.
        """
        self.on_activity()
        self.editor.type_text(text)

    def unhandledControlSequence(self, seq: bytes) -> None:
        """
        Keys insults does not parse go to the editor.
        """
        self.editor.control_sequence(seq)

    def terminalSize(self, width: int, height: int) -> None:
        """
        Re-wrap the line for the new size.
        """
        self.size = (width, height)
        self.editor.resize(width, height)

    def connectionLost(self, reason: object = None) -> None:
        """
        Tell the owner the connection is gone.
        """
        self.editor.stop()
        self.on_lost(reason)

    def connectionMade(self) -> None:
        """
        Show the banner and the prompt.
        """
        self._editor = LineEditor(
            self.terminal,
            self.line_submitted,
            complete=self.complete,
            on_end=self.end_of_input,
            on_interrupt=self.interrupt,
            decorate=self.decorate if self.colour else None,
            active=self.is_active,
            question_lists=False,
        )
        self.editor.set_prompt(">>> ")
        self.editor.start()
        self.terminalSize(*self.size)
        self.write_line(BANNER.format(cap=OUTPUT_CAP))

    def write_line(self, text: str) -> None:
        """
        Print a line above the prompt.
        """
        self.editor.write_line(text)

    def is_active(self) -> bool:
        """
        Draw nothing once leaving.
        """
        return not self.leaving

    def decorate(self, text: str) -> str:
        """
        Colour the line as Python; a line the tokenizer chokes on (any error) stays plain.
        """
        if not self.colour or not text:
            return text
        source = "\n".join([*self.interpreter.buffer_text(), text])
        try:
            coloured = lastColorizedLine(source).decode("utf-8")
        except Exception:
            return text
        return coloured + ESC + "[0m"

    def line_submitted(self, line: str) -> None:
        """
        Record the line in the audit trail, then run it.
        """
        change = Change(0.0, self.actor, self.actor.login, "input", "manhole", None, line)
        self.store.record(change).addErrback(self._record_failed)
        self._printed = 0
        more = self.interpreter.push(line.encode("utf-8"))
        self.flush_output()
        self.editor.set_prompt("... " if more else ">>> ")

    def _record_failed(self, reason: Failure) -> None:
        self.log.failure("Cannot record a manhole line of {login}", reason, login=self.actor.login)
        self.addOutput(f"WARNING: this line was not recorded in the audit trail: {reason.getErrorMessage()}")

    def addOutput(self, data: str, isAsync: bool | None = None) -> None:
        """
        Print what the interpreter writes (called by L{ManholeInterpreter}); at most L{OUTPUT_CAP} characters
        per statement.
        """
        if isAsync:
            self.flush_output()
            self._printed = 0
        if self._printed >= OUTPUT_CAP:
            return
        room = OUTPUT_CAP - self._printed
        self._printed += len(data)
        if len(data) > room:
            data = data[:room] + "\n" + TRUNCATED + "\n"
        self._pending += data
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            self.write_line(complete)
        if isAsync:
            self.flush_output()

    def flush_output(self) -> None:
        """
        Print output still waiting for its newline.
        """
        if self._pending:
            text, self._pending = self._pending, ""
            self.write_line(text)

    def complete(self, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
        """
        Complete the dotted name before the cursor from the namespace.
        """
        match = _NAME_AT_END.search(before_cursor)
        if match is None:
            return len(before_cursor), []
        word = match.group(0)
        found: list[tuple[str, str]] = []
        for state in range(200):
            try:
                candidate = self.completer.complete(word, state)
            except Exception:
                break
            if candidate is None:
                break
            found.append((candidate.rstrip("("), "python"))
        return match.start(), found

    def interrupt(self) -> None:
        """
        Ctrl-C: drop the line and any unfinished block.
        """
        self.interpreter.resetBuffer()
        self.editor.set_prompt(">>> ")
        self.editor.interrupt()

    def end_of_input(self) -> None:
        """
        Ctrl-D on an empty line: leave the manhole.
        """
        self.leaving = True
        self.on_exit()


class AsyncInterpreter(ManholeInterpreter):
    """
    A L{ManholeInterpreter} where top-level C{await} works: the statement runs through
    L{ensureDeferred}, its value is shown when it is ready, an exception shows its traceback.
    """

    def __init__(self, handler: ManholeShell, namespace: dict[str, Any]) -> None:
        """
        @param handler: receives output through C{addOutput}.
        @param namespace: the globals of the typed code.
        """
        super().__init__(handler, namespace)
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

    def buffer_text(self) -> list[str]:
        """
        The lines of the unfinished block, as text.
        """
        return [line.decode("utf-8", "replace") if isinstance(line, bytes) else line for line in self.buffer]

    def runcode(self, code: types.CodeType) -> None:
        """
        Run compiled code; a coroutine (top-level C{await}) is driven by the reactor.
        """
        if not code.co_flags & inspect.CO_COROUTINE:
            super().runcode(code)
            return
        coroutine = types.FunctionType(code, self.locals)()
        d = ensureDeferred(_Patched(coroutine, self.monkeyPatcher).run())
        d.addErrback(self._show_failure)
        d.addBoth(lambda _: self.handler.flush_output())

    def _show_failure(self, reason: Failure) -> None:
        self.write(reason.getTraceback(), True)


class _Patched:
    """
    Drive a coroutine with the interpreter's output patches in place while (and only while) it runs, so
    C{print} and displayed values of an awaited statement reach the session, even when it resumes later.
    """

    def __init__(self, coroutine: Any, patcher: Any) -> None:
        self.coroutine = coroutine
        self.patcher = patcher

    async def run(self) -> Any:
        return await self

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            with self.patcher:
                try:
                    yielded = self.coroutine.throw(error) if error is not None else self.coroutine.send(value)
                except StopIteration as stop:
                    return stop.value
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as e:
                error = e


def audit_function(store: IUserStore) -> Callable[..., Deferred[AuditLines]]:
    """
    The manhole's C{audit(n=20, login=None)}: a Deferred of the newest audit entries, one per line.
    """

    def audit(n: int = 20, login: str | None = None) -> Deferred[AuditLines]:
        d = store.recent_changes(n, login, everything=True)  # the manhole is for admins
        return d.addCallback(lambda changes: AuditLines(format_change(change) for change in changes))

    return audit


def manhole_namespace(app: ShellApp, actor: Actor, report: Callable[[str], None]) -> dict[str, Any]:
    """
    The names an admin starts with.
    """
    from twisted.internet import reactor as default_reactor

    services = app.extra.get("services")
    named = {name: services.getServiceNamed(name) for name in ("finger", "ssh")} if services is not None else {}
    return {
        **named,
        "store": app.store,
        "users": UsersMapping(app.store, actor, report),
        "services": app.extra.get("services"),
        "reactor": app.extra.get("reactor", default_reactor),
        "log": Logger(namespace="sshfinger.manhole"),
        "audit": audit_function(app.store),
        "actor": actor,
    }


def wants_colour(term: str | None, env: dict[str, str]) -> bool:
    """
    Colour unless the terminal is dumb (or unknown) or the client sent C{NO_COLOR}.
    """
    return bool(term) and term != "dumb" and "NO_COLOR" not in env
