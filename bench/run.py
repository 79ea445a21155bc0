"""
The one command that measures sshfinger on this machine and prints one table, with targets.

  python bench/run.py [--venv DIR] [--quick] [--json FILE] [--logs DIR]
                      [--no-finger] [--no-ssh] [--no-sshd] [--no-stalls] [--no-scale] [--no-live] [--sizes N,N]

It starts, on free loopback ports, the Twisted tutorial's plain finger server (C{baseline_finger.py}), the
installed C{twistd -n --pidfile= sshfinger} (finger only, then with SSH) and a private OpenSSH sshd, pins the
servers to core 0 and itself, the load generator and the clients to core 1, and measures:

  1. finger queries/s, latency and server CPU per query at 16 and 128 concurrent connections, sshfinger
     against the baseline (plus diagnostics: sshfinger's info log off, both with a listen backlog of 1024);
  2. SSH public-key login + exec, one at a time and with 8 clients at once, sshfinger against sshd
     (L{sshd_compare});
  3. no stalls: finger p99 idle, during 10 bcrypt password logins and during a stream of committed edits
     (L{live});
  4. store scale: start-up, memory per account, lookup and listing at 1k/100k/1M accounts (L{scale});
  5. live edits: from an exec C{set} or the offline tool returning to finger showing the change (L{live}).

Every loop is bounded in count and time.  Every process it starts is stopped on the way out (try/finally, and
on SIGTERM/SIGINT), by its own process id or process group.  Standard library only, plus the venv's tools.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import (  # noqa: E402
    CLIENT_CORE,
    SERVER_CORE,
    can_pin,
    cpu_times,
    finger_run,
    pool,
    public,
    steal_percent,
    thread_affinities,
)  # fmt: skip
from live import measure_live, measure_stalls  # noqa: E402
from scale import SIZES, measure_scale  # noqa: E402
from servers import Servers  # noqa: E402
from sshd_compare import measure_ssh  # noqa: E402
from table import Table, Target, finger_row, ratio_row  # noqa: E402

#: sshfinger against the tutorial server: at least as many queries per second; p99 at 128 connections.
RATE_TARGET = Target("rate", ">=", 1.0, "x", "1.0x")
P99_TARGET = Target("p99", "<=", 15, "ms")


def measure_finger(servers: Servers, table: Table, quick: bool, results: dict[str, Any]) -> None:
    """
    Section 1: finger throughput and latency at 16 and 128 connections: the tutorial server against sshfinger
    --no-ssh as the systemd unit runs it (queries in an C{--access-log} file, the rest through the unit's
    C{--logger}) and as a newcomer starts it (no logging option: the queries in twistd's own log), that one with and
    without the accept-time path (C{--no-answer-on-accept}); both tutorial and sshfinger listen with a
    backlog of 1024 (sshfinger's default).  Plus diagnostics: sshfinger with no per-query log at all, the tutorial
    with Twisted's default backlog of 50, and both with a user name never asked before in every query (a query
    sshfinger cannot answer from a kept reply: it is parsed, looked up and rendered).
    Runs against different servers are interleaved round by round, in short rounds, so that a drift of the
    machine's speed (a shared VM's is easily 10 % within a minute) falls on all of them alike; each ratio row
    also gives the median and range of the per-round rate ratios.
    """
    rounds, total = (3, 2048) if quick else (10, 2048)
    ports = {
        "baseline": servers.start_baseline(backlog=1024),
        "sshfinger": servers.start_sshfinger("sshfinger", ssh=False, as_unit=True)[0],
        "sshfinger-mainlog": servers.start_sshfinger("sshfinger-mainlog", ssh=False)[0],
        "sshfinger-noaccept": servers.start_sshfinger(
            "sshfinger-noaccept", ssh=False, extra=("--no-answer-on-accept",)
        )[0],
        "sshfinger-quietlog": servers.start_sshfinger("sshfinger-quietlog", ssh=False, quiet_log=True)[0],
        "baseline-50": servers.start_baseline("baseline-50"),
    }
    pids = {name: servers.pid(name) for name in ports}
    for port in ports.values():
        finger_run(port, 16, 2000, 10)  # warm up (first store read, page cache, interpreter caches)
    # Runs with a user name never asked before in every query (so sshfinger has no reply kept for it), against
    # the servers of the same name without the suffix.
    names_asked = itertools.count()
    new_names = {"query": lambda: b"nobody%d\r\n" % next(names_asked), "expect": b"such user"}
    plan = {
        16: ["baseline", "sshfinger", "sshfinger-mainlog", "sshfinger-noaccept", "sshfinger-quietlog"],
        128: [
            "baseline", "sshfinger", "sshfinger-mainlog", "sshfinger-noaccept", "baseline-50", "baseline-new",
            "sshfinger-new",
        ],
    }
    measured: dict[tuple[int, str], dict[str, Any]] = {}
    for concurrency, names in plan.items():
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:
                server = name.removesuffix("-new")
                extra = new_names if name.endswith("-new") else {}
                runs[name].append(finger_run(ports[server], concurrency, total, 20, pids[server], **extra))
        for name in names:
            measured[concurrency, name] = pool(runs[name])
            results[f"finger_c{concurrency}_{name}"] = public(measured[concurrency, name])
    baselines = {}
    for concurrency in plan:
        table.section(f"1. finger, waves of {concurrency} one-query connections ({rounds} x {total} queries each)")
        base = baselines[concurrency] = finger_row(
            table, f"c={concurrency} baseline (tutorial)", measured[concurrency, "baseline"],
            "baseline_finger.py PORT 1024",
        )  # fmt: skip
        mine = finger_row(
            table, f"c={concurrency} sshfinger --access-log", measured[concurrency, "sshfinger"],
            "--no-ssh, as the systemd unit" + round_p99s(measured[concurrency, "sshfinger"]),
            target=P99_TARGET if concurrency == 128 else None,
        )  # fmt: skip
        ratio_row(table, f"c={concurrency} ratio sshfinger/baseline", mine, base,
                  round_ratios(measured[concurrency, "sshfinger"], measured[concurrency, "baseline"]), RATE_TARGET)
        main = finger_row(table, f"c={concurrency} sshfinger default", measured[concurrency, "sshfinger-mainlog"],
                          "no logging options: queries in twistd's log, an event per reactor turn")  # fmt: skip
        ratio_row(table, f"c={concurrency} ratio default/baseline", main, base,
                  round_ratios(measured[concurrency, "sshfinger-mainlog"], measured[concurrency, "baseline"]),
                  RATE_TARGET)  # fmt: skip
        slow = finger_row(table, f"c={concurrency} sshfinger default, no answer on accept",
                          measured[concurrency, "sshfinger-noaccept"], "--no-answer-on-accept")  # fmt: skip
        ratio_row(table, f"c={concurrency} ratio default-no-accept-path/baseline", slow, base,
                  round_ratios(measured[concurrency, "sshfinger-noaccept"], measured[concurrency, "baseline"]),
                  RATE_TARGET)  # fmt: skip
    table.section("1. finger diagnostics, interleaved with the rows above")
    quiet = finger_row(table, "c=16 sshfinger, no query log at all", measured[16, "sshfinger-quietlog"],
                       "twistd --logger quiet_log.observer")  # fmt: skip
    ratio_row(table, "c=16 ratio no-log/baseline", quiet, baselines[16],
              "ratios (x): an event per query, dropped unwritten")  # fmt: skip
    backlog_50 = measured[128, "baseline-50"]
    finger_row(table, "c=128 baseline, backlog 50", backlog_50, "Twisted's default"
               + (": a wave of 128 overflows it" if backlog_50["overflows"] else ""))  # fmt: skip
    new_base = finger_row(table, "c=128 baseline, a new name each query", measured[128, "baseline-new"],
                          "nobodyN, N counting up: not in its dict")  # fmt: skip
    new_mine = finger_row(table, "c=128 sshfinger, a new name each query", measured[128, "sshfinger-new"],
                          "no reply kept for it: parsed, looked up, rendered, then kept")  # fmt: skip
    ratio_row(table, "c=128 ratio new-name sshfinger/baseline", new_mine, new_base,
              round_ratios(measured[128, "sshfinger-new"], measured[128, "baseline-new"]))  # fmt: skip
    for name in ports:
        servers.stop(name)


def round_ratios(top: dict[str, Any], bottom: dict[str, Any]) -> str:
    """
    Describe the rate ratios C{top / bottom} of the rounds that ran side by side: their median and range.
    """
    ratios = sorted(a / b for a, b in zip(top["round_qps"], bottom["round_qps"]) if b)
    if not ratios:
        return "ratios (x), not ms"
    return f"ratios (x); per round: median {statistics.median(ratios):.2f}, {ratios[0]:.2f}-{ratios[-1]:.2f}"


def round_p99s(result: dict[str, Any]) -> str:
    """
    Describe the p99s of the rounds pooled in C{result}: their median and range (one round during a burst of
    the hypervisor's stealing decides a pooled p99).
    """
    p99s = sorted(result["round_p99_ms"])
    return f"; p99 per round: median {statistics.median(p99s):.1f}, {p99s[0]:.1f}-{p99s[-1]:.1f} ms" if p99s else ""


def measure_all(servers: Servers, table: Table, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """
    The sections the arguments leave in, in order.
    """
    if not args.no_finger:
        measure_finger(servers, table, args.quick, results)
    finger = ssh = None
    if not (args.no_ssh and args.no_live):
        # One SSH-enabled server for sections 2, 3 and 5 (finger only with --no-ssh, for section 5's offline row).
        finger, ssh = servers.start_sshfinger("sshfinger-ssh", ssh=not args.no_ssh, as_unit=True)
    if ssh is not None:
        measure_ssh(servers, table, ssh, args.quick, not args.no_sshd, results)
        if not args.no_stalls:
            measure_stalls(servers, table, finger, ssh, args.quick, results)
    if not args.no_scale:  # the server above waits idle meanwhile
        pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if servers.pinned else None
        measure_scale(table, servers.venv / "bin" / "python", args.sizes, pin, results)
    if finger is not None and not args.no_live:
        measure_live(servers, table, finger, ssh, args.quick, results)
    if finger is not None:  # did the pinning hold for every thread started since (bcrypt, the store's writer)?
        pid = servers.pid("sshfinger-ssh")
        servers.affinities["sshfinger-ssh at the end"] = sorted(sorted(cpus) for cpus in thread_affinities(pid))


def parse_arguments() -> argparse.Namespace:
    """
    The command line.
    """
    parser = argparse.ArgumentParser(description="Measure sshfinger; print one table with targets.")
    parser.add_argument("--venv", type=Path, default=BENCH.parent / ".venv", help="venv with sshfinger installed "
                        "(default: the repo's .venv)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer queries, logins and edits (~1.5 min, noisier)")
    parser.add_argument("--json", type=Path, help="also write the rows and results as JSON here")
    parser.add_argument("--logs", type=Path, help="copy the servers' logs into this directory")
    parser.add_argument("--no-finger", action="store_true", help="skip section 1 (finger against the baseline)")
    parser.add_argument("--no-ssh", action="store_true", help="no SSH at all: skip sections 2 and 3 and the "
                        "exec row of section 5")  # fmt: skip
    parser.add_argument("--no-sshd", action="store_true", help="section 2 without OpenSSH's sshd")
    parser.add_argument("--no-stalls", action="store_true", help="skip section 3 (finger while busy)")
    parser.add_argument("--no-scale", action="store_true", help="skip section 4 (store scale)")
    parser.add_argument("--no-live", action="store_true", help="skip section 5 (edit to finger delays)")
    parser.add_argument("--sizes", type=lambda text: tuple(int(n) for n in text.split(",")), default=SIZES,
                        help="section 4's store sizes, smallest first (default 1000,100000,1000000)")  # fmt: skip
    return parser.parse_args()


def print_footer(table: Table, servers: Servers, results: dict[str, Any], problems: dict[str, dict[str, int]]) -> None:
    """
    Below the table: the targets met, CPU steal, the servers' CPU sets, trouble in the servers' logs.
    """
    verdicts = [row["met"] for row in table.targets()]
    missed = [row["measurement"] for row in table.targets() if row["met"] == "NO"]
    print(f"targets: {verdicts.count('yes')} of {len(verdicts)} met" + (f"; not met: {'; '.join(missed)}" if missed
          else "") + (f"; {verdicts.count('n/a')} not measured" if "n/a" in verdicts else ""))  # fmt: skip
    print("ovfl = connections the kernel dropped because the listen queue was full (each costs a 1 s SYN retry)")
    if results["steal_percent"]:
        print("CPU time stolen by the hypervisor during the run: "
              + ", ".join(f"{name} {share:.1f}%" for name, share in results["steal_percent"].items()))  # fmt: skip
    print("server CPU sets (all threads) once listening: "
          + ", ".join(f"{name} {cpus}" for name, cpus in servers.affinities.items()))  # fmt: skip
    for name, counts in problems.items():
        for message, count in sorted(counts.items(), key=lambda item: -item[1])[:4]:
            print(f"{name} log: {count} x {message[:150]}")


def main() -> int:
    """
    Parse arguments, measure, print the table.
    """
    args = parse_arguments()
    venv = args.venv.absolute()
    needed = [venv / "bin" / "twistd", venv / "bin" / "sshfinger", venv / "bin" / "python"]
    missing = [str(p) for p in needed if not p.exists()]
    tools = ["ssh-keygen"] + ([] if args.no_ssh else ["ssh", "sshpass"])
    missing += [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit("missing: " + ", ".join(missing) + " (pip install the package into --venv; "
                         "apt-get install openssh-client sshpass)")  # fmt: skip

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    table = Table()
    results: dict[str, Any] = {}
    started = time.monotonic()
    cpu_before = cpu_times()
    pinned = can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})
    with tempfile.TemporaryDirectory(prefix="sshfinger-bench-") as temp:
        servers = Servers(venv, Path(temp), pinned)
        problems: dict[str, dict[str, int]] = {}
        try:
            measure_all(servers, table, args, results)
        except KeyboardInterrupt:
            print("interrupted; stopping the servers", file=sys.stderr)
            return 130
        finally:
            servers.stop()
            for name in servers.logs:
                problems[name] = servers.log_problems(name)
            if args.logs:
                servers.keep_logs(args.logs)
    results["steal_percent"] = steal_percent(cpu_before, cpu_times())
    results["log_problems"] = problems
    print()
    print(f"sshfinger bench: {os.cpu_count()} cores, "
          + (f"servers pinned to core {SERVER_CORE}, load generator and clients to core {CLIENT_CORE}"
             if pinned else "NOT pinned (cores 0 and 1 not both available)")
          + f"; {time.monotonic() - started:.0f} s{' (--quick)' if args.quick else ''}")  # fmt: skip
    print(table.render())
    print_footer(table, servers, results, problems)
    if args.json:
        data = {"rows": table.rows, "results": results, "pinned": pinned, "quick": args.quick}
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
