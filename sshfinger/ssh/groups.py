"""
The Diffie-Hellman groups of C{diffie-hellman-group-exchange-sha256}: the MODP groups of RFC 3526 (2048 to 8192
bits), as OpenSSH's sshd serves when it has no moduli file; the server offers those up to its C{MAX_GEX_BITS}.

Not the groups of C{/etc/ssh/moduli}: the cryptography library checks an unknown group's primes before using
it, on the reactor thread and holding the GIL, which took 35 s for one 8192-bit group (issue 17 #3: one
unauthenticated client froze finger).  It knows the RFC 3526 groups and skips the check: the server's side of an
exchange costs about 0.8 ms at 2048 bits, 1.7 ms at 3072, 3.5 ms at 4096 and 17 ms at 8192 (C{bench/gex.py}
measures it; L{sshfinger.ssh.server.MAX_GEX_BITS} says how far the server goes).
"""

from __future__ import annotations

from functools import cache

#: RFC 3526's constant k for each group size: p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k).
_RFC3526_K = {2048: 124476, 3072: 1690314, 4096: 240904, 6144: 929484, 8192: 4743158}
#: The generator of every RFC 3526 group.
GENERATOR = 2


def _pi_times_power_of_two(bits: int) -> int:
    """
    floor(pi * 2^bits), from Machin's formula pi = 16 atan(1/5) - 4 atan(1/239) in integer arithmetic.
    """
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inverse(x: int) -> int:
        total, term, k, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // k)
            term //= x * x
            k += 2
            sign = -sign
        return total

    return (16 * arctan_inverse(5) - 4 * arctan_inverse(239)) >> guard


@cache
def modp_prime(bits: int) -> int:
    """
    The prime of the RFC 3526 MODP group of C{bits} bits (2048, 3072, 4096, 6144 or 8192).
    """
    k = _RFC3526_K[bits]
    return 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_times_power_of_two(bits - 130) + k)


def gex_groups(max_bits: int = 8192) -> dict[int, list[tuple[int, int]]]:
    """
    The groups offered for group exchange, as L{twisted.conch.ssh.factory.SSHFactory.getPrimes} returns them:
    C{{bits: [(generator, prime)]}}, every RFC 3526 group of at most C{max_bits} bits.
    """
    return {bits: [(GENERATOR, modp_prime(bits))] for bits in _RFC3526_K if bits <= max_bits}


__all__ = ["GENERATOR", "gex_groups", "modp_prime"]
