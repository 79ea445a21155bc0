"""
The Twisted finger tutorial's plain server (a LineReceiver and a dict of users): the baseline the bench measures
sshfinger against.  No twistd, no logging, no timeouts, no limits.

Run: python baseline_finger.py PORT [BACKLOG]   (listens on 127.0.0.1; BACKLOG defaults to Twisted's 50)
"""

import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols import basic


class FingerProtocol(basic.LineReceiver):
    """
    Answer one CRLF-terminated query from the factory's dict, then close.
    """

    def lineReceived(self, user: bytes) -> None:
        self.transport.write(self.factory.getUser(user) + b"\r\n")
        self.transport.loseConnection()


class FingerFactory(protocol.ServerFactory):
    """
    Hold the users: login (bytes) to status (bytes).
    """

    protocol = FingerProtocol

    def __init__(self, users: dict[bytes, bytes]) -> None:
        self.users = users

    def getUser(self, user: bytes) -> bytes:
        return self.users.get(user, b"No such user")


if __name__ == "__main__":
    port = sys.argv[1] if len(sys.argv) > 1 else "1079"
    backlog = f":backlog={int(sys.argv[2])}" if len(sys.argv) > 2 else ""
    users = {b"alice": b"Down the rabbit hole", b"admin": b"Keeping the lights on"}
    endpoint = endpoints.serverFromString(reactor, f"tcp:{int(port)}:interface=127.0.0.1{backlog}")
    endpoint.listen(FingerFactory(users))
    reactor.run()
