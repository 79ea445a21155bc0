"""
Issue 17's hostile floods (#3 group exchange, #4 window changes, #5 long exec) and what they do to finger's p99.

The server runs alone on core 0.  The prober is its own process, one thread at a real-time priority on core 1:
a query for alice is due every 5 ms (non-blocking, any number in flight) and its latency counts from when it was
due, so a server that stalls delays every query due meanwhile.  The clients run on core 1 at nice 19, where the
prober preempts them.  (Earlier versions probed from a pool of threads in the bench's own process, beside the
clients: a nice-19 busy loop on that core, with no server work at all, put 2.5 ms on that prober's p99, and the
bench's own subprocess handling shared its GIL.  Those figures, 4.6-5.5 ms, were the prober's.)  Each row takes
the queries due while its clients ran, over L{ROUNDS} rounds; idle is the 2 s before every row, so that the
machine's drift over the run weighs on both alike.

Rows: idle; 5 Conch password logins (the Conch client asks for the RSA-3072 host key); 3 window-change floods and
5 1 MB exec floods, each with its login and then without it (from the client's "go" after its login); 10 OpenSSH
clients asking for 8192-bit group exchange (served 3072 bits) spread over 3 s and all at once, beside 10
curve25519 handshakes, the baseline every SSH client costs.  Printed with each p99's ratio to idle's.

Run: .venv/bin/python bench/floods.py   (the installed twistd sshfinger on free loopback ports, ~2 min)
"""

from __future__ import annotations

import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.test_shell_dos import FLOOD, p99  # noqa: E402
from tests.process import free_port, wait_until  # noqa: E402

BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1"
SSH_COMMON = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
              "-o", "IdentitiesOnly=yes", "-i", "/dev/null"]  # fmt: skip
GEX = ["KexAlgorithms=diffie-hellman-group-exchange-sha256", "MACs=hmac-sha2-512", "Ciphers=aes256-ctr"]
CURVE = ["KexAlgorithms=curve25519-sha256"]
#: Rounds of every row (the machine's own noise moves a single round's idle p99 between 0.8 and 3 ms).
ROUNDS = 3


def pinned(core: int) -> None:
    """
    Run the calling process (and what it starts) on C{core} only.
    """
    os.sched_setaffinity(0, {core})


def hostile() -> None:
    """
    A client's place: the prober's core, at nice 19 (the prober runs at a real-time priority; see the module's
    text).
    """
    pinned(1)
    os.nice(19)


def probe(port: int, out: str) -> None:
    """
    The prober's process (C{floods.py --probe PORT FILE}): one thread, at a real-time priority on core 1,
    that starts a query for alice every 5 ms (non-blocking, any number in flight) until its standard input
    closes, then writes each query's due time and latency to C{FILE}, one pair a line.
    """
    selector = selectors.DefaultSelector()
    samples: list[tuple[float, float]] = []
    selector.register(sys.stdin, selectors.EVENT_READ, None)
    started = time.monotonic()
    n = 0
    running = True
    while running or len(selector.get_map()) > 1:
        due = started + n * 0.005
        if running and time.monotonic() >= due:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            selector.register(s, selectors.EVENT_WRITE, [due, False])
            n += 1
            continue
        for key, _ in selector.select(max(0.0, due - time.monotonic()) if running else 1.0):
            if key.data is None:
                sys.stdin.readline()
                running = False
                continue
            s, state = key.fileobj, key.data
            assert isinstance(s, socket.socket)
            try:
                if not state[1]:
                    s.send(b"alice\r\n")
                    state[1] = True
                    selector.modify(s, selectors.EVENT_READ, state)
                    continue
                if s.recv(4096):
                    continue
            except OSError:
                pass  # refused or reset: counts for the time it took
            samples.append((state[0], time.monotonic() - state[0]))
            selector.unregister(s)
            s.close()
    with open(out, "w") as f:
        f.writelines(f"{due!r} {latency!r}\n" for due, latency in samples)


class Prober:
    """
    The prober's process (L{probe}), and its samples once stopped.
    """

    def __init__(self, port: int, directory: str) -> None:
        """
        Start probing finger on C{port}.
        """
        self.out = os.path.join(directory, "samples")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--probe", str(port), self.out], stdin=subprocess.PIPE,
            preexec_fn=lambda: (pinned(1), os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))),
        )  # fmt: skip
        self.samples: list[tuple[float, float]] = []

    def stop(self) -> None:
        """
        Stop probing and read the samples.
        """
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()
        with open(self.out) as f:
            self.samples = [(float(due), float(latency)) for due, latency in (line.split() for line in f)]

    def between(self, windows: list[tuple[float, float]]) -> list[float]:
        """
        The latencies of the queries due within any of C{windows}.
        """
        return [latency for due, latency in self.samples if any(a <= due < b for a, b in windows)]


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
    for port in (finger, ssh):
        wait_until(lambda port=port: accepts(port), timeout=30)
    return server, finger, ssh


