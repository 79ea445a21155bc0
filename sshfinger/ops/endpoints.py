"""
Endpoint descriptions as sshfinger uses them: what it listens on for a description (L{listen_description}), and
the checks a description gets before anything listens (L{check_description}).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

#: Listen queue of TCP endpoints that do not set one (Twisted's default, 50, drops connection bursts).
BACKLOG = 1024

#: Endpoint types whose first argument (or C{port=}) is a TCP port number.
_PORT_TYPES = ("tcp", "tcp6", "ssl")

#: The Linux switch that makes an IPv6 socket bound to C{::} refuse IPv4 (1) or accept it too (0, the default).
_BINDV6ONLY = Path("/proc/sys/net/ipv6/bindv6only")


def _split(description: str) -> list[str]:
    """
    Split an endpoint description at its unescaped colons (C{\\:} stays inside an argument).
    """
    return re.split(r"(?<!\\):", description)


def endpoint_port(description: str) -> int | None:
    """
    Return the TCP port a C{tcp:}, C{tcp6:} or C{ssl:} description (also behind C{haproxy:}) names, or L{None}
    for other endpoint types and for a port that is not a number (the endpoint parser reports that one).
    """
    parts = _split(description)
    if parts and parts[0] == "haproxy":
        parts = parts[1:]
    if len(parts) < 2 or parts[0] not in _PORT_TYPES:
        return None
    keywords = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
    positional = [part for part in parts[1:] if "=" not in part]
    port = keywords.get("port", positional[0] if positional else None)
    if port is None or not port.strip().isdigit():
        return None
    return int(port)


def check_description(description: str) -> None:
    """
    Check what Twisted's endpoint parser lets through but cannot listen on: a port outside 0-65535.

    @raise ValueError: with a one-line reason.
    """
    port = endpoint_port(description)
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")


def dual_stack_available() -> bool:
    """
    Whether an IPv6 socket bound to C{::} takes IPv4 connections too: IPv6 is there and the system does not make
    such sockets IPv6-only (Linux's C{net.ipv6.bindv6only}).
    """
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::", 0))
            return probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    except OSError:
        return False


def listen_description(description: str, dual_stack: bool | None = None) -> str:
    """
    Return the description sshfinger listens on for C{description}:

      - a C{tcp:PORT} with no C{interface=} listens on IPv6 and IPv4 (C{tcp6:PORT:interface=\\:\\:}, one
        dual-stack socket; IPv4 peers then show as C{::ffff:192.0.2.7}) where the system allows it, else on IPv4;
      - C{tcp:} and C{tcp6:} endpoints that do not set a backlog get C{backlog=1024}.

    @param dual_stack: whether to listen dual-stack; L{dual_stack_available} by default.
    """
    parts = _split(description)
    if parts[0] == "tcp" and not any(part.startswith("interface=") for part in parts[1:]):
        if dual_stack_available() if dual_stack is None else dual_stack:
            description = ":".join(["tcp6", *parts[1:], "interface=\\:\\:"])
    if description.startswith(("tcp:", "tcp6:")) and "backlog=" not in description:
        return f"{description}:backlog={BACKLOG}"
    return description



def client_address(description: str) -> tuple[str, int] | None:
    """
    Return the (host, port) a local client reaches a C{tcp:}/C{tcp6:} description at (its interface, or the
    loopback address when it listens on all of them), or L{None} for other endpoint types.
    """
    port = endpoint_port(description)
    parts = _split(description)
    if port is None or parts[0] not in ("tcp", "tcp6"):
        return None
    interface = next((part[len("interface=") :] for part in parts[1:] if part.startswith("interface=")), "")
    interface = interface.replace("\\:", ":")
    if interface in ("", "0.0.0.0"):
        interface = "127.0.0.1"
    elif interface == "::":
        interface = "::1"
    return interface, port


def run_hint(finger: str, ssh: str, password: str) -> str:
    """
    Return what C{make run} prints before it starts the server: how to query it (with C{nc}, and without it) and
    how to log in, at the addresses C{FINGER=} and C{SSH=} give.  Shell text: C{\\r\\n} stays two characters
    for C{printf} to turn into CR LF.
    """
    lines = []
    address = client_address(finger)
    if address is not None:
        host, port = address
        lines.append(f"finger: printf 'alice\\r\\n' | nc {host} {port}")
        lines.append(
            f'        (no nc? python3 -c "import socket; s = socket.create_connection((\'{host}\', {port})); '
            f"s.sendall(b'alice\\r\\n'); print(s.makefile(encoding='utf-8').read())\")"
        )
    else:
        lines.append(f"finger: {finger}")
    address = client_address(ssh)
    if address is not None:
        host, port = address
        lines.append(f"ssh:    ssh -p {port} admin@{host}    (password {password})")
    else:
        lines.append(f"ssh:    {ssh}    (admin, password {password})")
    return "\n".join(lines)


if __name__ == "__main__":  # make run: python -m sshfinger.ops.endpoints FINGER SSH PASSWORD
    import sys

    print(run_hint(*sys.argv[1:4]))


__all__ = [
    "BACKLOG",
    "check_description",
    "client_address",
    "dual_stack_available",
    "endpoint_port",
    "listen_description",
    "run_hint",
]
