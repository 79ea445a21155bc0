"""
How live an edit is: from an SSH exec C{set} returning (or the offline tool exiting) to a finger query showing
the new status.

  python bench/live.py [--venv .venv] [--rounds 20]

An exec C{set} is acknowledged only after the commit and the in-memory update, so the first query after it
already shows the change: the figure is one finger round trip.  The offline tool writes the SQLite file from
another process; the server sees it at its next poll (every 0.5 s).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import tempfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KEY_ONLY, SSH_COMMON, free_port  # noqa: E402
from finger_load import run_load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent



def finger(port: int) -> bytes:
    """
    One query for alice.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"alice\r\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def until_seen(port: int, text: bytes, limit: float = 5.0) -> float:
    """
    Query until C{text} shows; return the seconds it took.
    """
    started = time.perf_counter()
    while text not in finger(port):
        if time.perf_counter() - started > limit:
            raise SystemExit(f"{text!r} did not show within {limit} s")
        time.sleep(0.001)
    return time.perf_counter() - started


def main() -> None:
    """
    Start a server, edit over SSH and with the offline tool, print the delays.
    """
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    tool = str(args.venv / "bin" / "sshfinger")
    with tempfile.TemporaryDirectory(prefix="sshfinger-live-") as temp:
        directory = Path(temp)
        store, key = directory / "s.db", directory / "id_ed25519"
        subprocess.run([tool, "init", "--store", str(store)], check=True, capture_output=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        subprocess.run([tool, "key", "add", "admin", f"{key}.pub", "--store", str(store)], check=True,
                       capture_output=True)  # fmt: skip
        finger_port, ssh_port = free_port(), free_port()
        server = subprocess.Popen(
            [str(args.venv / "bin" / "twistd"), "--nodaemon", "--pidfile=", "sshfinger",
             "--finger", f"tcp:{finger_port}:interface=127.0.0.1", "--ssh", f"tcp:{ssh_port}:interface=127.0.0.1",
             "--store", str(store), "--keys", str(directory / "keys")],
            cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    finger(finger_port)
                    socket.create_connection(("127.0.0.1", ssh_port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.05)
            exec_delays, cli_delays = [], []
            for n in range(args.rounds):
                subprocess.run(["ssh", *SSH_COMMON, *KEY_ONLY, "-p", str(ssh_port), "-i", str(key), "admin@127.0.0.1",
                                "set", "alice", "status", f"exec-{n}"], check=True, capture_output=True)  # fmt: skip
                exec_delays.append(until_seen(finger_port, f"exec-{n}".encode()))
            for n in range(max(3, args.rounds // 4)):
                subprocess.run([tool, "set", "alice", "status", f"cli-{n}", "--store", str(store)], check=True,
                               capture_output=True)  # fmt: skip
                cli_delays.append(until_seen(finger_port, f"cli-{n}".encode()))
            idle = run_load("127.0.0.1", finger_port, 8, 2000, b"bob\r\n")
            writer = subprocess.Popen(
                ["ssh", *SSH_COMMON, *KEY_ONLY, "-p", str(ssh_port), "-i", str(key), "-T", "admin@127.0.0.1"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            assert writer.stdin is not None
            writer.stdin.write("".join(f"set alice status write-{n}\n" for n in range(500)).encode() + b"quit\n")
            writer.stdin.close()
            busy = run_load("127.0.0.1", finger_port, 8, 100_000, b"bob\r\n", seconds=20,
                            until=lambda: writer.poll() is not None)  # fmt: skip
            writer.wait(60)
        finally:
            server.terminate()
            server.wait(10)
    print("from an edit being acknowledged to a finger query showing it")
    print(f"  ssh exec set:  median {statistics.median(exec_delays) * 1000:7.2f} ms, max {max(exec_delays) * 1000:7.2f} ms"
          f"  ({len(exec_delays)} edits; one finger round trip)")
    print(f"  sshfinger set: median {statistics.median(cli_delays) * 1000:7.2f} ms, max {max(cli_delays) * 1000:7.2f} ms"
          f"  ({len(cli_delays)} edits from another process; the server polls every 0.5 s)")
    print("finger p99 (8 clients) while 500 edits stream in over one SSH session and commit (fsync each)")
    print(f"  idle {idle['p99_ms']:.2f} ms, during the writes {busy['p99_ms']:.2f} ms "
          f"({busy['queries']} queries): {busy['p99_ms'] / idle['p99_ms']:.2f}x")


if __name__ == "__main__":
    main()
