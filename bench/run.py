"""
One command that measures sshfinger on this machine and prints a table.

  python bench/run.py [--quick] [--venv .venv] [--json out.json]

It starts the tutorial's plain Twisted finger server (the baseline) and the installed C{twistd sshfinger} on
free loopback ports, pins the servers to core 0 and itself (the load generator and the ssh clients) to core 1,
and measures:

  - finger queries/s and p50/p99 at 16 and 128 concurrent clients, sshfinger against the baseline;
  - SSH public-key login + exec latency (real OpenSSH client), and logins/s with 8 parallel clients;
  - finger p99 idle and while 10 password logins (bcrypt cost 12) run at once.

Every loop is bounded in count and time; every process it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finger_load import percentile, run_load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"
SSH_COMMON = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


def free_port() -> int:
    """
    A loopback port that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """
    Wait until C{port} accepts connections.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early ({process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def pin(pid: int, core: int) -> None:
    """
    Pin a process to one core (where the machine has it).
    """
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(pid, {core})


class Servers:
    """
    The baseline and sshfinger processes, stopped on exit.
    """

    def __init__(self, venv: Path, directory: Path) -> None:
        """
        Prepare the store, the passwd file and a client key in C{directory}.
        """
        self.venv, self.directory = venv, directory
        self.processes: list[subprocess.Popen[bytes]] = []
        tool = str(venv / "bin" / "sshfinger")
        self.store = directory / "bench.db"
        subprocess.run([tool, "init", "--store", str(self.store)], check=True, capture_output=True)
        subprocess.run(
            [tool, "passwd", "admin", "--file", str(directory / "passwd"), "--password-stdin"],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        self.key = directory / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        subprocess.run([tool, "key", "add", "admin", f"{self.key}.pub", "--store", str(self.store)], check=True,
                       capture_output=True)  # fmt: skip

    def start(self, args: list[str], port: int) -> subprocess.Popen[bytes]:
        """
        Start one server pinned to core 0 and wait for C{port}.
        """
        log = open(self.directory / f"server-{port}.log", "wb")
        process = subprocess.Popen(args, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        pin(process.pid, 0)
        wait_port(port, process)
        return process

    def start_baseline(self) -> int:
        """
        The tutorial server; return its port.
        """
        port = free_port()
        self.start([str(self.venv / "bin" / "python"), str(REPO / "bench" / "baseline_finger.py"), str(port)], port)
        return port

    def start_sshfinger(self) -> tuple[int, int]:
        """
        sshfinger with finger and SSH; return both ports.
        """
        finger, ssh = free_port(), free_port()
        self.start(
            [str(self.venv / "bin" / "twistd"), "--nodaemon", "--pidfile=", "sshfinger",
             "--finger", f"tcp:{finger}:interface=127.0.0.1", "--ssh", f"tcp:{ssh}:interface=127.0.0.1",
             "--store", str(self.store), "--keys", str(self.directory / "keys"),
             "--auth", f"file:{self.directory / 'passwd'}", "--admin", "admin",
             # All load comes from 127.0.0.1: lift the per-address limit (default 20) above the concurrency.
             "--max-per-peer", "1000"],
            finger,
        )  # fmt: skip
        wait_port(ssh, self.processes[-1])
        return finger, ssh

    def stop(self) -> None:
        """
        Stop every server.
        """
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def ssh_key_login(port: int, key: Path) -> float:
    """
    One public-key login + exec with the real OpenSSH client; return its wall time.
    """
    started = time.perf_counter()
    subprocess.run(
        ["ssh", *SSH_COMMON, "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "admin@127.0.0.1", "whoami"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return time.perf_counter() - started


def ssh_password_login(port: int) -> float:
    """
    One password login + exec (bcrypt on the server) through sshpass; return its wall time.
    """
    started = time.perf_counter()
    subprocess.run(
        ["sshpass", "-p", PASSWORD, "ssh", *SSH_COMMON, "-p", str(port), "-o", "PubkeyAuthentication=no",
         "admin@127.0.0.1", "whoami"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return time.perf_counter() - started


def measure(venv: Path, quick: bool) -> list[tuple[str, str, str]]:
    """
    Run every measurement; return table rows (what, value, note).
    """
    rows: list[tuple[str, str, str]] = []
    total = 1000 if quick else 4000
    pin(0, 1)
    with tempfile.TemporaryDirectory(prefix="sshfinger-bench-") as temp:
        servers = Servers(venv, Path(temp))
        try:
            baseline = servers.start_baseline()
            finger, ssh = servers.start_sshfinger()
            for port in (baseline, finger):
                run_load("127.0.0.1", port, 16, 300)  # warm up
            for concurrency in (16, 128):
                base = run_load("127.0.0.1", baseline, concurrency, total)
                ours = run_load("127.0.0.1", finger, concurrency, total)
                ratio = ours["qps"] / base["qps"] if base["qps"] else float("nan")
                for name, result in (("baseline", base), ("sshfinger", ours)):
                    rows.append(
                        (f"finger c={concurrency} {name}", f"{result['qps']:.0f} q/s",
                         f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, errors {result['errors']}")
                    )  # fmt: skip
                rows.append((f"finger c={concurrency} ratio", f"{ratio:.2f}x", "sshfinger / baseline q/s"))

            runs = 8 if quick else 20
            times = sorted(ssh_key_login(ssh, servers.key) for _ in range(runs))
            rows.append(("ssh key login+exec", f"{statistics.median(times) * 1000:.0f} ms",
                         f"median of {runs}; p90 {percentile(times, 0.9) * 1000:.0f} ms"))  # fmt: skip
            logins = 16 if quick else 40
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: ssh_key_login(ssh, servers.key), range(logins)))
            rate = logins / (time.perf_counter() - started)
            rows.append(("ssh key logins/s, 8 parallel", f"{rate:.1f}/s", f"{logins} logins"))

            idle = run_load("127.0.0.1", finger, 8, 1000 if quick else 2000)
            busy_results: list[float] = []
            login_times: list[float] = []
            threads = [threading.Thread(target=lambda: login_times.append(ssh_password_login(ssh))) for _ in range(10)]
            for thread in threads:
                thread.start()
            busy = run_load("127.0.0.1", finger, 8, 100_000, seconds=1.5)
            for thread in threads:
                thread.join(60)
            busy_results.append(busy["p99_ms"])
            rows.append(("finger p99 idle (c=8)", f"{idle['p99_ms']:.2f} ms", f"{idle['qps']:.0f} q/s"))
            rows.append(
                ("finger p99 during 10 bcrypt logins", f"{busy['p99_ms']:.2f} ms",
                 f"{busy['queries']:.0f} queries; ratio {busy['p99_ms'] / idle['p99_ms']:.2f}x idle; "
                 f"logins took {max(login_times or [0]):.2f} s")
            )  # fmt: skip
        finally:
            servers.stop()
    return rows


def main() -> None:
    """
    Parse arguments, measure, print the table.
    """
    parser = argparse.ArgumentParser(description="Measure sshfinger against the tutorial finger server.")
    parser.add_argument("--venv", type=Path, default=REPO / ".venv", help="venv with sshfinger installed")
    parser.add_argument("--quick", action="store_true", help="fewer queries and logins (~20 s)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    for tool in ("ssh", "ssh-keygen", "sshpass"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install openssh-client sshpass)")
    rows = measure(args.venv.resolve(), args.quick)
    width = max(len(what) for what, _, _ in rows)
    print(f"sshfinger bench on {os.cpu_count()} cores (servers on core 0, clients on core 1)")
    for what, value, note in rows:
        print(f"  {what:<{width}}  {value:>12}  {note}")
    if args.json:
        args.json.write_text(json.dumps([dict(zip(("what", "value", "note"), row)) for row in rows], indent=2))


if __name__ == "__main__":
    main()
