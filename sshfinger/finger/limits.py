"""
Per-peer limits of the finger server: connections per address and in all (L{ConnectionLimits}), and listing
queries per address and second (L{ListingLimiter}).

Peers are counted by key (L{sshfinger.model.peers.peer_key}: the IPv4 host, or the IPv6 /64), so one customer's
network is one peer.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, IReactorTime

from sshfinger.finger import constants
from sshfinger.model.peers import IPV6_PREFIX, peer_key


class PeerKeys:
    """
    L{peer_key} for the finger server, fast: an IPv4 host is its own key, and an IPv6 host's network (parsing it
    costs more than answering a finger query) is remembered, for at most L{constants.PEER_KEYS_MAX} hosts.

    @ivar ipv6_prefix: IPv6 hosts are keyed by their network of this prefix length.
    """

    def __init__(self, ipv6_prefix: int = IPV6_PREFIX) -> None:
        self.ipv6_prefix = ipv6_prefix
        self._ipv6: dict[str, str] = {}

    def __call__(self, address: IAddress | None) -> str:
        """
        Return C{address}'s key, as L{peer_key} gives it.
        """
        host = getattr(address, "host", None)
        if isinstance(host, str) and ":" not in host:
            return host  # an IPv4 host (or a name): what peer_key gives, without parsing it
        key = self._ipv6.get(host) if isinstance(host, str) else None
        if key is None:
            key = peer_key(address, self.ipv6_prefix)
            if isinstance(host, str):
                if len(self._ipv6) >= constants.PEER_KEYS_MAX:
                    self._ipv6.clear()
                self._ipv6[host] = key
        return key


class ConnectionLimits:
    """
    Counts open connections per peer key and in all.

    @ivar max_per_peer: most connections from one key.
    @ivar max_total: most connections in all; past it the caller makes room (see L{over_total}).
    @ivar total: connections counted now.
    """

    def __init__(self, max_per_peer: int = constants.MAX_PER_PEER, max_total: int = constants.MAX_CONNECTIONS) -> None:
        self.max_per_peer = max_per_peer
        self.max_total = max_total
        self.total = 0
        self._per_peer: dict[str, int] = {}

    def admit(self, key: str) -> bool:
        """
        Count one more connection from C{key}, unless it has L{max_per_peer} already.

        @return: whether the connection was admitted (and counted).
        """
        count = self._per_peer.get(key, 0)
        if count >= self.max_per_peer:
            return False
        self._per_peer[key] = count + 1
        self.total += 1
        return True

    def over_total(self) -> bool:
        """
        Whether more connections are counted than L{max_total}.
        """
        return self.total > self.max_total

    def release(self, key: str) -> None:
        """
        Forget one admitted connection from C{key}.
        """
        count = self._per_peer.get(key, 0) - 1
        if count >= 0:
            self.total -= 1
        if count > 0:
            self._per_peer[key] = count
        else:
            self._per_peer.pop(key, None)

    def connections_from(self, key: str) -> int:
        """
        Return the number of admitted connections from C{key} still open.
        """
        return self._per_peer.get(key, 0)


class ListingLimiter:
    """
    A token bucket per peer key for listing queries, which cost far more than a user's record when not cached:
    each key may make L{rate} a second on average and L{burst} at once.

    @ivar clock: the reactor or a L{task.Clock}.
    """

    def __init__(
        self, clock: IReactorTime, rate: float = constants.LIST_RATE, burst: float = constants.LIST_BURST
    ) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        """
        The number of keys whose budget is remembered.
        """
        return len(self._buckets)

    def allow(self, key: str) -> bool:
        """
        Spend one listing of C{key}'s budget; return whether there was one to spend.
        """
        now = self.clock.seconds()
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        if len(self._buckets) >= constants.LIST_PEERS_MAX and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _forget_full(self, now: float) -> None:
        """
        Drop the keys whose budget has refilled (they would start full anyway); if none has, drop them all.
        """
        refill = self.burst / self.rate
        kept = {key: value for key, value in self._buckets.items() if now - value[1] < refill}
        self._buckets = kept if len(kept) < constants.LIST_PEERS_MAX else {}


__all__ = ["ConnectionLimits", "ListingLimiter", "PeerKeys"]
