"""
How one audit entry (a L{Change}) reads as a line of text, for the shell's C{log}, the manhole and C{sshfinger audit}.
"""

from __future__ import annotations

import time

from sshfinger.model.account import Change


def format_change(change: Change) -> str:
    """
    One line for a recorded change: when, who (login/channel@peer), and what.  Old and new values are quoted as
    Python literals, so a newline in a plan reads C{\\n} (one backslash) and the entry stays on one line.
    """
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(change.at))
    who = change.actor.login + (f"/{change.actor.channel}" if change.actor.channel else "")
    if change.actor.peer:
        who += f"@{change.actor.peer}"
    if change.action == "input":
        line = change.new or ""
        return f"{stamp} {who} >>> {line if line.isprintable() else repr(line)}"
    if change.action == "passwd":
        return f"{stamp} {who} changed the password of {change.login}"
    if change.action != "update":
        return f"{stamp} {who} {change.action}d {change.login}"
    return f"{stamp} {who} {change.login}.{change.field}: {change.old!r} -> {change.new!r}"
