"""
The admins' C{nodes} command: the nodes serving a shared (PostgreSQL) store, as this node's last heartbeat saw
them, with warnings.
"""

from __future__ import annotations

import time

from sshfinger.shell.app import CommandError, Context, Reply, Result


async def cmd_nodes(ctx: Context, args: list[str]) -> Result:
    """
    List the nodes serving a shared (PostgreSQL) store, as this node's last heartbeat saw them, with warnings.
    """
    nodes = getattr(getattr(ctx.store, "backend", None), "known_nodes", None)
    if nodes is None:
        raise CommandError("nodes: this server's store is not shared by other nodes (--store postgresql://...)")
    from sshfinger.store.postgresql.nodes import format_nodes, node_warnings

    now = time.time()
    return Reply(format_nodes(nodes, now) + [f"warning: {warning}" for warning in node_warnings(nodes, now)])
