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
        self._in_flight: dict[str, int] = {}

    def begin(self, host: str) -> bool:
        """
        Start one expensive attempt (a password check) from C{host}, counted as a failure in advance: a host with
        L{threshold} recent failures and attempts in flight together, or serving a penalty, may not start
        another.  (Refusing one is no penalty: a busy host's parallel logins that succeed earn none; guesses
        that fail do, once L{threshold} of them have failed, so no host gets more checks than that per window.)
        Every C{True} must be followed by one L{end}.

        @return: whether the attempt may go ahead.
        """
        if self.blocked(host):
            return False
        now = self.clock.seconds()
        times = self._failures.get(host)
        recent = sum(1 for when in times if when > now - self.window) if times else 0
        in_flight = self._in_flight.get(host, 0)
        if recent + in_flight >= self.threshold:
            return False
        self._in_flight[host] = in_flight + 1
        return True

    def end(self, host: str, failed: bool) -> float:
        """
        Finish an attempt started with L{begin}; count it as a failure if it C{failed}.

        @return: the penalty (seconds) it earned, or 0.
        """
        left = self._in_flight.get(host, 0) - 1
        if left > 0:
            self._in_flight[host] = left
        else:
            self._in_flight.pop(host, None)
        if not failed or self.blocked(host):
            return 0.0
        return self.failed(host)

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
        return self._penalise(host, now)

    def _penalise(self, host: str, now: float) -> float:
        strikes = self._strikes.get(host, 0)
        penalty = min(self.penalty * 2**strikes, self.max_penalty)
        self._strikes[host] = strikes + 1
        self._blocked[host] = now + penalty
        self._failures.pop(host, None)
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
