"""
This node's identity in a shared store's registry, from the parsed options: its name (C{--node}, else the
host name and SSH port, so several nodes on one machine need no option) and its host keys' fingerprints.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import Any

from sshfinger.model.sshsig import fingerprint


def node_identity(settings: Mapping[str, Any]) -> tuple[str, list[str]]:
    """
    Return (name, host-key fingerprints) for the options in C{settings} (C{node}, C{ssh}, C{no-ssh},
    C{host_keys}).
    """
    keys = [] if settings.get("no-ssh") else [fingerprint(key) for key in (settings.get("host_keys") or {}).values()]
    name = settings.get("node")
    if not name:
        finger_only = bool(settings.get("no-ssh"))
        endpoint = str(settings.get("finger" if finger_only else "ssh") or "")
        port = re.search(r"tcp:(\d+)", endpoint)
        suffix = port.group(1) if port else endpoint.replace(":", "-")
        name = f"{socket.gethostname()}:{'finger-' if finger_only else ''}{suffix}"
    return str(name), sorted(keys)


__all__ = ["node_identity"]
