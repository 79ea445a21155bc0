"""
The C{key} command: list, add and delete a login's SSH public keys.
"""

from __future__ import annotations

from sshfinger.model.account import Account, is_valid_login
from sshfinger.shell.app import CommandError, Context, Interaction, Reply, Result
from sshfinger.shell.commands.base import update


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
        raise CommandError("usage: key list [LOGIN] | key add [LOGIN] [KEYLINE] | key del [LOGIN] N|FINGERPRINT")
    action, (login, rest) = args[0], _key_target(ctx, args[1:])
    account = ctx.visible(login)  # a hidden account is no such user to those who may not see it
    if account is None:
        raise CommandError(f"no such user: {login}")
    if action == "list":
        if login != ctx.login:
            ctx.require_admin("list other users' keys")
        return Reply(_key_lines(ctx, account) or [f"{login} has no keys"])
    if ctx.parse_key is None:
        raise CommandError("key: public keys are not available")
    if action == "add":
        if rest:
            return await _add_keys(ctx, login, [" ".join(rest)])
        ctx.require_edit(login, ["keys"])

        async def finish(text: str) -> Reply:
            return await _add_keys(ctx, login, text.splitlines(), numbered=True)

        return Interaction("text", "Paste the public keys, one per line; end with a line holding only '.':", finish)
    if len(rest) != 1:
        raise CommandError("usage: key del [LOGIN] N|FINGERPRINT")
    keep = [line for index, line in enumerate(account.keys, 1) if not _key_matches(ctx, index, line, rest[0])]
    if len(keep) == len(account.keys):
        raise CommandError(f"key del: no key {rest[0]} (see 'key list')")
    await update(ctx, login, {"keys": tuple(keep)})
    return Reply([f"key removed from {login}"])


async def _add_keys(ctx: Context, login: str, lines: list[str], numbered: bool = False) -> Reply:
    """
    Add the key lines in C{lines} (blank and C{#} lines skipped) to C{login}'s account, all or none.

    @param numbered: name a bad line by its number (the lines were pasted or read from standard input).
    """
    if ctx.parse_key is None:
        raise CommandError("key: public keys are not available")
    account = ctx.visible(login)
    if account is None:
        raise CommandError(f"no such user: {login}")
    added: list[str] = []
    parsed = 0
    for number, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            _, line = ctx.parse_key(text)
        except ValueError as e:
            raise CommandError(f"key add: line {number}: {e}" if numbered else f"key add: {e}") from None
        parsed += 1
        if line not in account.keys and line not in added:
            added.append(line)
    if not added:
        raise CommandError("key add: that key is there already" if parsed else "key add: no key given")
    await update(ctx, login, {"keys": account.keys + tuple(added)})
    return Reply([f"{len(added)} keys added to {login}" if len(added) > 1 else f"key added to {login}"])


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
