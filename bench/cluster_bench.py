"""
Measure sshfinger nodes on PostgreSQL, side by side with SQLite in the same run, and print the figures:

1. propagation: an edit acknowledged over SSH on node A -> visible to raw finger on node B (p50, p99, max over
   N edits; target p99 < 50 ms);
2. edits/s through one node (one SSH exec session running N ``set`` lines), PostgreSQL vs SQLite;
3. finger q/s on a PostgreSQL-backed node vs a SQLite-backed one (target >= 0.95x: reads are memory);
4. start-up of a node against 1 000 000 accounts (target < 10 s) and memory per account, PostgreSQL vs SQLite.

Starts its own throwaway PostgreSQL (fsync on, as in production; see tests/pgcluster.py) and its own nodes on
free loopback ports.  Run with the venv's Python (psycopg is needed):

    .venv/bin/python bench/cluster_bench.py [--edits 200] [--accounts 1000000] [--quick]

The nodes run on core 0 and, for the finger rates, this script on core 1 (as bench/run.py pins them); PostgreSQL
is not pinned.  On a machine shared with other work the single runs still swing widely: part 3 prints the median
of five alternating pairs and their range.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import CLIENT_CORE, SERVER_CORE, can_pin, free_port  # noqa: E402
from finger_load import percentile, run_load  # noqa: E402

from tests.pgcluster import PostgresCluster  # noqa: E402

BIN = Path(sys.executable).parent
#: Nodes on core 0, this script (clients, load) on core 1, as bench/run.py does; PostgreSQL is not pinned.
PINNED = can_pin()
HOST = "127.0.0.1"
PASSWORD = "bench-Password-1"
SSH = [
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
]  # fmt: skip


def tool(*args: str, stdin: str | None = None) -> None:
    """
    Run the installed C{sshfinger} tool; fail loudly.
    """
    result = subprocess.run([str(BIN / "sshfinger"), *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"sshfinger {' '.join(args)}: {result.stderr}")


class Node:
    """
    One C{twistd sshfinger} process on free ports.
    """

    def __init__(self, directory: str, store: str, passwd: str, ssh: bool = True) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.finger_port = free_port()
        self.ssh_port = free_port() if ssh else None
        args = ["--finger", f"tcp:{self.finger_port}:interface={HOST}", "--store", store, "--max-per-peer", "1000"]
        if ssh:
            args += ["--ssh", f"tcp:{self.ssh_port}:interface={HOST}", "--keys", os.path.join(directory, "keys"),
                     "--auth", f"file:{passwd}", "--admin", "admin"]  # fmt: skip
        else:
            args.append("--no-ssh")
        self.log = open(os.path.join(directory, "twistd.log"), "wb")
        self.started = time.monotonic()
        pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if PINNED else None
        self.process = subprocess.Popen(
            [str(BIN / "twistd"), "--nodaemon", "--pidfile=", "sshfinger", *args],
            cwd=directory, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=pin,
        )  # fmt: skip

    def wait(self, login: str = "alice", timeout: float = 120.0) -> float:
        """
        Wait until finger answers for C{login}; return the seconds since the process started.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"node exited: {open(self.log.name).read()[-2000:]}")
            if login.encode() in self.finger(login) and b"Login:" in self.finger(login):
                break
            time.sleep(0.02)
        else:
            raise SystemExit("node did not answer in time")
        elapsed = time.monotonic() - self.started
        if self.ssh_port is not None:
            while True:
                try:
                    __import__("socket").create_connection((HOST, self.ssh_port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.02)
        return elapsed

    def finger(self, login: str) -> bytes:
        """
        One raw finger query.
        """
        import socket

        try:
            with socket.create_connection((HOST, self.finger_port), timeout=5) as s:
                s.sendall(f"{login}\r\n".encode())
                chunks = []
                while data := s.recv(65536):
                    chunks.append(data)
                return b"".join(chunks)
        except OSError:
            return b""

    def ssh(self, *command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """
        Run an exec command as admin over the real OpenSSH client.
        """
        return subprocess.run(
            ["sshpass", "-p", PASSWORD, "ssh", "-p", str(self.ssh_port), *SSH, f"admin@{HOST}", *command],
            input=stdin, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    def rss_kib(self) -> int:
        """
        The process's resident memory in KiB.
        """
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        """
        Stop the process.
        """
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def site(cluster: PostgresCluster, work: str) -> tuple[str, str, str]:
    """
    A PostgreSQL database and a SQLite file with the demo accounts, and a passwd file for admin.
    """
    url = cluster.new_database()
    sqlite_path = os.path.join(work, "s.db")
    passwd = os.path.join(work, "passwd")
    for store in (url, sqlite_path):
        tool("init", "--store", store)
    tool("passwd", "admin", "--file", passwd, "--rounds", "4", "--password-stdin", stdin=PASSWORD + "\n")
    return url, sqlite_path, passwd


def propagation(a: Node, b: Node, edits: int) -> dict[str, float]:
    """
    Edit alice's status on A over SSH; after ssh returns 0, time until B's finger shows it (polled every 0.5 ms).
    As a baseline for the machine's own scheduling noise, also time one finger round trip to B after each edit
    has shown.
    """
    delays = []
    trips = []
    for n in range(edits):
        value = f"p{n}"
        if a.ssh("set", "alice", "status", value).returncode != 0:
            raise SystemExit("an edit failed")
        acked = time.perf_counter()
        expected = f"Status: {value}\r".encode()
        while expected not in b.finger("alice"):
            if time.perf_counter() - acked > 10:
                raise SystemExit(f"edit {value} not visible on B after 10 s")
            time.sleep(0.0005)
        delays.append(time.perf_counter() - acked)
        started = time.perf_counter()
        b.finger("admin")
        trips.append(time.perf_counter() - started)
    delays.sort()
    trips.sort()
    return {
        "p50": percentile(delays, 0.5) * 1000, "p99": percentile(delays, 0.99) * 1000, "max": delays[-1] * 1000,
        "trip_p50": percentile(trips, 0.5) * 1000, "trip_p99": percentile(trips, 0.99) * 1000,
    }  # fmt: skip


def edit_rate(node: Node, edits: int) -> float:
    """
    Edits per second through one node: one SSH session running C{edits} lines of C{set}.
    """
    script = "".join(f"set alice status e{n}\n" for n in range(edits))
    started = time.perf_counter()
    result = node.ssh(stdin=script)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"edit stream failed: {result.stderr[-500:]}")
    return edits / elapsed


def finger_rate(node: Node, total: int, concurrency: int = 16) -> float:
    """
    Finger queries per second (one wave-driven load run).
    """
    result = run_load(HOST, node.finger_port, concurrency, total, b"alice\r\n", expect=b"Login:")
    if result["errors"]:
        print(f"  ({result['errors']} errors: {result['error_kinds']})")
    return float(result["qps"])


def fill_postgresql(url: str, count: int) -> None:
    """
    Add C{count} plain accounts to the database with COPY.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        with connection.cursor() as cursor:
            with cursor.copy("COPY accounts (login, real_name, status, updated_at, updated_by) FROM STDIN") as copy:
                for n in range(count):
                    copy.write_row((f"u{n:07d}", f"User {n}", "hello", 1_700_000_000.0, "bench"))
        connection.execute("VACUUM ANALYZE accounts")


def fill_sqlite(path: str, count: int) -> None:
    """
    Add C{count} plain accounts to the SQLite file.
    """
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO accounts (login, real_name, status, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)",
            ((f"u{n:07d}", f"User {n}", "hello", 1_700_000_000.0, "bench") for n in range(count)),
        )
    connection.close()


def startup(store: str, work: str, name: str, count: int) -> tuple[float, float]:
    """
    Start a finger-only node on a store of C{count} accounts; return (seconds until it answers, KiB per account
    over an empty node's memory).
    """
    node = Node(os.path.join(work, name), store, "", ssh=False)
    try:
        seconds = node.wait(f"u{count - 1:07d}")
        rss = node.rss_kib()
    finally:
        node.stop()
    return seconds, rss


def main(argv: list[str] | None = None) -> int:
    """
    Run the four measurements and print them.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--edits", type=int, default=200, help="edits for propagation (default 200)")
    parser.add_argument("--stream", type=int, default=500, help="edits for edits/s (default 500)")
    parser.add_argument("--queries", type=int, default=20000, help="finger queries per run (default 20000)")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts for start-up (default 1e6)")
    parser.add_argument("--quick", action="store_true", help="fewer of everything (200 edits still)")
    args = parser.parse_args(argv)
    if args.quick:
        args.stream, args.queries, args.accounts = 200, 8000, 200_000

    work = tempfile.mkdtemp(prefix="sshfinger-cluster-bench-")
    cluster = PostgresCluster(fsync=True)
    cluster.start()
    nodes: list[Node] = []
    try:
        url, sqlite_path, passwd = site(cluster, work)
        a, b, lite = (Node(os.path.join(work, n), s, passwd) for n, s in
                      (("a", url), ("b", url), ("lite", sqlite_path)))  # fmt: skip
        nodes += [a, b, lite]
        for node in nodes:
            node.wait()
        time.sleep(0.5)

        where = "nodes pinned to core 0, clients to core 1 for part 3" if PINNED else "NOT pinned"
        print(f"sshfinger on PostgreSQL {cluster.execute('SHOW server_version')[0][0]} (fsync on), loopback, {where}")
        prop = propagation(a, b, args.edits)
        print(f"1. propagation A->B over {args.edits} edits: p50 {prop['p50']:.1f} ms  p99 {prop['p99']:.1f} ms"
              f"  max {prop['max']:.1f} ms   (target p99 < 50 ms: {'met' if prop['p99'] < 50 else 'NOT met'})")
        print(f"   baseline, one finger round trip to B in the same loop: p50 {prop['trip_p50']:.1f} ms"
              f"  p99 {prop['trip_p99']:.1f} ms;  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        pg_edits = edit_rate(a, args.stream)
        lite_edits = edit_rate(lite, args.stream)
        print(f"2. edits/s through one node ({args.stream} in one SSH session): PostgreSQL {pg_edits:.0f}"
              f"  SQLite {lite_edits:.0f}  ratio {pg_edits / lite_edits:.2f}")

        if PINNED:
            os.sched_setaffinity(0, {CLIENT_CORE})
        ratios, pg_runs, lite_runs = [], [], []
        for _ in range(5):  # alternating pairs; the median ratio resists a busy machine better than any one run
            pg_runs.append(finger_rate(b, args.queries // 2))
            lite_runs.append(finger_rate(lite, args.queries // 2))
            ratios.append(pg_runs[-1] / lite_runs[-1])
        ratio = statistics.median(ratios)
        print(f"3. finger q/s, 16 clients, 5 alternating pairs: PostgreSQL node median {statistics.median(pg_runs):.0f}"
              f"  SQLite node median {statistics.median(lite_runs):.0f}  ratio median {ratio:.2f}"
              f" (pairs {min(ratios):.2f}-{max(ratios):.2f})  (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
        for node in nodes:
            node.stop()
        nodes = []

        big_url = cluster.new_database()
        tool("init", "--store", big_url)
        fill_postgresql(big_url, args.accounts)
        big_lite = os.path.join(work, "big.db")
        tool("init", "--store", big_lite)
        fill_sqlite(big_lite, args.accounts)
        pg_seconds, pg_rss = startup(big_url, work, "big-pg", args.accounts)
        lite_seconds, lite_rss = startup(big_lite, work, "big-lite", args.accounts)
        print(f"4. start-up with {args.accounts:,} accounts: PostgreSQL {pg_seconds:.1f} s ({pg_rss / 1024:.0f} MiB,"
              f" {pg_rss * 1024 / args.accounts:.0f} B/account)  SQLite {lite_seconds:.1f} s ({lite_rss / 1024:.0f} MiB,"
              f" {lite_rss * 1024 / args.accounts:.0f} B/account)   (target < 10 s: {'met' if pg_seconds < 10 else 'NOT met'})")
    finally:
        for node in nodes:
            node.stop()
        cluster.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

