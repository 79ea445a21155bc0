"""
Signed plans in the shell: C{plan --signature} (the plan followed by its C{.sig} file) and C{verify}.
"""

from __future__ import annotations

from sshfinger.model.account import normalize_field
from sshfinger.model.errors import InvalidValue, StoreError
from sshfinger.model.sshsig import SignatureError, check_plan_signature, split_signed, verify_report
from sshfinger.shell.app import CommandError, Context, Reply, Result
from sshfinger.shell.commands.base import one_login


async def set_signed_plan(ctx: Context, login: str, text: str) -> Reply:
    """
    Set a plan with its signature (the input is the plan followed by its C{.sig} file), once it verifies against
    one of the account's keys.
    """
    plan_text, signature = split_signed(text)
    if not signature:
        raise CommandError("no signature after the plan: send the plan then its .sig file (cat plan plan.sig)")
    account = ctx.store.peek(login)
    try:
        plan = str(normalize_field("plan", plan_text))
        signer = check_plan_signature(plan, signature, account.keys if account else ())
    except (InvalidValue, SignatureError) as e:
        raise CommandError(f"plan not set: {e}") from None
    try:
        await ctx.store.update(login, {"plan": plan, "plan_signature": signature}, ctx.actor)
    except StoreError as e:
        raise CommandError(str(e)) from None
    return Reply([f"plan of {login} set, signed with {signer}"])


async def cmd_verify(ctx: Context, args: list[str]) -> Result:
    """
    Re-check the signature of a plan (your own by default).
    """
    login = one_login(args, "verify [LOGIN]") if args else ctx.login
    account = ctx.visible(login)
    if account is None:
        raise CommandError(f"no such user: {login}")
    ok, line = verify_report(account.login, account.plan, account.plan_signature, account.keys)
    if not ok:
        raise CommandError(line)
    return Reply([line])
