"""
The commands of the SSH shell and of C{ssh host COMMAND}: parsing, permissions and what each one does.

A command never touches a terminal.  It returns a L{Reply} (lines to print) or asks for more through an
L{Interaction} (the multi-line plan, a password, a confirmation), which the interactive shell answers with
prompts and the exec session answers from standard input.  Errors are L{CommandError}s: one line for the user.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from sshfinger.model.account import EDITABLE_FIELDS, Account, Actor, Change, field_name, is_valid_login
from sshfinger.model.errors import InvalidValue, StoreError
from sshfinger.store.interfaces import IUserStore

LOG = Logger(namespace="sshfinger.shell")

#: Fields a user (not an admin) may change on their own account.
USER_FIELDS = frozenset({"real_name", "status", "plan", "keys"})


class CommandError(Exception):
    """
    A command failed; C{str(error)} is the one line shown to the user.
    """


@dataclass
class Reply:
    """
    What a command prints.

    @ivar lines: output lines (no line endings).
    @ivar exit: whether the session should end (C{quit}).
    @ivar clear: whether the shell should clear the screen first.
    @ivar manhole: whether the shell should open the Python manhole.
    """

    lines: list[str] = field(default_factory=list)
    exit: bool = False
    clear: bool = False
    manhole: bool = False


@dataclass
class Interaction:
    """
    A command that needs more input before it can finish.

    @ivar kind: C{"text"} (lines until a lone C{.}; all of stdin in exec), C{"secret"} (a password typed twice
        without echo; one line of stdin in exec) or C{"confirm"} (yes/no; refused in exec unless C{--yes}).
    @ivar prompt: what the shell shows first.
    @ivar finish: called with the text (or C{"yes"}/C{"no"}); returns the final L{Reply}.
    """

    kind: str
    prompt: str
    finish: Callable[[str], Awaitable[Reply]]


Result = Reply | Interaction


@dataclass
class Context:
    """
    Everything a command may use.

    @ivar store: the user store.
    @ivar finger: the finger service object (C{user(login, verbose)}, C{listing()}).
    @ivar login: the authenticated login.
    @ivar actor: the actor recorded on changes.
    @ivar admins: logins made admin on the command line (C{--admin}).
    @ivar set_password: writes a password for a login (in a thread), or L{None} without a passwd file.
    @ivar parse_key: validates an C{authorized_keys} line, returning C{(key, normalized line)}.
    @ivar fingerprint: the C{SHA256:} fingerprint of a parsed key.
    @ivar interactive: whether a person is typing (a shell) rather than a script (exec).
    """

    store: IUserStore
    finger: Any
    login: str
    actor: Actor
    admins: frozenset[str] = frozenset()
    set_password: Callable[[str, str], Deferred[None]] | None = None
    parse_key: Callable[[str], tuple[Any, str]] | None = None
    fingerprint: Callable[[Any], str] | None = None
    interactive: bool = True

    @property
    def is_admin(self) -> bool:
        """
        Whether the login is an admin now (named by C{--admin}, or marked admin in the store).
        """
        if self.login in self.admins:
            return True
        account = self.store.peek(self.login)
        return account is not None and account.role == "admin"

    def require_admin(self, what: str) -> None:
        """
        @raise CommandError: unless the login is an admin.
        """
        if not self.is_admin:
            raise CommandError(f"permission denied: only admins may {what}")

    def require_edit(self, login: str, field_names: Iterable[str]) -> None:
        """
        @raise CommandError: unless the login may change these fields of C{login}'s account.
        """
        if self.is_admin:
            return
        if login.lower() != self.login:
            raise CommandError("permission denied: you may only change your own account")
        for name in field_names:
            if name not in USER_FIELDS:
                raise CommandError(f"permission denied: only admins may change {name}")


@dataclass(frozen=True)
class Command:
    """
    One shell command.

    @ivar name: what is typed.
    @ivar usage: the argument synopsis.
    @ivar summary: one line for C{help} and C{?}.
    @ivar run: the implementation.
    @ivar completes: what each argument position completes to: C{"login"}, C{"field"}, C{"command"} or L{None}.
    @ivar admin: whether only admins may run it.
    @ivar aliases: other names.
    """

    name: str
    usage: str
    summary: str
    run: Callable[[Context, list[str]], Awaitable[Result]]
    completes: Sequence[str | None] = ()
    admin: bool = False
    aliases: Sequence[str] = ()


def split(line: str) -> list[str]:
    """
    Split a command line like a POSIX shell (quotes and backslashes work).

    @raise CommandError: on unbalanced quotes.
    """
    try:
        return shlex.split(line)
    except ValueError as e:
        raise CommandError(f"cannot parse the line: {e}") from None


def _one_login(args: list[str], usage: str) -> str:
    if len(args) != 1:
        raise CommandError(f"usage: {usage}")
    return _check_login(args[0])


def _check_login(login: str) -> str:
    if not is_valid_login(login):
        raise CommandError(f"no such user: {login}")
    return login.lower()


async def _update(ctx: Context, login: str, changes: Mapping[str, object]) -> Account:
    try:
        names = [field_name(name) for name in changes]
    except InvalidValue as e:
        raise CommandError(str(e)) from None
    ctx.require_edit(login, names)
    try:
        account: Account = await ctx.store.update(login, changes, ctx.actor)
    except StoreError as e:
        raise CommandError(str(e)) from None
    return account


# The commands.


async def cmd_help(ctx: Context, args: list[str]) -> Result:
    """
    List the commands, or explain one.
    """
    if args:
        command = COMMANDS.get(args[0].lower())
        if command is None:
            raise CommandError(f"no such command: {args[0]} (try 'help')")
        lines = [f"{command.name} {command.usage}".rstrip(), f"  {command.summary}"]
        if command.aliases:
            lines.append(f"  also: {', '.join(command.aliases)}")
        if command.admin:
            lines.append("  (admins only)")
        lines.extend(f"  {line}" for line in HELP_DETAILS.get(command.name, ()))
        return Reply(lines)
    lines = ["Commands (help COMMAND for details; Tab completes, ? lists choices):"]
    for command in visible_commands(ctx):
        lines.append(f"  {(command.name + ' ' + command.usage).strip():<28} {command.summary}")
    return Reply(lines)


async def cmd_who(ctx: Context, args: list[str]) -> Result:
    """
    What an empty finger query shows.
    """
    lines: list[str] = ctx.finger.listing()
    return Reply(list(lines))


async def cmd_finger(ctx: Context, args: list[str]) -> Result:
    """
    Exactly what finger answers for one login (C{-l} for every field, like C{/W}).
    """
    verbose = False
    if args and args[0] in ("-l", "/W", "/w"):
        verbose, args = True, args[1:]
    if len(args) != 1:
        raise CommandError("usage: finger [-l] LOGIN")
    lines: list[str] = ctx.finger.user(args[0], verbose)
    return Reply(list(lines))


async def cmd_status(ctx: Context, args: list[str]) -> Result:
    """
    Set (or, with no text, show) your own status.
    """
    if not args:
        account = ctx.store.peek(ctx.login)
        return Reply([f"status: {account.status if account else ''}"])
    account = await _update(ctx, ctx.login, {"status": " ".join(args)})
    return Reply([f"status of {account.login} set"])


async def cmd_set(ctx: Context, args: list[str]) -> Result:
    """
    Set one field of an account; C{set LOGIN TEXT...} (no field name) sets the status.
    """
    if len(args) < 2:
        raise CommandError("usage: set LOGIN [FIELD] VALUE...")
    login = _check_login(args[0])
    try:
        name = field_name(args[1])
        values = args[2:]
    except InvalidValue:
        name, values = "status", args[1:]
    if name == "keys":
        raise CommandError("use 'key add' and 'key del' to change keys")
    value = " ".join(values)
    if name == "plan":
        value = value.replace("\\n", "\n")
    account = await _update(ctx, login, {name: value})
    return Reply([f"{name} of {account.login} set"])


async def cmd_plan(ctx: Context, args: list[str]) -> Result:
    """
    Replace a plan with lines typed until a lone C{.} (in exec: all of standard input).
    """
    login = _check_login(args[0]) if args else ctx.login
    if len(args) > 1:
        raise CommandError("usage: plan [LOGIN]")
    ctx.require_edit(login, ["plan"])

    async def finish(text: str) -> Reply:
        account = await _update(ctx, login, {"plan": text})
        return Reply([f"plan of {account.login} set ({len(text.splitlines())} lines)"])

    return Interaction("text", "Type the new plan; end with a line holding only '.':", finish)


async def cmd_add(ctx: Context, args: list[str]) -> Result:
    """
    Create an account.
    """
    ctx.require_admin("add accounts")
    if not args:
        raise CommandError("usage: add LOGIN [REAL NAME...]")
    fields = {"real_name": " ".join(args[1:])} if len(args) > 1 else {}
    try:
        account = await ctx.store.create(args[0], ctx.actor, fields)
    except StoreError as e:
        raise CommandError(str(e)) from None
    return Reply([f"created {account.login}"])


async def cmd_del(ctx: Context, args: list[str]) -> Result:
    """
    Delete an account, after confirmation (C{--yes} skips it).
    """
    ctx.require_admin("delete accounts")
    yes = "--yes" in args or "-y" in args
    rest = [arg for arg in args if arg not in ("--yes", "-y")]
    login = _one_login(rest, "del LOGIN [--yes]")
    if ctx.store.peek(login) is None:
        raise CommandError(f"no such user: {login}")

    async def finish(answer: str) -> Reply:
        if answer.strip().lower() not in ("y", "yes"):
            return Reply(["not deleted"])
        try:
            await ctx.store.delete(login, ctx.actor)
        except StoreError as e:
            raise CommandError(str(e)) from None
        return Reply([f"deleted {login}"])

    if yes:
        return await finish("yes")
    if not ctx.interactive:
        raise CommandError("del: add --yes to delete without a question")
    return Interaction("confirm", f"Delete {login} and all its data? [y/N] ", finish)


async def _set_hidden(ctx: Context, args: list[str], hidden: bool, usage: str) -> Result:
    login = _one_login(args, usage) if args else ctx.login
    if not ctx.is_admin and login != ctx.login:
        raise CommandError("permission denied: you may only hide or unhide your own account")
    try:
        await ctx.store.update(login, {"hidden": hidden}, ctx.actor)
    except StoreError as e:
        raise CommandError(str(e)) from None
    return Reply([f"{login} is {'hidden from' if hidden else 'visible to'} finger"])


async def cmd_hide(ctx: Context, args: list[str]) -> Result:
    """
    Hide an account from finger (like C{~/.nofinger}).
    """
    return await _set_hidden(ctx, args, True, "hide [LOGIN]")


async def cmd_unhide(ctx: Context, args: list[str]) -> Result:
    """
    Show a hidden account to finger again.
    """
    return await _set_hidden(ctx, args, False, "unhide [LOGIN]")


def _key_target(ctx: Context, args: list[str]) -> tuple[str, list[str]]:
    """
    Split an optional leading LOGIN off C{key} arguments.
    """
    if args and is_valid_login(args[0]) and not args[0].startswith(("ssh-", "ecdsa-")) and not args[0].isdigit():
        return args[0].lower(), args[1:]
    return ctx.login, args


async def cmd_key(ctx: Context, args: list[str]) -> Result:
    """
    List, add or delete SSH public keys.
    """
    if not args or args[0] not in ("list", "add", "del"):
        raise CommandError("usage: key list [LOGIN] | key add [LOGIN] KEYLINE | key del [LOGIN] N|FINGERPRINT")
    action, (login, rest) = args[0], _key_target(ctx, args[1:])
    account = ctx.store.peek(login)
    if account is None:
        raise CommandError(f"no such user: {login}")
    if action == "list":
        if login != ctx.login:
            ctx.require_admin("list other users' keys")
        return Reply(_key_lines(ctx, account) or [f"{login} has no keys"])
    if ctx.parse_key is None:
        raise CommandError("key: public keys are not available")
    if action == "add":
        if not rest:
            raise CommandError("usage: key add [LOGIN] KEYLINE")
        try:
            _, line = ctx.parse_key(" ".join(rest))
        except ValueError as e:
            raise CommandError(f"key add: {e}") from None
        if line in account.keys:
            raise CommandError("key add: that key is there already")
        await _update(ctx, login, {"keys": account.keys + (line,)})
        return Reply([f"key added to {login}"])
    if len(rest) != 1:
        raise CommandError("usage: key del [LOGIN] N|FINGERPRINT")
    keep = [line for index, line in enumerate(account.keys, 1) if not _key_matches(ctx, index, line, rest[0])]
    if len(keep) == len(account.keys):
        raise CommandError(f"key del: no key {rest[0]} (see 'key list')")
    await _update(ctx, login, {"keys": tuple(keep)})
    return Reply([f"key removed from {login}"])


def _key_fingerprint(ctx: Context, line: str) -> str:
    if ctx.parse_key is None or ctx.fingerprint is None:
        return "?"
    try:
        return ctx.fingerprint(ctx.parse_key(line)[0])
    except ValueError:
        return "(unreadable)"


def _key_lines(ctx: Context, account: Account) -> list[str]:
    lines = []
    for index, line in enumerate(account.keys, 1):
        parts = line.split(None, 2)
        comment = parts[2] if len(parts) > 2 else ""
        lines.append(f"{index:>2}  {parts[0]:<20} {_key_fingerprint(ctx, line)}  {comment}".rstrip())
    return lines


def _key_matches(ctx: Context, index: int, line: str, which: str) -> bool:
    return which == str(index) or which == _key_fingerprint(ctx, line)


async def cmd_passwd(ctx: Context, args: list[str]) -> Result:
    """
    Change your own password (typed twice without echo; in exec: one line of standard input).
    """
    if args:
        raise CommandError("usage: passwd (changes your own password)")
    setter = ctx.set_password
    if setter is None:
        raise CommandError("passwd: this server has no password file (--auth file:PATH)")

    async def finish(password: str) -> Reply:
        if not password:
            raise CommandError("passwd: empty password refused")
        try:
            await setter(ctx.login, password)
        except (OSError, ValueError) as e:
            raise CommandError(f"passwd: cannot save the password: {e}") from None
        return Reply([f"password changed for {ctx.login}"])

    return Interaction("secret", "New password: ", finish)


def format_change(change: Change) -> str:
    """
    One line of C{log} output for a recorded change.
    """
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(change.at))
    who = change.actor.login + (f"/{change.actor.channel}" if change.actor.channel else "")
    if change.actor.peer:
        who += f"@{change.actor.peer}"
    if change.action == "input":
        return f"{stamp} {who} >>> {change.new}"
    if change.action != "update":
        return f"{stamp} {who} {change.action}d {change.login}"
    old, new = (value if value is None else value.replace("\n", "\\n") for value in (change.old, change.new))
    return f"{stamp} {who} {change.login}.{change.field}: {old!r} -> {new!r}"


async def cmd_log(ctx: Context, args: list[str]) -> Result:
    """
    Show recent changes (admins: all, or of one LOGIN; users: their own).
    """
    limit, login = 20, None
    for arg in args:
        if arg.isdigit():
            limit = min(int(arg), 10_000)
        else:
            login = _check_login(arg)
    if not ctx.is_admin:
        if login not in (None, ctx.login):
            raise CommandError("permission denied: you may only see changes to your own account")
        login = ctx.login
    changes: list[Change] = await ctx.store.recent_changes(limit, login)
    return Reply([format_change(change) for change in changes] or ["no changes recorded"])


async def cmd_whoami(ctx: Context, args: list[str]) -> Result:
    """
    Who you are logged in as, with which role, from where.
    """
    role = "admin" if ctx.is_admin else "user"
    where = f" from {ctx.actor.peer}" if ctx.actor.peer else ""
    return Reply([f"{ctx.login} ({role}){where}"])


async def cmd_clear(ctx: Context, args: list[str]) -> Result:
    """
    Clear the screen.
    """
    return Reply(clear=True)


async def cmd_manhole(ctx: Context, args: list[str]) -> Result:
    """
    Open the Python manhole (admins; needs a terminal).  Refusals are logged.
    """
    if not ctx.is_admin:
        LOG.warn(
            "Manhole refused to non-admin {login} from {peer}", login=ctx.login, peer=ctx.actor.peer, outcome="refused"
        )
        raise CommandError("permission denied: only admins may use the manhole")
    if not ctx.interactive:
        raise CommandError("the manhole needs a terminal: ssh -t HOST manhole")
    return Reply(manhole=True)


async def cmd_nodes(ctx: Context, args: list[str]) -> Result:
    """
    List the nodes serving a shared (PostgreSQL) store, as this node's last heartbeat saw them, with warnings.
    """
    nodes = getattr(getattr(ctx.store, "backend", None), "known_nodes", None)
    if nodes is None:
        raise CommandError("nodes: this server's store is not shared by other nodes (--store postgresql://...)")
    from sshfinger.store.postgresql.nodes import format_nodes, node_warnings

    now = time.time()
    return Reply(format_nodes(nodes, now) + [f"warning: {warning}" for warning in node_warnings(nodes, now)])


async def cmd_quit(ctx: Context, args: list[str]) -> Result:
    """
    End the session.
    """
    return Reply(["bye"], exit=True)


COMMAND_LIST: Sequence[Command] = (
    Command("help", "[COMMAND]", "list the commands, or explain one", cmd_help, ("command",)),
    Command("who", "", "list visible users and statuses (the empty finger query)", cmd_who, aliases=("list",)),
    Command("finger", "[-l] LOGIN", "show what finger answers for LOGIN", cmd_finger, ("login",)),
    Command("status", "[TEXT...]", "set (or show) your own status", cmd_status),
    Command(
        "set", "LOGIN [FIELD] VALUE...", "set a field (default: status) of an account", cmd_set, ("login", "field")
    ),
    Command("plan", "[LOGIN]", "write a new plan, ending with a lone '.'", cmd_plan, ("login",)),
    Command("add", "LOGIN [REAL NAME...]", "create an account", cmd_add, admin=True),
    Command("del", "LOGIN [--yes]", "delete an account (asks first)", cmd_del, ("login",), admin=True),
    Command("hide", "[LOGIN]", "hide an account from finger", cmd_hide, ("login",)),
    Command("unhide", "[LOGIN]", "show a hidden account to finger again", cmd_unhide, ("login",)),
    Command("key", "list|add|del ...", "manage SSH public keys", cmd_key, ("keyaction", "login")),
    Command("passwd", "", "change your own password", cmd_passwd),
    Command("log", "[N] [LOGIN]", "show the N most recent changes", cmd_log, ("login", "login")),
    Command("whoami", "", "show your login and role", cmd_whoami),
    Command("nodes", "", "list the nodes serving a shared store (admins)", cmd_nodes, admin=True),
    Command("manhole", "", "open a Python prompt inside the server (admins)", cmd_manhole),
    Command("clear", "", "clear the screen", cmd_clear),
    Command("quit", "", "end the session", cmd_quit, aliases=("exit", "logout")),
)

HELP_DETAILS: Mapping[str, Sequence[str]] = {
    "set": (
        f"FIELD is one of: name, {', '.join(name for name in EDITABLE_FIELDS if name not in ('real_name', 'keys'))}.",
        "Without a FIELD the rest of the line is the status: set alice In a meeting",
        "Users may change their own name, status and plan; admins anything.",
    ),
    "key": (
        "key list [LOGIN]            numbered keys with fingerprints",
        "key add [LOGIN] KEYLINE     e.g. key add ssh-ed25519 AAAA... me@laptop",
        "key del [LOGIN] N           by number or SHA256: fingerprint",
    ),
    "plan": ("In 'ssh host plan < file' the plan is read from standard input.",),
    "passwd": ("In 'ssh host passwd' the new password is read from standard input.",),
    "del": ("In 'ssh host del LOGIN --yes' the question is skipped.",),
    "manhole": ("Ctrl-D returns to this shell. 'ssh -t HOST manhole' opens it directly.",),
}

COMMANDS: Mapping[str, Command] = {
    name: command for command in COMMAND_LIST for name in (command.name, *command.aliases)
}


def visible_commands(ctx: Context) -> list[Command]:
    """
    The commands this login may run, in help order.
    """
    admin = ctx.is_admin
    return [command for command in COMMAND_LIST if admin or not (command.admin or command.name == "manhole")]


def run(ctx: Context, argv: list[str]) -> Deferred[Result]:
    """
    Run one parsed command line.

    @return: a L{Deferred} firing with a L{Reply} or an L{Interaction}, or failing with L{CommandError}.
    """

    async def go() -> Result:
        if not argv:
            return Reply()
        command = COMMANDS.get(argv[0].lower())
        if command is None:
            raise CommandError(f"unknown command: {argv[0]} (try 'help')")
        if command.admin:
            ctx.require_admin(f"use {command.name}")
        return await command.run(ctx, argv[1:])

    return ensureDeferred(go())


def complete(ctx: Context, before_cursor: str) -> tuple[int, list[tuple[str, str]]]:
    """
    Completion candidates for the word under the cursor: command names first, then per-argument kinds.

    @return: where the word starts in C{before_cursor}, and C{(candidate, description)} pairs.
    """
    if before_cursor.count('"') % 2 or before_cursor.count("'") % 2:
        return len(before_cursor), []
    start = max(before_cursor.rfind(" "), before_cursor.rfind("\t")) + 1
    word, words = before_cursor[start:], before_cursor[:start].split()
    if not words:
        pool = [(command.name, command.summary) for command in visible_commands(ctx)]
    else:
        command = COMMANDS.get(words[0].lower())
        position = len(words) - 1
        kind = command.completes[position] if command and position < len(command.completes) else None
        pool = _candidates(ctx, kind)
    lowered = word.lower()
    return start, [(name, about) for name, about in pool if name.startswith(lowered)]


def _candidates(ctx: Context, kind: str | None) -> list[tuple[str, str]]:
    if kind == "command":
        return [(command.name, command.summary) for command in visible_commands(ctx)]
    if kind == "field":
        return [("name" if name == "real_name" else name, "field") for name in EDITABLE_FIELDS if name != "keys"]
    if kind == "keyaction":
        return [("list", "list keys"), ("add", "add a key"), ("del", "delete a key")]
    if kind == "login":
        result = []
        for login in ctx.store.logins():
            account = ctx.store.peek(login)
            result.append((login, account.real_name if account and account.real_name else "account"))
        return result
    return []
