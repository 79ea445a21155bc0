"""
The C{key} command: list, add and delete a login's SSH public keys.
"""

from __future__ import annotations

from sshfinger.model.account import Account, is_valid_login
from sshfinger.shell.app import CommandError, Context, Reply, Result
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
        raise CommandError("usage: key list [LOGIN] | key add [LOGIN] KEYLINE | key del [LOGIN] N|FINGERPRINT")
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
        if not rest:
            raise CommandError("usage: key add [LOGIN] KEYLINE")
        try:
            _, line = ctx.parse_key(" ".join(rest))
        except ValueError as e:
            raise CommandError(f"key add: {e}") from None
        if line in account.keys:
            raise CommandError("key add: that key is there already")
        await update(ctx, login, {"keys": account.keys + (line,)})
        return Reply([f"key added to {login}"])
    if len(rest) != 1:
        raise CommandError("usage: key del [LOGIN] N|FINGERPRINT")
    keep = [line for index, line in enumerate(account.keys, 1) if not _key_matches(ctx, index, line, rest[0])]
    if len(keep) == len(account.keys):
        raise CommandError(f"key del: no key {rest[0]} (see 'key list')")
    await update(ctx, login, {"keys": tuple(keep)})
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
