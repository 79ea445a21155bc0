"""
The twistd plugin: C{twistd sshfinger}.  Nothing is imported until the plugin is used.
"""

from typing import Any

from twisted.application.service import ServiceMaker
from twisted.python.reflect import namedAny


class SSHFingerServiceMaker(ServiceMaker):
    """
    L{ServiceMaker} with twistd's options class (C{sshfinger.tap.TwistdOptions}): a usage error is one line and
    a pointer to C{--help}, not twistd's whole usage.
    """

    @property
    def options(self) -> Any:
        """
        The options class twistd parses C{twistd sshfinger ...} with.
        """
        return namedAny(self.module).TwistdOptions


sshfinger = SSHFingerServiceMaker(
    "sshfinger",
    "sshfinger.tap",
    "RFC 1288 finger and a Conch SSH admin service sharing one user store.",
    "sshfinger",
)
