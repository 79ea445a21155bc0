"""
Helpers the bench modules share: constants, ports, CPU and pinning probes, client commands (ssh, sshpass) and
finger runs with the server's CPU and the kernel's listen-queue drops.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finger_load import percentile, run_load

HOST = "127.0.0.1"
PASSWORD = "bench-Password-1"
#: What a good finger answer about alice contains (the demo data of 'sshfinger init'); the bench never edits alice.
ALICE_STATUS = b"Down the rabbit hole"
SERVER_CORE, CLIENT_CORE = 0, 1

#: OpenSSH client options for unattended logins to a throw-away server.
SSH_COMMON = [
    "-F", "/dev/null",  # no user config: no ControlMaster reuse, no surprises
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=20",
]  # fmt: skip

#: Key logins: never prompt, offer only the given key.
KEY_ONLY = ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey"]

#: One client login: wall seconds, success, first line of output (or of the error).
Login = tuple[float, bool, str]


def free_port() -> int:
    """
    A loopback port that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------------- probes


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
    The user + system CPU seconds process C{pid} (all its threads, and its children once reaped: sshd's
    per-connection processes) has used so far, or L{None}.
    """
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before: float | None, after: float | None) -> float | None:
    """
    C{after - before} of two L{process_cpu} readings, or L{None} if either is missing.
    """
    return after - before if before is not None and after is not None else None


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


# --------------------------------------------------------------------------------------------------- clients


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


def key_login(
    port: int, key: Path, command: Sequence[str] = ("whoami",), user: str = "admin", options: Sequence[str] = ()
) -> ClientRun:
    """
    C{ssh -i key USER@127.0.0.1 COMMAND}, public key only.

    @param options: more client options, e.g. C{("-o", "KexAlgorithms=curve25519-sha256")}.
    """
    return ClientRun(["ssh", *SSH_COMMON, *KEY_ONLY, *options, "-p", str(port), "-i", str(key), f"{user}@{HOST}",
                      *command], timeout=30)  # fmt: skip


def password_login(port: int) -> ClientRun:
    """
    C{sshpass -p PW ssh admin@127.0.0.1 whoami}, password only (bcrypt on the server).
    """
    return ClientRun(
        ["sshpass", "-p", PASSWORD, "ssh", *SSH_COMMON, "-p", str(port), "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1", f"admin@{HOST}", "whoami"],
        timeout=60,
    )  # fmt: skip


def timed_batch(
    pid: int | None, batch: Callable[[], list[Login]]
) -> tuple[list[Login], float, float | None, str]:
    """
    Run C{batch}; return its logins, its wall time, the server's CPU seconds meanwhile, and a note with the
    clients' CPU per login (ssh, sshpass: reaped children of this process).
    """
    cpu, clients, started = process_cpu(pid), children_cpu(), time.perf_counter()
    runs = batch()
    wall = time.perf_counter() - started
    note = f"client CPU {(children_cpu() - clients) * 1000 / max(1, len(runs)):.1f} ms/login"
    return runs, wall, cpu_delta(cpu, process_cpu(pid)), note



# --------------------------------------------------------------------------------------------------- finger


def finger_run(
    port: int, concurrency: int, total: int, seconds: float, pid: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """
    One L{run_load} against C{port} (by default of C{alice} queries, each answer checked for her status), with
    the kernel's listen-queue overflow count of the same interval and (given the server's C{pid}) the CPU seconds
    the server used meanwhile.

    @param kwargs: more L{run_load} arguments, e.g. C{until}, or C{query} and C{expect} together.
    """
    kwargs.setdefault("query", b"alice\r\n")
    kwargs.setdefault("expect", ALICE_STATUS)
    before, cpu_before = listen_overflows(), process_cpu(pid)
    result = run_load(HOST, port, concurrency, total, seconds=seconds, **kwargs)
    after = listen_overflows()
    result["overflows"] = after - before if before >= 0 and after >= 0 else None
    result["server_cpu"] = cpu_delta(cpu_before, process_cpu(pid))
    return result


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """
    Merge several L{finger_run} results into one of the same shape.
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
        "round_qps": [r["qps"] for r in results],
        "round_p99_ms": [r["p99_ms"] for r in results],
        "latencies": latencies,
    }


def public(result: dict[str, Any]) -> dict[str, Any]:
    """
    A finger result without its latency list, for the JSON output.
    """
    return {k: v for k, v in result.items() if k != "latencies"}
