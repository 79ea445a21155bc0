"""
Issue 17 #4 and #5: what a logged-in user's window-change and long-exec floods do to finger, measured as
bench/run.py measures: the server pinned to core 0, the flood client (at nice 19) and the finger prober to core 1,
so the figures are the server's, not the two Python clients' fight over one core (the integration tests run all
three wherever the kernel puts them).

Finger is probed every 5 ms (latency from each query's due time, L{tests.integration.test_shell_dos}) while
nothing happens (idle), while 5 Conch clients log in and out (a login's own cost: the Conch client asks for the
RSA host key, whose signature is most of it), while each flood runs with its login, and while each flood runs
after its login; printed with the ratio of each p99 to idle's.

Run: .venv/bin/python bench/shell_floods.py   (the installed twistd sshfinger on free loopback ports)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.test_shell_dos import FLOOD, finger_latencies, p99  # noqa: E402
from tests.process import free_port  # noqa: E402

BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1"


def pinned(core: int) -> None:
    """
    Run the calling process (and what it starts) on C{core} only.
    """
    os.sched_setaffinity(0, {core})


def hostile() -> None:
    """
    Run a flood client on the server's core at nice 19: the prober keeps core 1 to itself (a busy neighbour on
    its core, even at nice 19, put 2.5 ms on its own p99 with no server work at all), and the client's CPU is
    taken from what the server leaves.
    """
    pinned(0)
    os.nice(19)


def start_server(directory: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """
    A store with alice, her password at bcrypt cost 4, and the server pinned to core 0.
    """
    store = os.path.join(directory, "s.db")
    passwd = os.path.join(directory, "passwd")
    subprocess.run([BIN / "sshfinger", "init", "--store", store], check=True, capture_output=True)
    subprocess.run(
        [BIN / "sshfinger", "passwd", "alice", "--file", passwd, "--rounds", "4", "--password-stdin"],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    finger, ssh = free_port(), free_port()
    server = subprocess.Popen(
        [BIN / "twistd", "--nodaemon", "--pidfile=", "sshfinger", "--store", store, "--auth", f"file:{passwd}",
         "--finger", f"tcp:{finger}:interface=127.0.0.1", "--ssh", f"tcp:{ssh}:interface=127.0.0.1",
         "--keys", os.path.join(directory, "keys")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory, preexec_fn=lambda: pinned(0),
    )  # fmt: skip
    return server, finger, ssh


def under(finger: int, ssh: int, runs: int, *args: str, flood_only: bool = False) -> list[float]:
    """
    Finger latencies while the Conch client runs C{args} C{runs} times in a row; with C{flood_only}, only
    while each flood runs (the client logs in first, then is told to go).
    """
    loaded: list[float] = []
    for _ in range(runs):
        client = subprocess.Popen(
            [sys.executable, FLOOD, str(ssh), "alice", PASSWORD, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "FLOOD_WAIT": "1"} if flood_only else dict(os.environ),
            preexec_fn=hostile,
        )  # fmt: skip
        assert client.stdin is not None and client.stdout is not None
        if flood_only:
            client.stdout.readline()  # "ready": logged in
            time.sleep(0.3)
        stop = threading.Event()
        worker = threading.Thread(target=lambda stop=stop: loaded.extend(finger_latencies(finger, stop)))
        worker.start()
        try:
            if flood_only:
                client.stdin.write("go\n")
                client.stdin.flush()
            client.communicate(timeout=300)
        finally:
            stop.set()
            worker.join()
    return loaded


def main() -> None:
    """
    Print idle, login and flood figures side by side.
    """
    pinned(1)
    directory = tempfile.mkdtemp(prefix="bench-floods-")
    server, finger, ssh = start_server(directory)
    try:
        finger_latencies(finger, threading.Event(), seconds=3.0)  # the server is up and warm
        idle = finger_latencies(finger, threading.Event(), seconds=3.0)
        rows = [
            ("idle (3 s)", idle),
            ("5 logins, no flood", under(finger, ssh, 5, "login")),
            ("3 x 10 000 window changes, 4 000 chars", under(finger, ssh, 3, "resize", "10000", "4000")),
            ("  the same, login excluded", under(finger, ssh, 3, "resize", "10000", "4000", flood_only=True)),
            ("5 x 1 MB exec", under(finger, ssh, 5, "exec", "1000000")),
            ("  the same, login excluded", under(finger, ssh, 5, "exec", "1000000", flood_only=True)),
        ]
        base = p99(idle)
        print("finger latency every 5 ms; server on core 0, clients on core 1")
        for name, values in rows:
            print(f"  {name:40s} p99 {p99(values) * 1e3:6.2f} ms  ({p99(values) / base:4.2f}x idle, {len(values)} queries)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
