"""
The process's descriptor budget: every connection holds one, so the connection caps must fit under it.
"""

from __future__ import annotations

import resource

#: The share of the descriptor limit finger's connections may hold at most; the rest is for SSH, the store,
#: the logs and the web face.
FINGER_SHARE = 4


def raise_descriptor_limit() -> tuple[int, int]:
    """
    Raise the soft C{RLIMIT_NOFILE} to the hard limit (as far as the kernel allows), so that the caps on
    connections, not the descriptor table, are what refuses clients.

    @return: the soft limit before and after.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        return soft, soft
    return soft, hard


def finger_connection_cap(configured: int, soft_limit: int | None = None) -> int:
    """
    Return finger's cap on connections in all: the configured one, lowered to a quarter of the descriptor limit
    (at least 16) so that a finger flood can never take the descriptors SSH and the store need.
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    return min(configured, max(16, soft_limit // FINGER_SHARE))


__all__ = ["FINGER_SHARE", "finger_connection_cap", "raise_descriptor_limit"]
