"""
The commands that change accounts: status, set, plan, add, del, hide, unhide and passwd.
"""

from __future__ import annotations

import re

from sshfinger.model.account import EDITABLE_FIELDS, Change, check_password_strength, field_name
from sshfinger.model.errors import InvalidValue, StoreError
from sshfinger.shell.app import CommandError, Context, Interaction, Reply, Result
from sshfinger.shell.commands.base import check_login, one_login, update
from sshfinger.shell.commands.signed import set_signed_plan

#: A word that can only be meant as a field name (lower-case letters, C{-} or C{_}).
_FIELD_LIKE = re.compile(r"[a-z][a-z_-]*")

#: The field names C{set} takes, as people type them.
SET_FIELDS = tuple("name" if name == "real_name" else name for name in EDITABLE_FIELDS if name != "keys")


async def cmd_status(ctx: Context, args: list[str]) -> Result:
    """
    Set (or, with no text, show) your own status.
    """
    if not args:
        account = ctx.store.peek(ctx.login)
        return Reply([f"status: {account.status if account else ''}"])
    account = await update(ctx, ctx.login, {"status": " ".join(args)})
    return Reply([f"status of {account.login} set"])


async def cmd_set(ctx: Context, args: list[str]) -> Result:
    """
    Set one field of an account: C{set LOGIN FIELD VALUE...}.  Without a field name the rest of the line is the
    status (C{set alice In a meeting}, as C{ssh host set alice "In a meeting"} arrives), unless it starts with a
    lower-case word: that is taken for a field name, and one that is not a field is an error listing the
    fields, so a typo (C{set alice colr red}) never becomes the status.
    """
    if len(args) < 2:
        raise CommandError("usage: set LOGIN [FIELD] VALUE...")
    login = check_login(args[0])
    typed = args[1]
    try:
        name, values = field_name(typed), args[2:]
    except InvalidValue:
        if len(args) > 2 and _FIELD_LIKE.fullmatch(typed):
            raise CommandError(
                f"unknown field {typed!r}: choose from {', '.join(SET_FIELDS)} "
                f"(for a status starting with {typed!r}, quote it: set {login} \"{typed} ...\")"
            ) from None
        typed, name, values = "status", "status", args[1:]
    if name == "keys":
        raise CommandError("use 'key add' and 'key del' to change keys")
    value = " ".join(values)
    if name == "plan":
        value = value.replace("\\n", "\n")
    account = await update(ctx, login, {name: value})
    return Reply([f"{typed} of {account.login} set"])


async def cmd_plan(ctx: Context, args: list[str]) -> Result:
    """
    Replace a plan with lines typed until a lone C{.} (in exec: all of standard input).
    """
    signed = "--signature" in args
    args = [arg for arg in args if arg != "--signature"]
    login = check_login(args[0]) if args else ctx.login
    if len(args) > 1:
        raise CommandError("usage: plan [LOGIN] [--signature]")
    ctx.require_edit(login, ["plan"])

    async def finish(text: str) -> Reply:
        if signed:
            return await set_signed_plan(ctx, login, text)
        account = await update(ctx, login, {"plan": text})
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
    ctx.spend_edit()
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
    login = one_login(rest, "del LOGIN [--yes]")
    if ctx.store.peek(login) is None:
        raise CommandError(f"no such user: {login}")

    async def finish(answer: str) -> Reply:
        if answer.strip().lower() not in ("y", "yes"):
            return Reply(["not deleted"])
        ctx.spend_edit()
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
    login = one_login(args, usage) if args else ctx.login
    if not ctx.is_admin and login != ctx.login:
        raise CommandError("permission denied: you may only hide or unhide your own account")
    ctx.spend_edit()
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
            check_password_strength(password)
        except ValueError as e:
            raise CommandError(f"passwd: {e}; nothing changed") from None
        ctx.spend_edit()
        try:
            await setter(ctx.login, password)
        except (OSError, ValueError) as e:
            raise CommandError(f"passwd: cannot save the password: {e}") from None
        if ctx.password_change_recorded:
            return Reply([f"password changed for {ctx.login}"])
        try:
            await ctx.store.record(Change(0.0, ctx.actor, ctx.login, "passwd", "password"))  # never the hash
        except StoreError as e:
            return Reply([f"password changed for {ctx.login} (not recorded in the audit trail: {e})"])
        return Reply([f"password changed for {ctx.login}"])

    return Interaction("secret", "New password: ", finish)
