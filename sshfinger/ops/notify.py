"""
systemd's readiness protocol (C{Type=notify}): one datagram to the socket named by C{NOTIFY_SOCKET}, as
C{sd_notify(3)} sends it, without a dependency.  Outside systemd (no C{NOTIFY_SOCKET}) it does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.logger import Logger

log = Logger()


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """
    Send C{state} (C{"READY=1"}, C{"STOPPING=1"}, lines of C{KEY=value}) to the service manager.

    It never blocks: the datagram is sent with C{MSG_DONTWAIT}; a failure is logged as a warning.

    @param environ: where to find C{NOTIFY_SOCKET}; L{os.environ} by default.
    @return: whether the datagram was sent.
    """
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.send(state.encode("utf-8"), socket.MSG_DONTWAIT)
    except OSError as e:
        log.warn("Cannot notify systemd at {address}: {error}", address=address, error=e.strerror or str(e))
        return False
    return True


__all__ = ["notify"]
