"""
SSH side by side: sshfinger against a private OpenSSH sshd, same client, same machine, same run.

  python bench/sshd_compare.py [--venv .venv] [--runs 20] [--parallel-logins 40]

Starts a private sshd (its own config, host key and authorized_keys in a temporary directory, on a free
loopback port; the system's sshd is never touched) and the installed twistd sshfinger, pins both to core 0 and
the ssh clients to core 1, and measures public-key login + exec with the stock OpenSSH client: the median of
sequential logins and logins/s with 8 clients in parallel.  Needs openssh-server (apt-get install
openssh-server) and root (sshd's privilege separation).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KEY_ONLY, SSH_COMMON, free_port, wait_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SSHD = "/usr/sbin/sshd"




def pinned(core: int) -> None:
    """
    Pin the calling (child) process to C{core}, where the machine has it.
    """
    if core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def login(port: int, user: str, key: Path, command: str, options: list[str]) -> float:
    """
    One key login + exec; return its wall time in seconds.
    """
    started = time.perf_counter()
    subprocess.run(["ssh", *SSH_COMMON, *KEY_ONLY, *options, "-p", str(port), "-i", str(key), f"{user}@127.0.0.1", command],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    return time.perf_counter() - started


def measure(
    port: int, user: str, key: Path, command: str, runs: int, parallel: int, options: list[str]
) -> tuple[float, float]:
    """
    Median sequential login time (ms) and logins/s with 8 parallel clients.
    """
    for _ in range(3):
        login(port, user, key, command, options)  # warm up
    median = statistics.median(login(port, user, key, command, options) for _ in range(runs)) * 1000
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: login(port, user, key, command, options), range(parallel)))
    return median, parallel / (time.perf_counter() - started)


def main() -> None:
    """
    Start both servers, measure, print the comparison.
    """
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel-logins", type=int, default=40)
    args = parser.parse_args()
    if not os.path.exists(SSHD) or os.geteuid() != 0 or shutil.which("ssh") is None:
        raise SystemExit("needs root, /usr/sbin/sshd (apt-get install openssh-server) and ssh")
    pinned(1)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="sshfinger-sshd-") as temp:
        directory = Path(temp)
        os.chmod(directory, 0o755)
        key = directory / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "host_key")], check=True)
        shutil.copy(f"{key}.pub", directory / "authorized_keys")
        sshd_port, finger_port, ssh_port = free_port(), free_port(), free_port()
        (directory / "sshd_config").write_text(
            f"Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPrintMotd no\n"
        )
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        store = directory / "s.db"
        tool = str(args.venv / "bin" / "sshfinger")
        subprocess.run([tool, "init", "--store", str(store)], check=True, capture_output=True)
        subprocess.run([tool, "key", "add", "admin", f"{key}.pub", "--store", str(store)], check=True,
                       capture_output=True)  # fmt: skip
        try:
            for command in (
                [SSHD, "-D", "-e", "-f", str(directory / "sshd_config")],
                [str(args.venv / "bin" / "twistd"), "--nodaemon", "--pidfile=", "sshfinger",
                 "--finger", f"tcp:{finger_port}:interface=127.0.0.1", "--ssh", f"tcp:{ssh_port}:interface=127.0.0.1",
                 "--store", str(store), "--keys", str(directory / "keys")],
            ):  # fmt: skip
                log = open(directory / f"{Path(command[0]).name}.log", "wb")
                processes.append(subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT,
                                                  preexec_fn=lambda: pinned(0)))  # fmt: skip
            wait_port(sshd_port)
            wait_port(ssh_port)
            rows = []
            for label, options in (("client defaults", []), ("both curve25519", ["-o", "KexAlgorithms=curve25519-sha256"])):
                sshd = measure(sshd_port, "root", key, "true", args.runs, args.parallel_logins, options)
                ours = measure(ssh_port, "admin", key, "whoami", args.runs, args.parallel_logins, options)
                rows.append((label, sshd, ours))
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
    print("key login + exec, OpenSSH client, servers on core 0, clients on core 1")
    print(f"{'':<46} {'OpenSSH sshd':>14} {'sshfinger':>12} {'ratio':>8}")
    for label, sshd, ours in rows:
        # With client defaults sshd negotiates sntrup761x25519 (post-quantum, costly); Conch offers curve25519.
        print(f"{'median login+exec (ms), ' + label:<46} {sshd[0]:>14.1f} {ours[0]:>12.1f} {ours[0] / sshd[0]:>7.2f}x")
        print(f"{'logins/s, 8 parallel, ' + label:<46} {sshd[1]:>14.1f} {ours[1]:>12.1f} {ours[1] / sshd[1]:>7.2f}x")


if __name__ == "__main__":
    sys.exit(main())
