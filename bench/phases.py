"""
Where a finger query's time goes, phase by phase, in the tutorial server and in sshfinger, measured inside both
processes under the same load (L{phase_probe}): a diagnostic for section 1 of L{run}, not part of it.

  python bench/phases.py [--venv DIR] [--rounds 5] [--queries 20000] [--concurrency 16]

Both servers run pinned to core 0 as in L{run} (sshfinger with C{--access-log}, as the systemd unit runs it),
this process and the load generator on core 1.  Each round sends C{--queries} C{alice} queries to one server,
then the other; the table gives each phase's time per query, the median over the rounds.  The phases nest as
the table indents them; the four top-level ones are all of a connection's events, so their sum (less any event
run inside another: sshfinger reads a query that came with its connection in C{connectionMade}) is the
reactor's time per query apart from its own loop.  Standard library only, plus the venv's tools.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import CLIENT_CORE, can_pin, finger_run  # noqa: E402
from servers import Servers  # noqa: E402

#: (phase, label) in table order; labels that start with spaces are nested in the phase above.
ROWS = [
    ("accept", "accept (Port.doRead)"),
    ("connectionMade", "  of which connectionMade (the protocol)"),
    ("read", "read (Connection.doRead)"),
    ("dataReceived", "  of which dataReceived (the protocol: answer, log, write, close)"),
    ("write", "write (doWrite)"),
    ("close", "close (connectionLost)"),
    ("nested", "events run inside another (a read in connectionMade)"),
]
#: The phases that do not nest in one another.
TOP = ("accept", "read", "write", "close")


def collect(pid: int, out: Path) -> dict[str, float]:
    """
    Have the probed server C{pid} write its totals to C{out} (and reset them); return microseconds per
    connection by phase.
    """
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while True:
        try:
            data = json.loads(out.read_text())
            break
        except (OSError, ValueError):  # not written yet, or half written
            if time.monotonic() > deadline:
                raise SystemExit(f"process {pid} wrote no phase totals to {out}") from None
            time.sleep(0.05)
    connections = data["calls"].get("connectionMade", 0)
    if not connections:
        raise SystemExit(f"process {pid} saw no connections")
    return {phase: ns / connections / 1000 for phase, ns in data["nanoseconds"].items()}


def main() -> int:
    """
    Parse arguments, measure, print the table.
    """
    parser = argparse.ArgumentParser(description="Finger time per query by phase: tutorial server vs sshfinger.")
    parser.add_argument("--venv", type=Path, default=BENCH.parent / ".venv", help="venv with sshfinger installed")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server (default 5)")
    parser.add_argument("--queries", type=int, default=20000, help="queries per round (default 20000)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections per wave (default 16)")
    args = parser.parse_args()
    venv = args.venv.absolute()
    pinned = can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})
    rounds: dict[str, list[dict[str, float]]] = {"tutorial": [], "sshfinger": []}
    with tempfile.TemporaryDirectory(prefix="sshfinger-phases-") as temp:
        directory = Path(temp)
        servers = Servers(venv, directory, pinned)
        probe = (str(venv / "bin" / "python"), str(BENCH / "phase_probe.py"))
        outs = {name: directory / f"{name}-phases.json" for name in rounds}
        try:
            ports = {
                "tutorial": servers.start_baseline("tutorial", backlog=1024, launcher=(*probe, str(outs["tutorial"]))),
                "sshfinger": servers.start_sshfinger(
                    "sshfinger", ssh=False, as_unit=True, launcher=(*probe, str(outs["sshfinger"]))
                )[0],
            }
            for name, port in ports.items():  # warm up; these totals are dropped
                finger_run(port, args.concurrency, 2000, 30)
                collect(servers.pid(name), outs[name])
            for _ in range(args.rounds):
                for name, port in ports.items():
                    result = finger_run(port, args.concurrency, args.queries, 120)
                    if result["errors"]:
                        raise SystemExit(f"{name}: {result['errors']} failed queries: {result['error_kinds']}")
                    rounds[name].append(collect(servers.pid(name), outs[name]))
        finally:
            servers.stop()
    medians = {
        name: {phase: statistics.median(r.get(phase, 0.0) for r in runs) for phase, _ in ROWS}
        for name, runs in rounds.items()
    }
    for phases in medians.values():
        phases["total"] = sum(phases[phase] for phase in TOP) - phases["nested"]
    print(f"finger time per query by phase, µs (median of {args.rounds} rounds of {args.queries} queries, "
          f"{args.concurrency} connections per wave{'' if pinned else ', NOT pinned'})")  # fmt: skip
    width = max(len(label) for _, label in ROWS)
    print(f"{'phase':<{width}}  {'tutorial':>9}  {'sshfinger':>9}  {'difference':>10}")
    for phase, label in ROWS + [("total", "all four events, each counted once")]:
        tutorial, ours = medians["tutorial"][phase], medians["sshfinger"][phase]
        print(f"{label:<{width}}  {tutorial:9.1f}  {ours:9.1f}  {ours - tutorial:+10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