def accepts(port: int) -> bool:
    """
    Whether a connection to C{port} on loopback is accepted.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def conch(ssh: int, runs: int, *args: str, flood_only: bool = False) -> list[tuple[float, float]]:
    """
    Run the Conch flood client with C{args} C{runs} times in a row; return the time windows to count: each whole
    run, or with C{flood_only} each run from its "go" (given once it has logged in) to its end.
    """
    windows = []
    for _ in range(runs):
        started = time.monotonic()
        client = subprocess.Popen(
            [sys.executable, FLOOD, str(ssh), "alice", PASSWORD, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "FLOOD_WAIT": "1"} if flood_only else dict(os.environ), preexec_fn=hostile,
        )  # fmt: skip
        assert client.stdin is not None and client.stdout is not None
        if flood_only:
            client.stdout.readline()  # "ready": logged in
            time.sleep(0.3)
            started = time.monotonic()
            client.stdin.write("go\n")
            client.stdin.flush()
        client.communicate(timeout=300)
        windows.append((started, time.monotonic()))
    return windows


def openssh(ssh: int, options: list[str], delays: list[float]) -> list[tuple[float, float]]:
    """
    Run one OpenSSH handshake (refused at authentication) per delay, each starting that many seconds in.
    """
    command = ["ssh", "-p", str(ssh), *[a for o in options for a in ("-o", o)], *SSH_COMMON, "x@127.0.0.1"]

    def one(delay: float) -> None:
        time.sleep(delay)
        subprocess.run(command, capture_output=True, timeout=300, preexec_fn=hostile)

    started = time.monotonic()
    with ThreadPoolExecutor(len(delays)) as pool:
        list(pool.map(one, delays))
    return [(started, time.monotonic())]


def main() -> None:
    """
    Print every row beside idle's.
    """
    pinned(1)
    directory = tempfile.mkdtemp(prefix="bench-floods-")
    server, finger, ssh = start_server(directory)
    prober = Prober(finger, directory)
    spread, burst = [0.3 * n for n in range(10)], [0.0] * 10
    floods: list[tuple[str, Callable[[], list[tuple[float, float]]]]] = [
        ("5 logins, no flood", lambda: conch(ssh, 5, "login")),
        ("3 x 10 000 window changes, 4 000 chars", lambda: conch(ssh, 3, "resize", "10000", "4000")),
        ("  the same, after the login", lambda: conch(ssh, 3, "resize", "10000", "4000", flood_only=True)),
        ("5 x 1 MB exec", lambda: conch(ssh, 5, "exec", "1000000")),
        ("  the same, after the login", lambda: conch(ssh, 5, "exec", "1000000", flood_only=True)),
        ("10 curve25519 handshakes over 3 s", lambda: openssh(ssh, CURVE, spread)),
        ("10 GEX handshakes (3072) over 3 s", lambda: openssh(ssh, GEX, spread)),
        ("10 curve25519 handshakes at once", lambda: openssh(ssh, CURVE, burst)),
        ("10 GEX handshakes (3072) at once", lambda: openssh(ssh, GEX, burst)),
    ]
    idle: list[tuple[float, float]] = []
    windows: list[list[tuple[float, float]]] = [[] for _ in floods]
    try:
        time.sleep(3.0)  # the server is up and warm
        for _ in range(ROUNDS):
            for (_, flood), counted in zip(floods, windows):
                started = time.monotonic()
                time.sleep(2.0)
                idle.append((started, time.monotonic()))
                counted.extend(flood())
        time.sleep(0.1)
    finally:
        prober.stop()
        server.terminate()
        server.wait()
    base = p99(prober.between(idle))
    print(
        f"finger every 5 ms; server alone on core 0, prober (real-time) and clients (nice 19) on core 1; {ROUNDS} rounds"
    )
    for name, counted in [("idle (2 s before each row)", idle)] + [(name, w) for (name, _), w in zip(floods, windows)]:
        values = prober.between(counted)
        print(
            f"  {name:40s} p50 {statistics.median(values) * 1e3:5.2f}  p99 {p99(values) * 1e3:6.2f} ms  "
            f"({p99(values) / base:4.2f}x idle, {len(values)} queries)"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        probe(int(sys.argv[2]), sys.argv[3])
    else:
        main()
