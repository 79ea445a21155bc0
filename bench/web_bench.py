"""
The web face's bench: one command, one table.

1. Web q/s of C{/api/users/alice} and of a WebFinger query on the installed C{twistd sshfinger --web}, against a
   minimal twisted.web resource (L{web_baseline}) in the same run, rounds interleaved; target: at least 0.8 x
   the faster of the baseline's two forms (twisted.web's default Site, and plain HTTP/1.1 channels as the web
   face uses).  Each target's best round counts (the machine is shared); the medians are printed too.
2. Live events: the time from an edit sent over a real SSH session (the admin's C{status} command) to the last
   of 1 000 C{/events} subscribers receiving it (p50, p99 over the edits), next to the same with one subscriber.

    python3 bench/web_bench.py [--venv .venv] [--quick] [--json FILE]

Servers run pinned to core 0, the load generator and clients to core 1 (as C{run.py}); the web face runs with
C{--web-rate 0}, since all the load comes from loopback addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CLIENT_CORE, HOST, KEY_ONLY, SSH_COMMON, can_pin, cpu_delta, free_port, percentile, process_cpu
from servers import BENCH, Servers
from web_load import Crowd, http_load

HOSTNAME = "bench.example"
TARGET_RATIO = 0.8


def start_servers(servers: Servers) -> dict[str, Any]:
    """
    Start the baseline and sshfinger (finger, SSH, web); return their ports and process ids.
    """
    python, script = str(servers.venv / "bin" / "python"), str(BENCH / "web_baseline.py")
    base, base_h1 = free_port(), free_port()
    base_pid = servers.start("web-baseline", [python, script, str(base)], [base])
    base_h1_pid = servers.start("web-baseline-h1", [python, script, str(base_h1), "h1"], [base_h1])
    finger, ssh, web = free_port(), free_port(), free_port()
    args = [str(servers.venv / "bin" / "twistd"), "-n", "--pidfile=", "sshfinger",
            "--finger", f"tcp:{finger}:interface={HOST}", "--store", str(servers.store),
            "--ssh", f"tcp:{ssh}:interface={HOST}", "--keys", str(servers.keys_dir), "--auth", f"file:{servers.passwd}",
            "--web", f"tcp:{web}:interface={HOST}", "--web-rate", "0", "--hostname", HOSTNAME]  # fmt: skip
    pid = servers.start("sshfinger-web", args, [finger, ssh, web])
    return {"baseline": (base, base_pid), "baseline-h1": (base_h1, base_h1_pid), "sshfinger": (web, pid), "ssh": ssh}


def measure_http(ports: dict[str, Any], rounds: int, seconds: float, concurrency: int) -> dict[str, Any]:
    """
    Interleaved rounds of the three targets; each target's best round (least disturbed by the other tenants of
    the machine) and the median.
    """
    targets = {
        "baseline": (ports["baseline"], "/api/users/alice"),
        "baseline-h1": (ports["baseline-h1"], "/api/users/alice"),
        "api": (ports["sshfinger"], "/api/users/alice"),
        "webfinger": (ports["sshfinger"], f"/.well-known/webfinger?resource=acct:alice@{HOSTNAME}"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for (port, _pid), path in targets.values():  # warm up (caches, first imports)
        http_load(port, path, concurrency, 0.5, HOSTNAME)
    for _ in range(rounds):
        for name, ((port, pid), path) in targets.items():
            before = process_cpu(pid)
            result = http_load(port, path, concurrency, seconds, HOSTNAME)
            cpu = cpu_delta(before, process_cpu(pid))
            result["server_cpu_per_s"] = cpu / seconds if cpu is not None else None
            result["cpu_us_per_request"] = cpu / result["requests"] * 1e6 if cpu and result["requests"] else None
            runs[name].append(result)
    summary = {}
    for name, results in runs.items():
        best = max(results, key=lambda r: r["qps"])
        summary[name] = {
            "best_qps": best["qps"], "median_qps": statistics.median(r["qps"] for r in results),
            "p99_ms": best["p99_ms"], "errors": sum(r["errors"] for r in results),
            "server_cpu": best["server_cpu_per_s"], "runs": results,
            "cpu_us": statistics.median(r["cpu_us_per_request"] for r in results if r["cpu_us_per_request"]),
        }  # fmt: skip
    return summary


async def _fanout(web: int, ssh: int, key: Path, subscribers: int, edits: int) -> dict[str, Any]:
    crowd = Crowd(subscribers, per_address=8)
    await crowd.open(web)
    session = subprocess.Popen(
        ["ssh", *SSH_COMMON, *KEY_ONLY, "-p", str(ssh), "-i", str(key), "-T", f"admin@{HOST}"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert session.stdin is not None
    firsts, lasts, missing = [], [], 0
    try:
        for n in range(-1, edits):  # the first edit (n = -1) waits for the login and is not counted
            marker = f"web-{subscribers}-{n}-{time.monotonic_ns()}"
            crowd.expect(marker.encode())
            sent = time.perf_counter()
            session.stdin.write(f"status {marker}\n".encode())
            session.stdin.flush()
            assert crowd.all_seen is not None
            try:
                await asyncio.wait_for(crowd.all_seen.wait(), timeout=30 if n < 0 else 5)
            except TimeoutError:
                missing += subscribers - len(crowd.times)
            if n >= 0 and crowd.times:
                firsts.append(min(crowd.times) - sent)
                lasts.append(max(crowd.times) - sent)
            await asyncio.sleep(0.05)
        session.stdin.write(b"quit\n")
        session.stdin.flush()
    finally:
        session.stdin.close()
        try:
            session.wait(timeout=10)
        except subprocess.TimeoutExpired:
            session.kill()
        crowd.close()
    firsts.sort()
    lasts.sort()
    return {
        "subscribers": subscribers, "edits": len(lasts), "missing": missing, "dropped": crowd.lost,
        "first_p50_ms": percentile(firsts, 0.5) * 1000, "last_p50_ms": percentile(lasts, 0.5) * 1000,
        "last_p99_ms": percentile(lasts, 0.99) * 1000,
    }  # fmt: skip


def measure_fanout(servers: Servers, ports: dict[str, Any], subscribers: int, edits: int) -> dict[str, Any]:
    """
    Edits over one SSH session, each timed to the first and the last subscriber seeing it.
    """
    return asyncio.run(_fanout(ports["sshfinger"][0], ports["ssh"], servers.key, subscribers, edits))


def print_table(http: dict[str, Any], fanout: list[dict[str, Any]], pinned: bool) -> None:
    """
    Print the results side by side with their targets.
    """
    base = max(http["baseline"]["best_qps"], http["baseline-h1"]["best_qps"])
    print(f"\nweb face vs a minimal twisted.web resource ({'pinned: server core 0, client core 1' if pinned else 'NOT pinned'})")
    base_cpu = min(http["baseline"]["cpu_us"], http["baseline-h1"]["cpu_us"])
    print(f"{'target':<34} {'best q/s':>9} {'median':>9} {'p99 ms':>7} {'srv CPU':>7} {'µs/req':>7} {'ratio':>6} "
          f"{'by CPU':>6}  goal (q/s ratio)")
    for name, label in (("baseline", "minimal resource, default Site"), ("baseline-h1", "minimal resource, HTTP/1.1"),
                        ("api", "/api/users/alice"), ("webfinger", "WebFinger acct:alice@...")):  # fmt: skip
        row = http[name]
        ratio = row["best_qps"] / base if base else 0.0
        goal = "" if name.startswith("baseline") else f">= {TARGET_RATIO} {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
        cpu = f"{row['server_cpu'] * 100:.0f} %" if row["server_cpu"] is not None else "?"
        errors = f"  ({row['errors']} non-200)" if row["errors"] else ""
        by_cpu = base_cpu / row["cpu_us"] if row["cpu_us"] else 0.0
        print(f"{label:<34} {row['best_qps']:>9.0f} {row['median_qps']:>9.0f} {row['p99_ms']:>7.2f} {cpu:>7} "
              f"{row['cpu_us']:>7.0f} {ratio:>6.2f} {by_cpu:>6.2f}  {goal}{errors}")  # fmt: skip
    print("(ratio: best q/s over the faster baseline's; by CPU: the leaner baseline's server CPU per request over "
          "this one's, the capacity ratio when the server core is the bottleneck)")
    print("\nSSH edit (status over an open ssh -T session) -> SSE subscribers receiving it")
    print(f"{'subscribers':>11} {'edits':>5} {'first p50 ms':>12} {'last p50 ms':>11} {'last p99 ms':>11} {'missed':>6}")
    for row in fanout:
        print(f"{row['subscribers']:>11} {row['edits']:>5} {row['first_p50_ms']:>12.1f} {row['last_p50_ms']:>11.1f} "
              f"{row['last_p99_ms']:>11.1f} {row['missing']:>6}")  # fmt: skip


def main() -> int:
    """
    Parse arguments, measure, print.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=BENCH.parent / ".venv")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds, fewer edits")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--subscribers", type=int, default=1000)
    args = parser.parse_args()
    pinned = can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})
    rounds, seconds, edits = (2, 2.0, 10) if args.quick else (4, 4.0, 40)
    with tempfile.TemporaryDirectory(prefix="sshfinger-webbench-") as temp:
        servers = Servers(args.venv.absolute(), Path(temp), pinned)
        try:
            ports = start_servers(servers)
            http = measure_http(ports, rounds, seconds, concurrency=16)
            fanout = [measure_fanout(servers, ports, n, edits) for n in (1, args.subscribers)]
        finally:
            servers.stop()
    print_table(http, fanout, pinned)
    if args.json:
        args.json.write_text(json.dumps({"http": http, "fanout": fanout, "pinned": pinned}, indent=2))
    base = max(http["baseline"]["best_qps"], http["baseline-h1"]["best_qps"])
    met = min(http["api"]["best_qps"], http["webfinger"]["best_qps"]) >= TARGET_RATIO * base
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
