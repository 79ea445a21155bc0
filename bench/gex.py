"""
Issue 17 #3: the cost of Diffie-Hellman group exchange before authentication, and what it does to finger.

1. Server-side DH work per handshake (start + finish, as Conch does it through the cryptography library), for
   the RFC 3526 groups sshfinger offers, side by side with a group of the same size from /etc/ssh/moduli (what
   it offered before; the cryptography library checks an unknown group's primes, on the reactor thread).
2. Finger's latency (queries back to back) idle, during 10 curve25519 handshakes (the baseline every SSH client
   costs), and during 10 hostile GEX handshakes asking for 8192 bits (served the largest group offered, 3072
   bits): spread over 3 s and all at once.

Run: .venv/bin/python bench/gex.py   (starts the installed twistd sshfinger on free loopback ports)
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric import dh
from twisted.conch.openssh_compat import primes

from sshfinger.ssh.groups import gex_groups

BIN = os.path.dirname(sys.executable)
MODULI = "/etc/ssh/moduli"
SSH_COMMON = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
              "-o", "IdentitiesOnly=yes", "-i", "/dev/null"]  # fmt: skip


def dh_seconds(g: int, p: int, rounds: int = 1) -> float:
    """
    CPU seconds of one server-side exchange in the group (g, p), as Conch does it (the mean of C{rounds}).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pow(g, int.from_bytes(os.urandom(64), "big"), p)  # the client's public value (client's work)
        started = time.process_time()
        for _ in range(rounds):
            numbers = dh.DHParameterNumbers(p, g)
            ours = numbers.parameters().generate_private_key()
            ours.public_key().public_numbers()
            ours.exchange(dh.DHPublicNumbers(theirs, numbers).public_key())
    return (time.process_time() - started) / rounds


def free_port() -> int:
    """
    A loopback port that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def finger_once(port: int) -> float:
    """
    One query for alice; its latency in seconds.
    """
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(b"alice\r\n")
        while s.recv(65536):
            pass
    return time.perf_counter() - started


def figures(values: list[float]) -> str:
    """
    p50, p99 and max in ms, and the count.
    """
    p99 = statistics.quantiles(values, n=100)[98]
    return f"p50 {statistics.median(values) * 1e3:6.1f}  p99 {p99 * 1e3:6.1f}  max {max(values) * 1e3:6.1f} ms  ({len(values)} queries)"


def main() -> None:
    """
    Print both tables.
    """
    print("Server-side DH work per handshake (CPU ms, on the reactor thread):")
    moduli = primes.parseModuliFile(MODULI) if os.path.exists(MODULI) else {}
    for bits, groups in gex_groups(8192).items():
        ours = dh_seconds(*groups[0], rounds=20)
        theirs = f"{dh_seconds(*moduli[bits][0]) * 1e3:9.0f}" if bits in moduli and bits <= 4096 else "  (skipped)"
        print(f"  {bits:5d} bits  RFC 3526: {ours * 1e3:6.1f}   /etc/ssh/moduli: {theirs}")
    directory = tempfile.mkdtemp(prefix="bench-gex-")
    finger, ssh = free_port(), free_port()
    server = subprocess.Popen(
        [os.path.join(BIN, "twistd"), "--nodaemon", "--pidfile=", "sshfinger", "--store", "memory",
         "--finger", f"tcp:{finger}:interface=127.0.0.1", "--ssh", f"tcp:{ssh}:interface=127.0.0.1",
         "--keys", os.path.join(directory, "keys")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory,
    )  # fmt: skip
    try:
        for port in (finger, ssh):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
        for _ in range(50):
            finger_once(finger)
        print("\nFinger latency for alice, queries back to back:")
        print(f"  {'idle':34s} {figures([finger_once(finger) for _ in range(1000)])}")

        def handshakes(options: list[str], delays: list[float]) -> list[float]:
            command = ["ssh", "-p", str(ssh), *[a for o in options for a in ("-o", o)], *SSH_COMMON, "x@127.0.0.1"]
            stop, during = threading.Event(), []

            def probe() -> None:
                while not stop.is_set():
                    during.append(finger_once(finger))

            prober = threading.Thread(target=probe)
            prober.start()

            def one(delay: float) -> None:
                time.sleep(delay)
                subprocess.run(command, capture_output=True, timeout=300)

            with ThreadPoolExecutor(len(delays)) as pool:
                list(pool.map(one, delays))
            time.sleep(0.2)
            stop.set()
            prober.join()
            return during

        curve = ["KexAlgorithms=curve25519-sha256"]
        gex = ["KexAlgorithms=diffie-hellman-group-exchange-sha256", "MACs=hmac-sha2-512", "Ciphers=aes256-ctr"]
        spread, burst = [0.3 * n for n in range(10)], [0.0] * 10
        for name, options, delays in [
            ("10 curve25519 over 3 s", curve, spread),
            ("10 GEX 8192 over 3 s", gex, spread),
            ("10 curve25519 at once", curve, burst),
            ("10 GEX 8192 at once", gex, burst),
        ]:
            print(f"  {name:34s} {figures(handshakes(options, delays))}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
