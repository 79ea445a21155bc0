"""
The commands that only read: who, finger, log, whoami, and the session ones (clear, manhole, quit).
"""

from __future__ import annotations

from twisted.logger import Logger

from sshfinger.model.account import Change
from sshfinger.model.audit import format_change
from sshfinger.shell.app import CommandError, Context, Reply, Result
from sshfinger.shell.commands.base import check_login

LOG = Logger(namespace="sshfinger.shell")


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


async def cmd_log(ctx: Context, args: list[str]) -> Result:
    """
    Show recent changes (admins: all, or of one LOGIN; users: their own).
    """
    limit, login = 20, None
    for arg in args:
        if arg.isdigit():
            limit = min(int(arg), 10_000)
        else:
            login = check_login(arg)
    if not ctx.is_admin:
        if login not in (None, ctx.login):
            raise CommandError("permission denied: you may only see changes to your own account")
        login = ctx.login
    # An admin sees everything recorded under a login; a user only their own account's lifetime.
    changes: list[Change] = await ctx.store.recent_changes(limit, login, everything=ctx.is_admin)
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


async def cmd_quit(ctx: Context, args: list[str]) -> Result:
    """
    End the session.
    """
    return Reply(["bye"], exit=True)
