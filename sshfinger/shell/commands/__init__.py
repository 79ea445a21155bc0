"""
The commands of the SSH shell and of C{ssh host COMMAND}: parsing, permissions and what each one does.

A command never touches a terminal.  It returns a L{Reply} (lines to print) or asks for more through an
L{Interaction} (the multi-line plan, a password, a confirmation), which the interactive shell answers with
prompts and the exec session answers from standard input.  Errors are L{CommandError}s: one line for the user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred, ensureDeferred

from sshfinger.model.account import EDITABLE_FIELDS
from sshfinger.shell.app import CommandError, Context, Interaction, Reply, Result
from sshfinger.shell.commands.base import Command, split
from sshfinger.shell.commands.edit import (
    SET_FIELDS,
    cmd_add,
    cmd_del,
    cmd_hide,
    cmd_passwd,
    cmd_plan,
    cmd_set,
    cmd_status,
    cmd_unhide,
)
from sshfinger.shell.commands.keys import cmd_key
from sshfinger.shell.commands.nodes import cmd_nodes
from sshfinger.shell.commands.read import (
    cmd_clear,
    cmd_finger,
    cmd_log,
    cmd_manhole,
    cmd_quit,
    cmd_who,
    cmd_whoami,
)
from sshfinger.shell.commands.signed import cmd_verify

__all__ = [
    "COMMANDS",
    "COMMAND_LIST",
    "Command",
    "CommandError",
    "Context",
    "Interaction",
    "Reply",
    "Result",
    "complete",
    "run",
    "split",
    "visible_commands",
]


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


COMMAND_LIST: Sequence[Command] = (
    Command("help", "[COMMAND]", "list the commands, or explain one", cmd_help, ("command",)),
    Command("who", "", "list visible users and statuses (the empty finger query)", cmd_who, aliases=("list",)),
    Command("finger", "[-l] LOGIN", "show what finger answers for LOGIN", cmd_finger, ("login",)),
    Command("status", "[TEXT...]", "set (or show) your own status", cmd_status),
    Command(
        "set", "LOGIN [FIELD] VALUE...", "set a field (default: status) of an account", cmd_set, ("login", "field")
    ),
    Command("plan", "[LOGIN]", "write a new plan, ending with a lone '.'", cmd_plan, ("login",)),
    Command("verify", "[LOGIN]", "check the signature of a plan", cmd_verify, ("login",)),
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
        f"FIELD is one of: {', '.join(SET_FIELDS)}.",
        "Without a FIELD the rest of the line is the status: set alice In a meeting",
        "A lower-case first word must be a FIELD (a typo never becomes the status); quote such a status.",
        "Users may change their own name, status and plan; admins anything.",
    ),
    "key": (
        "key list [LOGIN]            numbered keys with fingerprints",
        "key add [LOGIN] KEYLINE     e.g. key add ssh-ed25519 AAAA... me@laptop",
        "key add [LOGIN]             paste keys (in exec: ssh host key add < ~/.ssh/id_ed25519.pub)",
        "key del [LOGIN] N           by number or SHA256: fingerprint",
    ),
    "plan": (
        "In 'ssh host plan < file' the plan is read from standard input.",
        "'cat plan plan.sig | ssh host plan --signature' sets a plan signed with",
        "'ssh-keygen -Y sign -f KEY -n sshfinger-plan plan' by one of your keys.",
    ),
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
            account = ctx.visible(login)  # hidden accounts only for admins and their owner
            if account is not None:
                result.append((login, account.real_name or "account"))
        return result
    return []
