"""
The options of an C{authorized_keys} line (C{from="..."}, C{expiry-time="..."}), as OpenSSH's sshd reads them.

sshfinger honours only L{SUPPORTED_OPTIONS}: a line with any other option is refused with a line naming it, as
storing it and ignoring it would be worse.  C{from} takes sshd's address patterns (C{*} and C{?} wildcards,
C{a.b.c.d/nn} networks, C{!} negation; host names cannot match, as no reverse lookup is done); C{expiry-time}
takes C{YYYYMMDD[HHMM[SS]]}, in UTC with a final C{Z} and in the server's local time otherwise.
"""

from __future__ import annotations

import calendar
import fnmatch
import ipaddress
import re
import time
from dataclasses import dataclass

#: The options sshfinger enforces.
SUPPORTED_OPTIONS = ("from", "expiry-time")

_NAME_RE = re.compile(r"[A-Za-z0-9-]+")
_EXPIRY_RE = re.compile(r"(\d{8})(\d{4})?(\d{2})?(Z?)\Z")


@dataclass(frozen=True)
class KeyOptions:
    """
    The restrictions of one key line.

    @ivar sources: the C{from} patterns, or empty for any source.
    @ivar expires: the POSIX time the key stops working (C{expiry-time}), or L{None}.
    """

    sources: tuple[str, ...] = ()
    expires: float | None = None

    def refusal(self, address: str | None, now: float) -> str | None:
        """
        Why a login from C{address} (an IP address, or L{None} if unknown) at C{now} is refused, or L{None}.
        """
        if self.expires is not None and now >= self.expires:
            return "the key has expired (expiry-time)"
        if self.sources and (address is None or not source_allowed(self.sources, address)):
            return f"the key is not allowed from {address or 'an unknown address'} (from=)"
        return None


def _parse_time(text: str) -> float:
    match = _EXPIRY_RE.match(text)
    if not match:
        raise ValueError(f"expiry-time {text!r} is not YYYYMMDD[HHMM[SS]][Z]")
    day, hour_minute, second, utc = match.groups()
    stamp = day + (hour_minute or "0000") + (second or "00")
    try:
        parsed = time.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"expiry-time {text!r} is not a valid date") from None
    return float(calendar.timegm(parsed) if utc else time.mktime(parsed))


def _check_pattern(pattern: str) -> None:
    body = pattern[1:] if pattern.startswith("!") else pattern
    if not body or any(c.isspace() for c in body):
        raise ValueError(f"from pattern {pattern!r} is empty or holds spaces")
    if "/" in body:
        try:
            ipaddress.ip_network(body, strict=True)
        except ValueError:
            raise ValueError(f"from pattern {pattern!r} is not a valid network") from None


def source_allowed(patterns: tuple[str, ...], address: str) -> bool:
    """
    Whether C{address} matches the C{from} patterns as sshd decides: a negated match refuses, else any match
    allows.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    allowed = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if "/" in body:
            network = ipaddress.ip_network(body)
            hit = ip.version == network.version and ip in network
        else:
            hit = fnmatch.fnmatchcase(str(ip), body.lower())
        if hit and negated:
            return False
        allowed = allowed or hit
    return allowed


def split_options(line: str) -> tuple[list[tuple[str, str | None]], str]:
    """
    Split an options prefix off a key line: C{(options, rest)} where each option is C{(name, value or None)}.

    @raise ValueError: for an unterminated quote or a malformed option.
    """
    options: list[tuple[str, str | None]] = []
    i, n = 0, len(line)
    while True:
        match = _NAME_RE.match(line, i)
        if not match:
            raise ValueError("malformed authorized_keys options")
        name, i = match.group().lower(), match.end()
        value: str | None = None
        if i < n and line[i] == "=":
            if i + 1 >= n or line[i + 1] != '"':
                raise ValueError(f"authorized_keys option {name} needs a quoted value")
            i += 2
            chars = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n and line[i + 1] == '"':
                    i += 1
                chars.append(line[i])
                i += 1
            if i >= n:
                raise ValueError(f"authorized_keys option {name} has an unterminated quote")
            value = "".join(chars)
            i += 1
        options.append((name, value))
        if i < n and line[i] == ",":
            i += 1
            continue
        if i < n and line[i] in " \t":
            return options, line[i:].strip()
        raise ValueError("malformed authorized_keys options")


def parse_options(options: list[tuple[str, str | None]]) -> KeyOptions:
    """
    Check options and build their L{KeyOptions}.

    @raise ValueError: naming an option sshfinger does not support, or a bad value.
    """
    sources: tuple[str, ...] = ()
    expires: float | None = None
    for name, value in options:
        if name not in SUPPORTED_OPTIONS:
            raise ValueError(
                f"authorized_keys option {name!r} is not supported (sshfinger honours only from= and expiry-time=)"
            )
        if value is None:
            raise ValueError(f"authorized_keys option {name} needs a value")
        if name == "from":
            sources = tuple(part.strip() for part in value.split(","))
            for pattern in sources:
                _check_pattern(pattern)
        else:
            expires = _parse_time(value)
    return KeyOptions(sources, expires)


def format_options(options: list[tuple[str, str | None]]) -> str:
    """
    Write options back as a prefix (C{from="10.0.0.1",expiry-time="20300101"}).
    """
    parts = [name if value is None else f'{name}="{value}"' for name, value in options]
    return ",".join(parts)


__all__ = ["SUPPORTED_OPTIONS", "KeyOptions", "format_options", "parse_options", "source_allowed", "split_options"]
