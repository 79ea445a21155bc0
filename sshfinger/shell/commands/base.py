"""
What every command module shares: the L{Command} record, line splitting and the checks and store write that
several commands make.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sshfinger.model.account import Account, field_name, is_valid_login
from sshfinger.model.errors import InvalidValue, StoreError
from sshfinger.shell.app import CommandError, Context, Result


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


def one_login(args: list[str], usage: str) -> str:
    """
    The one login in C{args}, lower-case.

    @raise CommandError: with C{usage} unless there is exactly one argument; see L{check_login}.
    """
    if len(args) != 1:
        raise CommandError(f"usage: {usage}")
    return check_login(args[0])


def check_login(login: str) -> str:
    """
    C{login}, lower-case.

    @raise CommandError: "no such user" if it is not even a valid login.
    """
    if not is_valid_login(login):
        raise CommandError(f"no such user: {login}")
    return login.lower()


async def update(ctx: Context, login: str, changes: Mapping[str, object]) -> Account:
    """
    Change fields of C{login}'s account, if this login may, and its edit budget allows.

    @raise CommandError: on a bad field name or value, a permission refused, a spent budget or a store error.
    """
    try:
        names = [field_name(name) for name in changes]
    except InvalidValue as e:
        raise CommandError(str(e)) from None
    ctx.require_edit(login, names)
    ctx.spend_edit()
    try:
        account: Account = await ctx.store.update(login, changes, ctx.actor)
    except StoreError as e:
        raise CommandError(str(e)) from None
    return account
