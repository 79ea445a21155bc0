"""
One command that measures sshfinger on this machine and prints one table.

  python bench/run.py [--quick] [--venv DIR] [--json FILE] [--logs DIR] [--no-ssh]

It starts, on free loopback ports, the Twisted tutorial's plain finger server (C{baseline_finger.py}) and the
installed C{twistd -n --pidfile= sshfinger} (finger only for the finger rows, then with SSH for the SSH rows),
pins the servers to core 0 and itself, the load generator and the ssh clients to core 1, and measures:

  a. finger queries/s, p50/p99/max and server CPU per query at 16 and 128 concurrent connections, sshfinger
     against the baseline, and the ratios; plus diagnostics changed from outside: sshfinger with its per-query
     info log switched off, and both servers with a listen backlog of 1024 instead of 50;
  b. SSH public-key login + exec (real OpenSSH client, C{whoami}): median and p90 of sequential runs, and
     logins/s with 8 clients at a time;
  c. finger p99 on the SSH-enabled server when idle and while 10 password logins (bcrypt cost 12, sshpass)
     run at once, and the ratio.

Every loop is bounded in count and time.  Every process it starts is stopped on the way out (try/finally, and
on SIGTERM/SIGINT), by its own process id or process group.  Standard library only, plus the venv's tools.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from common import SSH_COMMON, free_port  # noqa: E402
from finger_load import percentile, run_load  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "bench-Password-1"
#: What a good finger answer about alice contains, from both servers (the demo data of 'sshfinger init').
ALICE_STATUS = b"Down the rabbit hole"
SERVER_CORE, CLIENT_CORE = 0, 1

#: One client login: wall seconds, success, first line of output (or of the error).
Login = tuple[float, bool, str]


# --------------------------------------------------------------------------------------------------- helpers


def listen_overflows() -> int:
    """
    The kernel's count of connections dropped because a listen queue was full (TcpExt ListenOverflows), or -1.
    """
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return -1
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:]))
            return int(fields.get("ListenOverflows", -1))
    return -1


def cpu_times() -> dict[str, list[int]]:
    """
    The C{/proc/stat} counters of every CPU line (C{cpu}, C{cpu0}, ...), or nothing.
    """
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return {}
    return {line.split()[0]: [int(x) for x in line.split()[1:]] for line in lines if line.startswith("cpu")}


def steal_percent(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, float]:
    """
    The share of time the hypervisor took away (steal, the 8th field) per CPU between two L{cpu_times}.
    """
    shares = {}
    for name in sorted(set(before) & set(after)):
        delta = [b - a for a, b in zip(before[name], after[name])]
        if len(delta) >= 8 and sum(delta[:8]) > 0:
            shares[name] = 100.0 * delta[7] / sum(delta[:8])
    return shares


def process_cpu(pid: int | None) -> float | None:
    """
    The user + system CPU seconds process C{pid} (all its threads) has used so far, or L{None}.
    """
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """
    User + system CPU seconds of this process's reaped children (the ssh and sshpass clients).
    """
    times = os.times()
    return times.children_user + times.children_system


def can_pin() -> bool:
    """
    Whether this process may use both the server core and the client core.
    """
    return hasattr(os, "sched_setaffinity") and {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0)


def thread_affinities(pid: int) -> set[frozenset[int]]:
    """
    The distinct CPU sets of every thread of process C{pid} (Linux), to check the pinning held.
    """
    found = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                found.add(frozenset(os.sched_getaffinity(int(tid))))
            except OSError:
                pass
    except OSError:
        pass
    return found


class ClientRun:
    """
    One client command (ssh, sshpass) in its own process group, killed as a group if it overruns.
    """

    def __init__(self, args: Sequence[str], timeout: float) -> None:
        self.args, self.timeout = list(args), timeout

    def __call__(self) -> Login:
        """
        Run it; return (wall seconds, success, first line of output or error).
        """
        started = time.perf_counter()
        process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return time.perf_counter() - started, False, f"timed out after {self.timeout:.0f} s"
        finally:
            if process.poll() is None:  # interrupted: leave nothing behind
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        elapsed = time.perf_counter() - started
        text = (out or err).decode("utf-8", "replace").strip().splitlines()
        return elapsed, process.returncode == 0, text[0] if text else f"exit {process.returncode}"


# --------------------------------------------------------------------------------------------------- servers


def setup_step(args: list[str], stdin: str | None = None) -> None:
    """
    Run one preparation command; stop the bench with its error output if it fails.
    """
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr.strip()[-500:]}")


class Servers:
    """
    The data directory (store, passwd file, client key) and every server process, stopped by L{stop}.
    """

    def __init__(self, venv: Path, directory: Path, pinned: bool) -> None:
        """
        @param pinned: start the servers on L{SERVER_CORE} only.
        """
        self.venv, self.directory = venv, directory
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.pinned = pinned
        self.logs: list[str] = []
        self.affinities: dict[str, list[list[int]]] = {}
        self.store = directory / "bench.db"
        self.passwd = directory / "passwd"
        self.key = directory / "id_ed25519"
        self.keys_dir = directory / "hostkeys"
        tool = str(venv / "bin" / "sshfinger")
        setup_step([tool, "init", "--store", str(self.store)])
        setup_step([tool, "passwd", "admin", "--file", str(self.passwd), "--password-stdin", "--rounds", "12"],
                   PASSWORD + "\n")  # fmt: skip
        setup_step(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        setup_step([tool, "key", "add", "admin", f"{self.key}.pub", "--store", str(self.store)])

    def _start(self, name: str, args: list[str], ports: list[int], env: dict[str, str] | None = None) -> int:
        log = open(self.directory / f"{name}.log", "wb")
        pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if self.pinned else None
        process = subprocess.Popen(
            args, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=pin, env={**os.environ, **(env or {})},
        )  # fmt: skip
        log.close()
        self.processes.append((name, process))
        self.logs.append(name)
        deadline = time.monotonic() + 60
        for port in ports:
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{name} exited early ({process.returncode}):\n{self.log_tail(name)}")
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{name}: nothing listens on {port} after 60 s:\n{self.log_tail(name)}")
                    time.sleep(0.05)
        self.affinities[name] = sorted(sorted(cpus) for cpus in thread_affinities(process.pid))
        return process.pid

    def log_tail(self, name: str, lines: int = 15) -> str:
        """
        The last lines of a server's log.
        """
        try:
            text = (self.directory / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self, name: str) -> dict[str, int]:
        """
        Lines of a server's log that look like trouble (tracebacks, errors, warnings), without their time stamp
        and with numbers masked, counted.
        """
        try:
            text = (self.directory / f"{name}.log").read_text(errors="replace")
        except OSError:
            return {}
        needles = ("Traceback", "#critical", "#error", "#warn", "Unhandled", "CRITICAL", "ERROR")
        counts: dict[str, int] = {}
        for line in text.splitlines():
            if any(needle in line for needle in needles):
                message = re.sub(r"\d+", "N", re.sub(r"^\S+[+-]\d{4} ", "", line))
                counts[message] = counts.get(message, 0) + 1
        return counts

    def keep_logs(self, target: Path) -> None:
        """
        Copy every server log into C{target}.
        """
        target.mkdir(parents=True, exist_ok=True)
        for name in self.logs:
            source = self.directory / f"{name}.log"
            if source.exists():
                shutil.copy(source, target / source.name)

    def start_baseline(self, name: str = "baseline", backlog: int | None = None) -> int:
        """
        The tutorial server; return its port.

        @param backlog: its listen backlog (Twisted's default is 50).
        """
        port = free_port()
        args = [str(self.venv / "bin" / "python"), str(BENCH / "baseline_finger.py"), str(port)]
        self._start(name, args + ([str(backlog)] if backlog else []), [port])
        return port

    def start_sshfinger(
        self, name: str, ssh: bool, quiet_log: bool = False, backlog: int | None = None
    ) -> tuple[int, int | None]:
        """
        C{twistd -n --pidfile= sshfinger}, finger only or with SSH; return the finger and SSH ports.

        @param quiet_log: drop info events (L{quiet_log.observer}).
        @param backlog: the finger endpoint's listen backlog (Twisted's default is 50).
        """
        finger = free_port()
        ssh_port = free_port() if ssh else None
        args = [str(self.venv / "bin" / "twistd"), "-n", "--pidfile="]
        env = None
        if quiet_log:
            args += ["--logger", "quiet_log.observer"]
            env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))}
        args += [
            "sshfinger", "--finger", f"tcp:{finger}:interface={HOST}" + (f":backlog={backlog}" if backlog else ""),
            "--store", str(self.store),
            # All load comes from 127.0.0.1: lift the per-address limit (default 20) above the concurrency.
            "--max-per-peer", "1000",
        ]  # fmt: skip
        if ssh:
            args += ["--ssh", f"tcp:{ssh_port}:interface={HOST}", "--keys", str(self.keys_dir),
                     "--auth", f"file:{self.passwd}"]  # fmt: skip
        else:
            args += ["--no-ssh"]
        self._start(name, args, [finger] + ([ssh_port] if ssh_port else []), env)
        return finger, ssh_port

    def stop(self, name: str | None = None) -> None:
        """
        Stop one server (by name) or all: SIGTERM, then SIGKILL after 10 s.
        """
        for proc_name, process in self.processes:
            if name is not None and proc_name != name:
                continue
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)

    def pid(self, name: str) -> int:
        """
        The process id of a running server.
        """
        return next(process.pid for proc_name, process in self.processes if proc_name == name)


# --------------------------------------------------------------------------------------------------- table


class Table:
    """
    The result rows, printed as one aligned table and optionally written as JSON.
    """

    COLUMNS = ("measurement", "n", "rate/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu ms/op", "errors", "ovfl",
               "note")  # fmt: skip

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, measurement: str, **values: Any) -> None:
        """
        Add one row; missing columns are printed as C{-}.
        """
        self.rows.append({"measurement": measurement, **values})
        print(f"  .. {measurement}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items() if k != "note"),
              file=sys.stderr, flush=True)  # fmt: skip

    def section(self, title: str) -> None:
        """
        Start a group of rows.
        """
        self.rows.append({"section": title})

    def render(self) -> str:
        """
        The aligned table.
        """
        keys = ("measurement", "n", "rate", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_ms_per_op", "errors",
                "overflows", "note")  # fmt: skip
        cells = [list(self.COLUMNS)]
        for row in self.rows:
            if "section" in row:
                cells.append([row["section"]])
                continue
            cells.append([_fmt(row.get(key)) for key in keys])
        widths = [max(len(r[i]) for r in cells if len(r) > 1) for i in range(len(self.COLUMNS))]
        lines = []
        for r in cells:
            if len(r) == 1:
                lines.append(f"-- {r[0]} " + "-" * max(0, sum(widths[:-1]) + 2 * len(widths) - len(r[0]) - 4))
                continue
            parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:-1], widths[1:-1])] + [r[-1]]
            lines.append("  ".join(parts).rstrip())
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def _ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return float("nan")
    return a / b


def ratio_row(table: Table, name: str, top: dict[str, Any], bottom: dict[str, Any], note: str) -> None:
    """
    Add a row of ratios C{top / bottom}: rate and each latency column.
    """
    columns = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_ms_per_op")
    ratios = {column: _ratio(top[column], bottom[column]) for column in columns}
    table.add(name, rate=_ratio(top["qps"], bottom["qps"]), **ratios, note=note)


# --------------------------------------------------------------------------------------------------- finger


def finger_run(
    port: int, concurrency: int, total: int, seconds: float, pid: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """
    One L{run_load} against C{port}, with the kernel's listen-queue overflow count of the same interval and
    (given the server's C{pid}) the CPU seconds the server used meanwhile.
    """
    before, cpu_before = listen_overflows(), process_cpu(pid)
    result = run_load(HOST, port, concurrency, total, b"alice\r\n", seconds=seconds, expect=ALICE_STATUS, **kwargs)
    after, cpu_after = listen_overflows(), process_cpu(pid)
    result["overflows"] = after - before if before >= 0 and after >= 0 else None
    result["server_cpu"] = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return result


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Merge several L{finger_run} results.
    """
    latencies = sorted(x for r in results for x in r["latencies"])
    seconds = sum(r["seconds"] for r in results)
    overflows = [r["overflows"] for r in results]
    cpus = [r["server_cpu"] for r in results]
    cpu = None if None in cpus else sum(cpus)
    kinds: dict[str, int] = {}
    for r in results:
        for kind, count in r["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    return {
        "queries": len(latencies),
        "errors": sum(r["errors"] for r in results),
        "error_kinds": kinds,
        "wrong_answers": [a for r in results for a in r["wrong_answers"]][:3],
        "seconds": seconds,
        "qps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p90_ms": percentile(latencies, 0.9) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
        "overflows": None if None in overflows else sum(overflows),
        "server_cpu": cpu,
        "cpu_ms_per_op": cpu * 1000 / len(latencies) if cpu is not None and latencies else None,
        "latencies": latencies,
    }


def finger_row(table: Table, name: str, r: dict[str, Any], note: str = "") -> None:
    """
    Add a finger result as a row.
    """
    if r["error_kinds"]:
        note = (note + "; " if note else "") + ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
    if r["wrong_answers"]:
        note = (note + "; " if note else "") + f"e.g. {r['wrong_answers'][0]!r}"
    table.add(name, n=r["queries"], rate=r["qps"], p50_ms=r["p50_ms"], p90_ms=r["p90_ms"], p99_ms=r["p99_ms"],
              max_ms=r["max_ms"], cpu_ms_per_op=r["cpu_ms_per_op"], errors=r["errors"], overflows=r["overflows"],
              note=note)  # fmt: skip


def measure_finger(servers: Servers, table: Table, quick: bool, results: dict[str, Any]) -> None:
    """
    (a) finger throughput and latency, baseline against sshfinger --no-ssh, at 16 and 128 connections; plus
    diagnostics changed from outside (no code change): sshfinger with its info log off (c=16), and both servers
    with a listen backlog of 1024 (c=128).  Runs against different servers are interleaved round by round.
    """
    rounds, total = (2, 2048) if quick else (4, 4096)
    ports = {
        "baseline": servers.start_baseline(),
        "sshfinger": servers.start_sshfinger("sshfinger", ssh=False)[0],
        "sshfinger-quietlog": servers.start_sshfinger("sshfinger-quietlog", ssh=False, quiet_log=True)[0],
        "baseline-backlog": servers.start_baseline("baseline-backlog", backlog=1024),
        "sshfinger-backlog": servers.start_sshfinger("sshfinger-backlog", ssh=False, backlog=1024)[0],
    }
    pids = {name: servers.pid(name) for name in ports}
    for port in ports.values():
        finger_run(port, 16, 2000, 10)  # warm up (first store read, page cache, interpreter caches)
    plan = {
        16: ["baseline", "sshfinger", "sshfinger-quietlog"],
        128: ["baseline", "sshfinger", "baseline-backlog", "sshfinger-backlog"],
    }
    measured: dict[tuple[int, str], dict[str, Any]] = {}
    for concurrency, names in plan.items():
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:
                runs[name].append(finger_run(ports[name], concurrency, total, 20, pids[name]))
        for name in names:
            measured[concurrency, name] = pool(runs[name])
            results[f"finger_c{concurrency}_{name}"] = _public(measured[concurrency, name])
    for concurrency in plan:
        base, mine = measured[concurrency, "baseline"], measured[concurrency, "sshfinger"]
        table.section(f"finger, waves of {concurrency} one-query connections ({rounds} x {total} queries each)")
        finger_row(table, f"c={concurrency} baseline (tutorial)", base)
        finger_row(table, f"c={concurrency} sshfinger --no-ssh", mine)
        ratio_row(table, f"c={concurrency} ratio sshfinger/baseline", mine, base, "ratios (x), not ms")
    table.section("finger diagnostics, changed from outside (no code change), interleaved with the rows above")
    finger_row(table, "c=16 sshfinger, info log off", measured[16, "sshfinger-quietlog"],
               "twistd --logger quiet_log.observer")  # fmt: skip
    ratio_row(table, "c=16 ratio log-off/log-on", measured[16, "sshfinger-quietlog"], measured[16, "sshfinger"],
              "ratios (x): what the per-query log line costs")  # fmt: skip
    base, mine = measured[128, "baseline-backlog"], measured[128, "sshfinger-backlog"]
    finger_row(table, "c=128 baseline, backlog 1024", base, "baseline_finger.py PORT 1024")
    finger_row(table, "c=128 sshfinger, backlog 1024", mine, "--finger tcp:PORT:backlog=1024")
    ratio_row(table, "c=128 backlog-1024 ratio", mine, base, "ratios (x): server code alone, no queue drops")
    for name in ports:
        servers.stop(name)


def _public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "latencies"}


