"""
The twistd plugin: C{twistd sshfinger}.  Nothing is imported until the plugin is used.
"""

from twisted.application.service import ServiceMaker

sshfinger = ServiceMaker(
    "sshfinger",
    "sshfinger.tap",
    "RFC 1288 finger and a Conch SSH admin service sharing one user store.",
    "sshfinger",
)
