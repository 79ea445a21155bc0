"""
Helpers the bench scripts share.
"""

from __future__ import annotations

import socket
import time

HOST = "127.0.0.1"

#: OpenSSH client options for unattended logins to a throw-away server.
SSH_COMMON = [
    "-F", "/dev/null",  # no user config: no ControlMaster reuse, no surprises
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=20",
]  # fmt: skip

#: Key logins: never prompt, offer only the given key.
KEY_ONLY = ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]


def free_port() -> int:
    """
    A loopback port that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    """
    Wait until C{port} accepts connections.

    @raise SystemExit: if nothing listens within C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")
