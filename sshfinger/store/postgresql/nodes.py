"""
The registry of nodes serving one PostgreSQL store: each node upserts a row (name, version, host-key
fingerprints, heartbeat, how far behind the change log it is) every few seconds; C{sshfinger nodes} lists them
and warns when nodes serve different host keys (clients behind one name would see the key change), one lags
or one has gone silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool

from sshfinger import __version__
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
    connection: psycopg.Connection[Any],
    name: str,
    version: str,
    host_keys: Sequence[str],
    started_at: float,
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


def registry_findings(backend: Any) -> list[tuple[str, str]]:
    """
    What C{sshfinger doctor} adds about an open PostgreSQL store: the node registry's warnings, as
    (C{"ok"} or C{"warn"}, text).
    """
    nodes = backend.run(list_nodes)
    findings = [("warn", f"nodes: {warning}") for warning in node_warnings(nodes, time.time())]
    if nodes:
        findings.append(("ok", f"nodes: {len(nodes)} registered ({', '.join(node.name for node in nodes)})"))
    return findings


class NodeHeartbeat(Service):
    """
    Register this node in a PostgreSQL store's C{nodes} table and refresh its row every L{HEARTBEAT_INTERVAL}
    seconds while it runs (off the reactor thread); each beat also reads the registry into the backend's
    C{known_nodes}, which the shell's C{nodes} command shows without waiting.
    """

    def __init__(
        self,
        backend: Any,
        applied: Callable[[], int],
        name: str,
        host_keys: Sequence[str],
        reactor: Any,
        run_in_thread: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        """
        @param backend: the L{sshfinger.store.postgresql.backend.PostgreSQLBackend}, opened before this starts.
        @param applied: returns the sequence number of the last change the node's view applied (its lag).
        @param name: this node's name (C{--node}).
        @param host_keys: the fingerprints of the host keys it serves.
        @param reactor: runs the timer (and the thread, by default).
        @param run_in_thread: runs C{f(*args)} off the reactor thread (default: the reactor's thread pool).
        """
        self.backend = backend
        self.node_name = name
        self.host_keys = sorted(host_keys)
        self._applied = applied
        self._reactor = reactor
        self._started_at = 0.0
        self._run_in_thread = run_in_thread or (
            lambda f, *args: deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)
        )
        self._loop = LoopingCall(self.beat)
        self._loop.clock = reactor

    def beat(self) -> Deferred[None]:
        """
        Refresh this node's row (its version, host keys and how far behind the change log it is); a failure
        (the database away) is left to the feed to report.
        """
        backend, name, keys, started = self.backend, self.node_name, self.host_keys, self._started_at
        applied = self._applied()

        def work(connection: psycopg.Connection[Any]) -> None:
            heartbeat(connection, name, __version__, keys, started, applied)
            backend.known_nodes = list_nodes(connection)

        d = self._run_in_thread(backend.run, work, "heartbeat")
        return d.addErrback(lambda _: None)

    def startService(self) -> None:
        """
        Start beating, now and every L{HEARTBEAT_INTERVAL} seconds.
        """
        super().startService()
        self._started_at = self._reactor.seconds()
        self._loop.start(HEARTBEAT_INTERVAL, now=True)

    def stopService(self) -> None:
        """
        Stop beating.
        """
        super().stopService()
        if self._loop.running:
            self._loop.stop()


__all__ = [
    "NodeHeartbeat", "NodeRow", "format_nodes", "heartbeat", "list_nodes", "node_warnings", "registry_findings",
]  # fmt: skip
