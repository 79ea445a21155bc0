"""
Deadlines of open finger connections, checked together by one timer.

Each open connection carries its deadline; one L{LoopingCall} checks them all every
L{constants.SWEEP_INTERVAL} seconds (or a quarter of the timeout, if shorter) while any connection is watched.
A connection thus costs a dictionary insertion and removal rather than a timed call of its own (a heap entry
created, cancelled and cleared), and is timed out between C{timeout} and C{timeout} plus that interval after its
deadline started.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from sshfinger.finger import constants


class Timed(Protocol):
    """
    What L{Deadlines} watches: a connection with a C{deadline} attribute and a C{timeoutConnection} method.
    """

    deadline: float

    def timeoutConnection(self) -> None:
        """
        Called once the deadline has passed.
        """


class Deadlines:
    """
    Watches connections' deadlines and calls C{timeoutConnection} on those past theirs.

    @ivar clock: the reactor or a L{task.Clock}.
    @ivar timeout: seconds from L{watch} to the deadline.
    """

    log = Logger(namespace="sshfinger.finger")

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self._watched: dict[Timed, None] = {}  # in the order they were first watched
        self._sweeper = LoopingCall(self._sweep)
        self._sweeper.clock = clock

    def watch(self, item: Timed) -> None:
        """
        (Re)start C{item}'s deadline: its C{timeoutConnection} is called L{timeout} seconds from now, unless
        L{unwatch} comes first.
        """
        item.deadline = self.clock.seconds() + self.timeout
        if item in self._watched:
            return
        self._watched[item] = None
        if not self._sweeper.running:
            self._sweeper.start(min(constants.SWEEP_INTERVAL, self.timeout / 4), now=False)

    def unwatch(self, item: Timed) -> None:
        """
        Drop C{item}'s deadline (it has closed).
        """
        self._watched.pop(item, None)

    def __len__(self) -> int:
        """
        The number of connections with a running deadline.
        """
        return len(self._watched)

    def oldest(self, but: Timed | None = None) -> Timed | None:
        """
        Return the connection watched longest without a break (other than C{but}), if any.
        """
        for item in self._watched:
            if item is not but:
                return item
        return None

    def expire(self, item: Timed) -> None:
        """
        Time C{item} out now (unwatched first, so that it is timed out once); an error is logged, not raised.
        """
        self._watched.pop(item, None)
        try:
            item.timeoutConnection()
        except Exception:  # one broken connection must not stop the deadlines of all the others
            self.log.failure("finger: cannot time out the connection {item!r}", item=item)

    def _sweep(self) -> None:
        now = self.clock.seconds()
        for item in [item for item in self._watched if item.deadline <= now]:
            self.expire(item)
        if not self._watched and self._sweeper.running:
            self._sweeper.stop()

    def stop(self) -> None:
        """
        Stop checking (the port is closing).
        """
        if self._sweeper.running:
            self._sweeper.stop()


__all__ = ["Deadlines"]
