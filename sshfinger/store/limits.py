"""
How much of the audit trail and the shell history a store keeps: the one place these bounds are defined.

The audit trail (every change, every manhole line) is bounded by count and by size, so that no single user can
fill the disk by editing a long plan over and over; each login's shell history by lines and line length.
"""

from __future__ import annotations

from sshfinger.model.account import Change

#: Audit entries (changes and manhole lines) kept by default (C{--audit-keep}).
CHANGES_KEEP = 100_000

#: Bytes of audit entries kept by default (C{--audit-max-bytes}), as counted by L{change_size}.
CHANGES_MAX_BYTES = 64 * 1024 * 1024

#: Shell history lines kept per login.
HISTORY_KEEP = 500

#: Longest history line kept, in characters: with L{HISTORY_KEEP}, at most 2 MB of history per login.
HISTORY_LINE_MAX = 4096

#: What an audit entry costs beyond its text (its row, indexes, time stamp, actor).
CHANGE_OVERHEAD = 64


def change_size(change: Change) -> int:
    """
    The bytes one audit entry counts against L{CHANGES_MAX_BYTES}: its texts (UTF-8) plus L{CHANGE_OVERHEAD}.
    """
    texts = (change.old or "", change.new or "", change.login, change.field, change.actor.login, change.actor.peer)
    return CHANGE_OVERHEAD + sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)


def check_retention(keep: int, max_bytes: int) -> None:
    """
    Refuse retention bounds that would keep nothing.

    @raise ValueError: with one line.
    """
    if keep < 1:
        raise ValueError("the audit trail must keep at least 1 entry")
    if max_bytes < 1:
        raise ValueError("the audit trail must keep at least 1 byte")