# --------------------------------------------------------------------------------------------------- ssh


def key_login(port: int, key: Path) -> ClientRun:
    """
    C{ssh -i key admin@127.0.0.1 whoami}, public key only.
    """
    return ClientRun(
        ["ssh", *SSH_COMMON, "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "PreferredAuthentications=publickey", f"admin@{HOST}", "whoami"],
        timeout=30,
    )  # fmt: skip


def password_login(port: int) -> ClientRun:
    """
    C{sshpass -p PW ssh admin@127.0.0.1 whoami}, password only (bcrypt on the server).
    """
    return ClientRun(
        ["sshpass", "-p", PASSWORD, "ssh", *SSH_COMMON, "-p", str(port), "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1", f"admin@{HOST}", "whoami"],
        timeout=60,
    )  # fmt: skip


def login_row(table: Table, name: str, runs: list[Login], wall: float | None = None,
              note: str = "", cpu: float | None = None) -> dict[str, Any]:  # fmt: skip
    """
    Add a row for a batch of logins: rate (if C{wall} is given), p50/p90/max of the successful ones, the server's
    CPU per login (if C{cpu}, its CPU seconds over the batch, is given), failures.
    """
    ok = sorted(t for t, good, _ in runs if good)
    failures = [text for _, good, text in runs if not good]
    if failures:
        note = (note + "; " if note else "") + f"first failure: {failures[0][:80]}"
    row = {
        "n": len(ok), "rate": (len(ok) / wall) if wall else None,
        "p50_ms": statistics.median(ok) * 1000 if ok else float("nan"),
        "p90_ms": percentile(ok, 0.9) * 1000, "max_ms": (ok[-1] * 1000) if ok else float("nan"),
        "cpu_ms_per_op": (cpu * 1000 / len(runs)) if cpu is not None and runs else None,
        "errors": len(failures), "note": note,
    }  # fmt: skip
    table.add(name, **row)
    return row


def measure_ssh(servers: Servers, table: Table, quick: bool, results: dict[str, Any]) -> None:
    """
    (b) key login latency and rate; (c) finger p99 idle and during 10 concurrent bcrypt password logins.
    """
    finger, ssh = servers.start_sshfinger("sshfinger-ssh", ssh=True)
    assert ssh is not None
    pid = servers.pid("sshfinger-ssh")

    def batch(function: Callable[[], list[Login]]) -> tuple[list[Login], float, float | None, str]:
        """
        Run C{function}; return its result, its wall time, the server's CPU seconds meanwhile, and a note with
        the clients' CPU per login (ssh, sshpass: reaped children of this process).
        """
        cpu, clients, started = process_cpu(pid), children_cpu(), time.perf_counter()
        runs = function()
        wall, after = time.perf_counter() - started, process_cpu(pid)
        note = f"client CPU {(children_cpu() - clients) * 1000 / max(1, len(runs)):.1f} ms/login"
        return runs, wall, (after - cpu) if after is not None and cpu is not None else None, note

    first = key_login(ssh, servers.key)()
    if not first[1]:
        table.section("ssh")
        table.add("ssh key login+exec", errors=1, note=f"first login failed: {first[2][:100]}")
        results["ssh_error"] = first[2]
        return
    table.section(f"ssh (OpenSSH client, ed25519 key, exec whoami -> {first[2]!r})")
    runs = 8 if quick else 20
    sequential, _, cpu, note = batch(lambda: [key_login(ssh, servers.key)() for _ in range(runs)])
    results["ssh_key_sequential"] = login_row(table, f"key login+exec, one at a time x{runs}", sequential,
                                              note=note, cpu=cpu)  # fmt: skip

    logins = 16 if quick else 40

    def parallel_logins() -> list[Login]:
        with ThreadPoolExecutor(8) as executor:
            return list(executor.map(lambda _: key_login(ssh, servers.key)(), range(logins)))

    parallel, wall, cpu, note = batch(parallel_logins)
    results["ssh_key_parallel"] = login_row(table, f"key logins, 8 parallel x{logins}", parallel, wall,
                                            f"rate = logins/s; {note}", cpu)  # fmt: skip

    single, _, cpu, note = batch(lambda: [password_login(ssh)() for _ in range(1 if quick else 3)])
    results["ssh_password_sequential"] = login_row(
        table, f"password login+exec (bcrypt 12), one at a time x{len(single)}", single, note=note, cpu=cpu
    )

    # (c) finger on the same (SSH-enabled) server: idle, then while 10 password logins run at once.
    concurrency = 16
    finger_run(finger, concurrency, 2000, 10)  # warm up
    idle = pool([finger_run(finger, concurrency, 2048 if quick else 4096, 20, pid) for _ in range(2)])
    table.section(f"finger c={concurrency} on the SSH-enabled server, idle vs 10 concurrent bcrypt-12 logins")
    finger_row(table, "finger idle", idle)

    logins_done = threading.Event()
    password_runs: list[Login] = []

    def run_logins() -> None:
        try:
            with ThreadPoolExecutor(10) as executor:
                password_runs.extend(executor.map(lambda _: password_login(ssh)(), range(10)))
        finally:
            logins_done.set()

    started, cpu_before = time.perf_counter(), process_cpu(pid)
    thread = threading.Thread(target=run_logins, daemon=True)
    thread.start()
    # Query for as long as any of the logins runs (at most 60 s).
    busy = pool([finger_run(finger, concurrency, 10**7, 60, until=logins_done.is_set)])
    busy["cpu_ms_per_op"] = None  # the server's CPU went to bcrypt too: not per query
    thread.join(90)
    wall, cpu_after = time.perf_counter() - started, process_cpu(pid)
    finger_row(table, "finger during the logins", busy, f"{busy['seconds']:.1f} s window")
    ratio_row(table, "ratio during/idle", busy, idle, "ratios (x), not ms")
    note = "rate = logins/s over the window"
    if cpu_before is not None and cpu_after is not None:
        note += f"; server CPU {cpu_after - cpu_before:.2f} s in it, finger included"
    results["password_concurrent"] = login_row(table, "the 10 password logins (wall each)", password_runs, wall,
                                               note)  # fmt: skip
    results["finger_idle"], results["finger_busy"] = _public(idle), _public(busy)
    affinities = thread_affinities(servers.pid("sshfinger-ssh"))
    results["server_thread_affinities"] = sorted(sorted(a) for a in affinities)


# --------------------------------------------------------------------------------------------------- main


def main() -> int:
    """
    Parse arguments, measure, print the table.
    """
    parser = argparse.ArgumentParser(description="Measure sshfinger against the tutorial finger server.")
    parser.add_argument("--venv", type=Path, default=REPO / ".venv", help="venv with sshfinger installed "
                        "(default: the repo's .venv)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer queries and logins (~20 s instead of ~1 min)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--no-ssh", action="store_true", help="finger rows only (a)")
    parser.add_argument("--logs", type=Path, help="copy the servers' logs into this directory")
    args = parser.parse_args()
    venv = args.venv.absolute()
    needed = [venv / "bin" / "twistd", venv / "bin" / "sshfinger", venv / "bin" / "python"]
    missing = [str(p) for p in needed if not p.exists()]
    tools = ["ssh", "ssh-keygen"] + ([] if args.no_ssh else ["sshpass"])
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
            measure_finger(servers, table, args.quick, results)
            if not args.no_ssh:
                measure_ssh(servers, table, args.quick, results)
        except KeyboardInterrupt:
            print("interrupted; stopping the servers", file=sys.stderr)
            return 130
        finally:
            servers.stop()
            for name in servers.logs:
                problems[name] = servers.log_problems(name)
            if args.logs:
                servers.keep_logs(args.logs)
            affinities = servers.affinities
    steal = steal_percent(cpu_before, cpu_times())
    results["steal_percent"] = steal
    print()
    print(f"sshfinger bench: {os.cpu_count()} cores, "
          + (f"servers pinned to core {SERVER_CORE}, load generator and ssh clients to core {CLIENT_CORE}"
             if pinned else "NOT pinned (cores 0 and 1 not both available)")
          + f"; {time.monotonic() - started:.0f} s{' (--quick)' if args.quick else ''}")  # fmt: skip
    print(table.render())
    print("ovfl = connections the kernel dropped because the listen queue was full (each costs a 1 s SYN retry)")
    if steal:
        print("CPU time stolen by the hypervisor during the run: "
              + ", ".join(f"{name} {share:.1f}%" for name, share in steal.items()))  # fmt: skip
    print("server CPU sets (all threads) once listening: "
          + ", ".join(f"{name} {cpus}" for name, cpus in affinities.items())
          + (f"; SSH server at the end: {results['server_thread_affinities']}"
             if "server_thread_affinities" in results else ""))  # fmt: skip
    for name, counts in problems.items():
        for message, count in sorted(counts.items(), key=lambda item: -item[1])[:4]:
            print(f"{name} log: {count} x {message[:150]}")
    results["log_problems"] = problems
    if args.json:
        data = {"rows": table.rows, "results": results, "pinned": pinned, "quick": args.quick}
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
