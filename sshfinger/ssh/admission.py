"""
SSH admission as OpenSSH's sshd does it: how many unauthenticated connections the server holds in all
(C{MaxStartups start:rate:full}, with random early drop between C{start} and C{full}), how many connections one
address may hold (C{PerSourceMaxStartups}, counted over all connections here), and refusals logged at most once
a second.  (The descriptor limit they fit under is L{sshfinger.ops.descriptors}'.)
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

#: C{--max-startups}: unauthenticated connections in all (OpenSSH's default C{10:30:100}).
MAX_STARTUPS = "10:30:100"
#: C{--max-ssh-per-peer}: connections from one address (its L{peer_key}).
MAX_PER_PEER = 10
#: Seconds between two log lines about refused connections (the ones between are counted in the next line).
REFUSAL_LOG_INTERVAL = 1.0

_log = Logger(namespace="sshfinger.ssh.admission")


@dataclass(frozen=True)
class Startups:
    """
    OpenSSH's C{MaxStartups start:rate:full}: from C{start} unauthenticated connections on, a new one is refused
    with probability C{rate} %, rising linearly to 100 % at C{full}.
    """

    start: int
    rate: int
    full: int

    @classmethod
    def parse(cls, text: str) -> Startups:
        """
        Parse C{"N"} (C{N/10:30:N}, as OpenSSH's default 10:30:100 scales) or C{"start:rate:full"}.

        @raise ValueError: with one line, for anything else.
        """
        fields = text.split(":")
        try:
            numbers = [int(field) for field in fields]
        except ValueError:
            raise ValueError(f"--max-startups takes N or start:rate:full, not {text!r}") from None
        if len(numbers) == 1:
            full = numbers[0]
            numbers = [max(1, full // 10), 30, full]
        if len(numbers) != 3:
            raise ValueError(f"--max-startups takes N or start:rate:full, not {text!r}")
        start, rate, full = numbers
        if not (0 < start <= full and 0 <= rate <= 100):
            raise ValueError("--max-startups: need 0 < start <= full and 0 <= rate <= 100")
        return cls(start, rate, full)

    def drop(self, pending: int, chance: Callable[[], float] = random.random) -> bool:
        """
        Whether a new connection is refused while C{pending} connections are unauthenticated.
        """
        if pending >= self.full:
            return True
        if pending < self.start:
            return False
        probability = (self.rate + (100 - self.rate) * (pending - self.start) / (self.full - self.start)) / 100
        return chance() < probability


class Admission:
    """
    The counts behind admission: unauthenticated connections in all, connections per address.

    A connection is L{admit}ted (or refused) once its address is known, L{authenticated} once its login
    succeeds, and L{release}d when it closes.

    @ivar pending: unauthenticated connections now.
    """

    def __init__(
        self,
        clock: Any,
        startups: Startups | None = None,
        per_peer: int = MAX_PER_PEER,
        chance: Callable[[], float] = random.random,
    ) -> None:
        """
        @param clock: provides C{seconds()} (for rate-limiting the log).
        @param startups: the unauthenticated cap; OpenSSH's default if L{None}.
        @param per_peer: connections one address may hold.
        @param chance: a uniform random number in [0, 1), for random early drop.
        """
        self.clock = clock
        self.startups = startups or Startups.parse(MAX_STARTUPS)
        self.per_peer = per_peer
        self.chance = chance
        self.pending = 0
        self._peers: Counter[str] = Counter()
        self._last_log = float("-inf")
        self._unlogged = 0

    def admit(self, peer: str, description: str) -> bool:
        """
        Count a new unauthenticated connection from C{peer} (its L{peer_key}), or refuse it (logged, at most
        once per L{REFUSAL_LOG_INTERVAL}).

        @param description: the client's address as logged.
        @return: whether it is admitted; a refused one must be closed at once and is not counted.
        """
        if self._peers[peer] >= self.per_peer:
            self._refused(description, f"{self.per_peer} connections from {peer} already")
            return False
        if self.startups.drop(self.pending, self.chance):
            self._refused(description, f"{self.pending} unauthenticated connections already")
            return False
        self._peers[peer] += 1
        self.pending += 1
        return True

    def authenticated(self) -> None:
        """
        One admitted connection has logged in: it no longer counts against the unauthenticated cap.
        """
        self.pending -= 1

    def release(self, peer: str, authenticated: bool) -> None:
        """
        One admitted connection from C{peer} has closed.
        """
        if not authenticated:
            self.pending -= 1
        self._peers[peer] -= 1
        if self._peers[peer] <= 0:
            del self._peers[peer]

    def _refused(self, description: str, why: str) -> None:
        now = self.clock.seconds()
        if now - self._last_log < REFUSAL_LOG_INTERVAL:
            self._unlogged += 1
            return
        _log.warn(
            "SSH connection from {peer} refused: {why} ({more} more refused since the last line)",
            peer=description,
            why=why,
            more=self._unlogged,
            outcome="refused",
        )
        self._last_log = now
        self._unlogged = 0


__all__ = ["MAX_PER_PEER", "MAX_STARTUPS", "Admission", "Startups"]
