"""
Per-source penalties for SSH, in the spirit of OpenSSH's PerSourcePenalties: an address that keeps failing to
authenticate is refused new connections for a while, and for longer each time it comes back for more.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

#: Failed attempts within L{WINDOW} seconds that earn a penalty.
THRESHOLD = 10
#: Seconds over which failures are counted.
WINDOW = 60.0
#: The first penalty in seconds; each further one doubles, up to L{MAX_PENALTY}.
PENALTY = 30.0
MAX_PENALTY = 600.0
#: Addresses remembered at most (the oldest are forgotten first), so memory stays bounded.
MAX_SOURCES = 65536


class SourcePenalties:
    """
    Failure counts and refusals per source address.
    """

    def __init__(
        self,
        clock: Any,
        threshold: int = THRESHOLD,
        window: float = WINDOW,
        penalty: float = PENALTY,
        max_penalty: float = MAX_PENALTY,
    ) -> None:
        """
        @param clock: provides C{seconds()}.
        """
        self.clock = clock
        self.threshold = threshold
        self.window = window
        self.penalty = penalty
        self.max_penalty = max_penalty
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, float] = {}
        self._strikes: dict[str, int] = {}

    def failed(self, host: str) -> float:
        """
        Count one failed attempt from C{host}.

        @return: the penalty (seconds) it earned, or 0.
        """
        now = self.clock.seconds()
        times = self._failures.pop(host, None) or deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.threshold:
            self._failures[host] = times
            while len(self._failures) > MAX_SOURCES:
                self._failures.popitem(last=False)
            return 0.0
        strikes = self._strikes.get(host, 0)
        penalty = min(self.penalty * 2**strikes, self.max_penalty)
        self._strikes[host] = strikes + 1
        self._blocked[host] = now + penalty
        self._forget_expired(now)
        return penalty

    def blocked(self, host: str) -> float:
        """
        Seconds C{host} must still wait before it may connect (0 if it may).
        """
        until = self._blocked.get(host)
        if until is None:
            return 0.0
        left = until - self.clock.seconds()
        if left <= 0:
            del self._blocked[host]
            return 0.0
        return left

    def _forget_expired(self, now: float) -> None:
        if len(self._blocked) > MAX_SOURCES:
            for host in [host for host, until in self._blocked.items() if until <= now]:
                del self._blocked[host]
        if len(self._strikes) > MAX_SOURCES:
            self._strikes.clear()
