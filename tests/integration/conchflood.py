"""
A hostile SSH client for the flood tests, run as a script (OpenSSH's client cannot send these): it logs in with a
password and then either sends many window-change requests to a shell holding a long line, or one huge exec
command.  It prints one line of figures and exits 0 when the server answered.

    python conchflood.py PORT LOGIN PASSWORD resize COUNT LINE_LENGTH
    python conchflood.py PORT LOGIN PASSWORD exec SIZE
    python conchflood.py PORT LOGIN PASSWORD login

With C{FLOOD_WAIT} set in the environment, it prints C{ready} once logged in (the shell started, for resizes)
and waits for a line on standard input before flooding, so that C{bench/floods.py} can measure the flood
without the login.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from twisted.conch.ssh import channel, common, connection, session, transport, userauth
from twisted.internet import defer, protocol, reactor

PORT, LOGIN, PASSWORD, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ARGS = [int(arg) for arg in sys.argv[5:]]
RESULT: dict[str, Any] = {"ok": False}


def ready() -> None:
    """
    With C{FLOOD_WAIT} set: say so and wait for the go (a line on standard input) before flooding.
    """
    if os.environ.get("FLOOD_WAIT"):
        print("ready", flush=True)
        sys.stdin.readline()


class Flood(channel.SSHChannel):
    """
    The session channel that floods.
    """

    name = b"session"

    def channelOpen(self, data: bytes) -> None:
        """
        Start the shell (for resizes) or send the exec request.
        """
        self.received = 0
        self.started = time.monotonic()
        if MODE == "login":  # no flood: the cost of a login alone, for comparison
            RESULT.update(ok=True, seconds=round(time.monotonic() - STARTED, 3))
            self.loseConnection()
        elif MODE == "resize":
            pty = session.packRequest_pty_req(b"xterm", (24, 80, 0, 0), b"")
            self.conn.sendRequest(self, b"pty-req", pty)
            self.conn.sendRequest(self, b"shell", b"", wantReply=True).addCallback(self.resize)
        else:
            command = b"status " + b"x" * ARGS[0]
            ready()
            self.started = time.monotonic()
            self.conn.sendRequest(self, b"exec", common.NS(command), wantReply=True).addErrback(lambda _: None)

    def resize(self, _: object) -> None:
        """
        Type a long line, then send the window changes; the last one asks for a reply, which comes once the
        server has handled them all.
        """
        count, length = ARGS
        ready()
        self.started = time.monotonic()
        self.write(b"x" * length)
        for n in range(count - 1):
            self.conn.sendRequest(self, b"window-change", session.packRequest_window_change((24, 40 + n % 80, 0, 0)))
        last = session.packRequest_window_change((24, 100, 0, 0))
        self.conn.sendRequest(self, b"window-change", last, wantReply=True).addBoth(self.handled)

    def handled(self, _: object) -> None:
        """
        Every resize was handled: wait a moment for the coalesced redraw, then leave.
        """
        RESULT["ok"] = True
        RESULT["seconds"] = round(time.monotonic() - self.started, 3)
        reactor.callLater(0.5, self.loseConnection)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        """
        Count what the server draws.
        """
        self.received += len(data)
        RESULT["received"] = self.received

    def extReceived(self, dataType: int, data: bytes) -> None:
        """
        The exec's error line.
        """
        RESULT["stderr"] = data.decode("utf-8", "replace").strip()

    def request_exit_status(self, data: bytes) -> int:
        """
        The exec ended.
        """
        RESULT["ok"] = MODE == "exec"
        RESULT["status"] = int.from_bytes(data[:4], "big")
        RESULT["seconds"] = round(time.monotonic() - self.started, 3)
        return 1

    def closed(self) -> None:
        """
        Done: print the figures and stop.
        """
        self.conn.transport.loseConnection()


class Connection(connection.SSHConnection):
    """
    Opens the one channel.
    """

    def serviceStarted(self) -> None:
        """
        Open the session channel.
        """
        self.openChannel(Flood(conn=self))


class Auth(userauth.SSHUserAuthClient):
    """
    Password authentication only.
    """

    preferredOrder = [b"password"]

    def getPassword(self, prompt: bytes | None = None) -> defer.Deferred[bytes]:
        """
        The password from the command line.
        """
        return defer.succeed(PASSWORD.encode())


class Transport(transport.SSHClientTransport):
    """
    Accepts any host key (a test server on loopback).
    """

    def verifyHostKey(self, hostKey: bytes, fingerprint: bytes) -> defer.Deferred[bool]:
        """
        Accept.
        """
        return defer.succeed(True)

    def connectionSecure(self) -> None:
        """
        Authenticate, then start the connection service.
        """
        self.requestService(Auth(LOGIN.encode(), Connection()))

    def connectionLost(self, reason: object) -> None:
        """
        Stop the reactor.  A flood cut short by the server (a resize flood, an exec packet too long) counts as
        answered.
        """
        if MODE in ("resize", "exec") and "seconds" not in RESULT:
            RESULT.update(ok=True, closed_by_server=True, seconds=round(time.monotonic() - STARTED, 3))
        transport.SSHClientTransport.connectionLost(self, reason)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]


STARTED = time.monotonic()
factory = protocol.ClientFactory()
factory.protocol = Transport
reactor.connectTCP("127.0.0.1", PORT, factory)  # type: ignore[attr-defined]
reactor.callLater(120, reactor.stop)  # type: ignore[attr-defined]
reactor.run()  # type: ignore[attr-defined]
print(RESULT)
sys.exit(0 if RESULT["ok"] else 1)
