"""
Bounded reactor time per SSH connection (issue 17): whatever a client sends, one connection holds the reactor
thread for a fraction of a millisecond at a time, so finger's answers never wait behind it.

Two things took longer.  A single read can carry hundreds of small packets (a window-change flood: 202 in one
64 KiB read, 7 ms), so a connection handles at most L{PACKETS_PER_TURN} packets per reactor turn and leaves the
rest, with its socket paused, for the next turn.  And the server's side of a key exchange (its ephemeral key, the
shared secret and the host key's signature: 1.5 to 2.5 ms with an RSA-3072 host key) runs in a thread, through
Conch's own handler, while the connection's input waits and its output is held; the cryptography library lets go
of the GIL while it signs with RSA, so the reactor thread runs meanwhile.  (It keeps the GIL for finite-field
Diffie-Hellman, 0.9 ms a step at 3072 bits: that part of group exchange still holds the reactor thread, and is
bounded by the groups offered, L{sshfinger.ssh.server.MAX_GEX_BITS}.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.conch.ssh import transport
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

#: The most packets one connection handles in one reactor turn (about 35 microseconds each for a window change).
PACKETS_PER_TURN = 16

#: The key exchange messages whose answer (the server's share, the shared secret, the signature) is computed in a
#: thread.  KEXDH_INIT's number is also KEX_ECDH_INIT's, the hybrid INIT's and KEX_DH_GEX_REQUEST_OLD's.
KEX_ANSWERED_IN_THREAD = frozenset(
    {transport.MSG_KEXDH_INIT, transport.MSG_KEX_DH_GEX_REQUEST, transport.MSG_KEX_DH_GEX_INIT}
)


class PacedServerTransport(transport.SSHServerTransport):
    """
    Conch's server transport with a bound on the work one reactor turn does for it (see the module's text).

    The factory may provide C{run_kex}, an executor that runs a function in a thread and returns a L{Deferred}
    of its result (L{sshfinger.ops.background.in_background}); without one, key exchanges are answered inline as
    Conch does.  C{factory.reactor} schedules the next turn.

    A subclass that replaces C{connectionLost} without calling this one's calls L{stop_pacing}.
    """

    log = Logger()
    factory: Any
    transport: Any
    _budget = PACKETS_PER_TURN
    _next_turn_call: IDelayedCall | None = None
    _paused = False
    _stopped = False
    #: While a key exchange answer is computed: the thread computing it, and what it sent (to send once done).
    _kex_thread: int | None = None
    _kex_output: list[Callable[[], None]] | None = None

    def dataReceived(self, data: bytes) -> None:
        """
        Buffer C{data} and handle the packets it completes, up to the turn's budget.
        """
        if self._next_turn_call is None and self._kex_output is None:
            self._budget = PACKETS_PER_TURN
        super().dataReceived(data)

    def getPacket(self) -> bytes | None:
        """
        The next packet, unless this turn's budget is spent (the rest waits for the next turn, the socket paused)
        or a key exchange answer is being computed (the rest waits for it).
        """
        if self._kex_output is not None:
            return None
        if self._budget <= 0:
            self._pause()
            if self._next_turn_call is None:
                self._next_turn_call = self.factory.reactor.callLater(0, self._next_turn)
            return None
        packet: bytes | None = super().getPacket()
        if packet is not None:
            self._budget -= 1
        return packet

    def dispatchMessage(self, messageNum: int, payload: bytes) -> None:
        """
        Handle a message as Conch does; a key exchange message that Conch answers with heavy work (see
        L{KEX_ANSWERED_IN_THREAD}) is handled in a thread.
        """
        run = getattr(self.factory, "run_kex", None)
        if messageNum not in KEX_ANSWERED_IN_THREAD or run is None:
            super().dispatchMessage(messageNum, payload)
            return
        self._kex_output = []
        self._pause()
        handle = super().dispatchMessage

        def in_thread() -> None:
            self._kex_thread = threading.get_ident()
            try:
                handle(messageNum, payload)
            finally:
                self._kex_thread = None

        done: Deferred[None] = run(in_thread)
        done.addCallbacks(self._kex_answered, self._kex_failed)

    def sendPacket(self, messageType: int, payload: bytes) -> None:
        """
        Send a packet as Conch does; from the key exchange thread, hold it until the answer is complete.
        """
        if self._in_kex_thread():
            self._hold(lambda: super(PacedServerTransport, self).sendPacket(messageType, payload))
            return
        super().sendPacket(messageType, payload)

    def sendDisconnect(self, reason: int, desc: bytes) -> None:
        """
        Disconnect as Conch does; from the key exchange thread (a client's bad key share), once back in the
        reactor thread.
        """
        if self._in_kex_thread():
            self._hold(lambda: super(PacedServerTransport, self).sendDisconnect(reason, desc))
            return
        super().sendDisconnect(reason, desc)

    def log_fields(self) -> dict[str, str]:
        """
        The fields this connection's events carry (a subclass names the peer and the connection).
        """
        return {"peer": "unknown", "conn": "ssh-?", "login": "-"}

    def stop_pacing(self) -> None:
        """
        The connection is gone: forget the next turn, and drop a key exchange answer still being computed.
        """
        self._stopped = True
        if self._next_turn_call is not None:
            self._next_turn_call.cancel()
            self._next_turn_call = None

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Stop pacing, then close as Conch does.
        """
        self.stop_pacing()
        super().connectionLost(reason)

    def _in_kex_thread(self) -> bool:
        return self._kex_thread is not None and self._kex_thread == threading.get_ident()

    def _hold(self, send: Callable[[], None]) -> None:
        assert self._kex_output is not None
        self._kex_output.append(send)

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _next_turn(self) -> None:
        """
        Handle what waits in the buffer with a new budget; read from the socket again once it is all handled.
        """
        self._next_turn_call = None
        if self._stopped:
            return
        self._budget = PACKETS_PER_TURN
        try:
            super().dataReceived(b"")
        except Exception:  # as the reactor does when dataReceived raises: log it, close the connection
            fields = self.log_fields()
            self.log.failure(
                "SSH packet from {peer} [{conn}] not handled; connection closed", Failure(), peer=fields["peer"],
                conn=fields["conn"], login=fields["login"],
            )  # fmt: skip
            self.transport.loseConnection()
            return
        if self._next_turn_call is None and self._kex_output is None and self._paused and not self._stopped:
            self._paused = False
            self.transport.resumeProducing()

    def _kex_answered(self, _: None) -> None:
        output, self._kex_output = self._kex_output or [], None
        if self._stopped:
            return
        for send in output:
            send()
        self._next_turn()

    def _kex_failed(self, failure: Failure) -> None:
        self._kex_output = None
        if self._stopped:
            return
        self.log.info(
            "SSH key exchange with {peer} [{conn}] failed: {error}; connection closed",
            error=failure.getErrorMessage() or getattr(failure.type, "__name__", "error"),
            outcome="kex-failed",
            **self.log_fields(),
        )
        self.transport.loseConnection()


__all__ = ["KEX_ANSWERED_IN_THREAD", "PACKETS_PER_TURN", "PacedServerTransport"]
