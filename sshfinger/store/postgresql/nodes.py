"""
The registry of nodes serving one PostgreSQL store: each node upserts a row (name, version, host-key
fingerprints, heartbeat, how far behind the change log it is) every few seconds; C{sshfinger nodes} lists them
and warns when nodes serve different host keys (clients behind one name would see the key change), one lags
or one has gone silent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from sshfinger.store.postgresql.tuning import HEARTBEAT_INTERVAL, LAG_WARNING, SILENT_AFTER


@dataclass(frozen=True)
class NodeRow:
    """
    One registered node.
    """

    name: str
    version: str
    host_keys: str
    started_at: float
    heartbeat_at: float
    applied_seq: int
    lag: int


def heartbeat(
    connection: psycopg.Connection[Any], name: str, version: str, host_keys: Sequence[str], started_at: float,
    applied_seq: int,
) -> None:
    """
    Register or refresh node C{name}; its lag is computed against the feed's head in the same statement.
    """
    connection.execute(
        "INSERT INTO nodes (name, version, host_keys, started_at, heartbeat_at, applied_seq, lag)"
        " SELECT %s, %s, %s, %s, %s, %s, greatest(head - %s, 0) FROM feed"
        " ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, host_keys = EXCLUDED.host_keys,"
        " started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at,"
        " applied_seq = EXCLUDED.applied_seq, lag = EXCLUDED.lag",
        (name, version, " ".join(sorted(host_keys)), started_at, time.time(), applied_seq, applied_seq),
    )


def list_nodes(connection: psycopg.Connection[Any]) -> list[NodeRow]:
    """
    Every registered node, by name.
    """
    rows = connection.execute(
        "SELECT name, version, host_keys, started_at, heartbeat_at, applied_seq, lag FROM nodes ORDER BY name"
    ).fetchall()
    return [NodeRow(*row) for row in rows]


def node_warnings(nodes: Sequence[NodeRow], now: float, interval: float = HEARTBEAT_INTERVAL) -> list[str]:
    """
    What an operator should know about the registered nodes: different host keys, lagging or silent nodes.
    """
    warnings = []
    live = [node for node in nodes if now - node.heartbeat_at <= interval * SILENT_AFTER]
    for node in nodes:
        if node not in live:
            warnings.append(f"node {node.name} has been silent for {now - node.heartbeat_at:.0f} s")
    keys = {node.host_keys for node in live if node.host_keys}
    if len(keys) > 1:
        names = ", ".join(f"{node.name} ({node.host_keys or 'none'})" for node in live)
        warnings.append(f"nodes serve different host keys (clients behind one name will see the key change): {names}")
    for node in live:
        if node.lag > LAG_WARNING:
            warnings.append(f"node {node.name} is {node.lag} changes behind")
    return warnings


def format_nodes(nodes: Sequence[NodeRow], now: float) -> list[str]:
    """
    The lines C{sshfinger nodes} prints: one per node.
    """
    lines = []
    for node in nodes:
        age = now - node.heartbeat_at
        lines.append(
            f"{node.name}  sshfinger {node.version}  heartbeat {age:.0f} s ago  up {now - node.started_at:.0f} s"
            f"  lag {node.lag}  host keys {node.host_keys or '-'}"
        )
    return lines


def doctor_findings(url: str) -> list[tuple[str, str]]:
    """
    What C{sshfinger doctor} reports about a PostgreSQL store: whether it opens (upgrading if needed), the
    integrity of its change log, and the node registry's warnings; as (C{"ok"}, C{"warn"} or C{"fail"}, text).
    """
    from sshfinger.model.errors import StoreError
    from sshfinger.store.postgresql import open_backend

    backend = open_backend(url)
    try:
        accounts = backend.open_by_login()
        problems = backend.check()
        nodes = backend.run(list_nodes)
    except StoreError as e:
        return [("fail", f"store {backend.description}: {e}")]
    finally:
        backend.close()
    findings = [("fail", f"store {backend.description}: {problem}") for problem in problems]
    if not problems:
        findings.append(("ok", f"store {backend.description}: integrity ok, {len(accounts)} accounts"))
    findings += [("warn", f"nodes: {warning}") for warning in node_warnings(nodes, time.time())]
    if nodes:
        findings.append(("ok", f"nodes: {len(nodes)} registered ({', '.join(node.name for node in nodes)})"))
    return findings


__all__ = ["NodeRow", "doctor_findings", "format_nodes", "heartbeat", "list_nodes", "node_warnings"]
