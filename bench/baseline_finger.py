"""
The Twisted finger tutorial's plain server, the baseline the bench measures sshfinger against.

Run: python baseline_finger.py PORT
"""

import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols import basic


class FingerProtocol(basic.LineReceiver):
    """
    Answer one query from the factory's dict, then close (the tutorial's finger server).
    """

    def lineReceived(self, user: bytes) -> None:
        """
        Write the user's status, or "No such user".
        """
        self.transport.write(self.factory.getUser(user) + b"\r\n")
        self.transport.loseConnection()


class FingerFactory(protocol.ServerFactory):
    """
    Hold the users in a dict.
    """

    protocol = FingerProtocol

    def __init__(self, users: dict[bytes, bytes]) -> None:
        """
        @param users: login to status.
        """
        self.users = users

    def getUser(self, user: bytes) -> bytes:
        """
        The status of C{user}.
        """
        return self.users.get(user, b"No such user")


if __name__ == "__main__":
    port = sys.argv[1] if len(sys.argv) > 1 else "1079"
    factory = FingerFactory({b"alice": b"Down the rabbit hole", b"admin": b"Keeping the lights on"})
    endpoints.serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1").listen(factory)
    reactor.run()
