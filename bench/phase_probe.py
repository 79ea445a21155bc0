"""
Run a Twisted server with its finger connection path timed by phase, in the real process under real load.

    python phase_probe.py OUT SCRIPT [ARGS...]

runs the Python script SCRIPT (C{baseline_finger.py}, or the venv's C{twistd} console script) as C{__main__}
after wrapping, at class level, the methods every TCP connection goes through: L{tcp.Port.doRead} (accept,
including the protocol's C{connectionMade}), L{tcp.Connection.doRead} (read, including the protocol's
C{dataReceived}, which writes the answer and asks to close), L{abstract.FileDescriptor.doWrite} (write) and
L{tcp.Connection.connectionLost} (close), and within those C{makeConnection} and C{_dataReceived}, the protocol's
own share.  Each wrapper adds two C{perf_counter_ns} calls (~0.1 µs) to its phase, the same for every server.
C{_dataReceived} is private to Twisted (the one place a TCP transport hands data to its protocol, whatever
the protocol's class); a measurement may wrap it, sshfinger itself does not use it.  If a Twisted release
renames it, the probed server fails to start and L{phases} says so.

On SIGUSR2 the totals (nanoseconds and calls per phase) are written to OUT as JSON and reset, so that a caller
can time several runs of load against one process.  Used by L{phases}.
"""

from __future__ import annotations

import json
import runpy
import signal
import sys
from collections import Counter
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from twisted.internet import abstract, protocol, tcp

#: Phase name -> (class, method) timed under it.
PHASES: dict[str, tuple[type, str]] = {
    "accept": (tcp.Port, "doRead"),
    "read": (tcp.Connection, "doRead"),
    "write": (abstract.FileDescriptor, "doWrite"),
    "close": (tcp.Connection, "connectionLost"),
    "connectionMade": (protocol.BaseProtocol, "makeConnection"),
    "dataReceived": (tcp.Connection, "_dataReceived"),
}

#: The events of a connection; one that runs inside another (a read done while accepting) also counts as
#: C{"nested"}, so that a sum of the four need not count it twice.
EVENTS = ("accept", "read", "write", "close")

nanoseconds: Counter[str] = Counter()
calls: Counter[str] = Counter()
#: How many events are running (more than one when an event's work is done inside another's).
running = [0]


def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """
    Wrap C{method} so that its time and calls are added to phase C{name}.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = perf_counter_ns()
        try:
            return method(*args, **kwargs)
        finally:
            nanoseconds[name] += perf_counter_ns() - started
            calls[name] += 1

    def event_wrapper(*args: Any, **kwargs: Any) -> Any:
        nested = running[0] > 0
        running[0] += 1
        started = perf_counter_ns()
        try:
            return method(*args, **kwargs)
        finally:
            elapsed = perf_counter_ns() - started
            running[0] -= 1
            nanoseconds[name] += elapsed
            calls[name] += 1
            if nested:
                nanoseconds["nested"] += elapsed

    return event_wrapper if name in EVENTS else wrapper


def dump(out: str) -> None:
    """
    Write the totals to C{out} and start counting afresh.
    """
    with open(out, "w") as f:
        json.dump({"nanoseconds": dict(nanoseconds), "calls": dict(calls)}, f)
    nanoseconds.clear()
    calls.clear()


def main(argv: list[str]) -> None:
    """
    Install the wrappers and the SIGUSR2 handler, then run the script.
    """
    out, script, *args = argv
    for name, (cls, method) in PHASES.items():
        setattr(cls, method, timed(name, getattr(cls, method)))
    signal.signal(signal.SIGUSR2, lambda signum, frame: dump(out))
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
