"""
Per-source SSH penalties shared by every node on one PostgreSQL database: a brute force spread over the nodes is
throttled as if it hit one.

Each node keeps its own L{sshfinger.ssh.penalties.SourcePenalties}; a failed login is counted there and
announced to the others with a C{NOTIFY} on L{FAILURES_CHANNEL} (payload: the node's id and the source), which
every node's LISTEN connection counts in its own.  Best effort by design: a notification sent while a node is
disconnected is not replayed (penalties last minutes; the change log is for data).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

#: The channel failed logins are announced on.
FAILURES_CHANNEL = "sshfinger_login_failures"

#: Longest source key accepted from a notification (an IPv6 /64 prefix is far shorter).
MAX_SOURCE = 64


class SharedPenalties:
    """
    A L{SourcePenalties} whose failures every node counts: stands in for it (the SSH factory's C{penalties}).
    """

    log = Logger()

    def __init__(self, local: Any, publish: Callable[[str], Deferred[None] | None]) -> None:
        """
        @param local: this node's L{sshfinger.ssh.penalties.SourcePenalties}.
        @param publish: announces one failure (its payload) to the other nodes, off the reactor thread.
        """
        self.local = local
        self._publish = publish
        #: This process's id in the payloads, so that its own announcements are not counted twice.
        self.node_id = os.urandom(6).hex()

    def failed(self, host: str) -> float:
        """
        Count a failure here and announce it.  See L{SourcePenalties.failed}.
        """
        penalty: float = self.local.failed(host)
        self._announce(host)
        return penalty

    def end(self, host: str, failed: bool) -> float:
        """
        Finish an attempt here, and announce it if it C{failed}.  See L{SourcePenalties.end}.
        """
        penalty = float(self.local.end(host, failed))
        if failed:
            self._announce(host)
        return penalty

    def _announce(self, host: str) -> None:
        d = self._publish(f"{self.node_id} {host}")
        if d is not None:
            d.addErrback(lambda _: None)  # the database is away: this node still counts it

    def blocked(self, host: str) -> float:
        """
        See L{SourcePenalties.blocked}.
        """
        return float(self.local.blocked(host))

    def heard(self, payload: str) -> None:
        """
        Count a failure another node announced (ignore this node's own, and anything malformed).
        """
        node, _, host = payload.partition(" ")
        if node == self.node_id or not host or len(host) > MAX_SOURCE or not host.isprintable():
            return
        penalty = self.local.failed(host)
        if penalty:
            self.log.warn(
                "SSH source {host} penalised for {seconds:.0f} s after repeated failures on the cluster",
                host=host,
                seconds=penalty,
                outcome="penalised",
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)


__all__ = ["FAILURES_CHANNEL", "SharedPenalties"]
