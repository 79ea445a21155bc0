"""
Hostile conditions against the installed server: crash safety under SIGKILL, malformed finger input, slow
clients from many addresses, and a failing store.  Seeded, bounded in time, loopback only.
"""

from __future__ import annotations

import os
import random
import resource
import select
import signal
import socket
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, clean_env, run_tool
from tests.sshclient import make_key, setup_site, ssh_args

SEED = 1288


class CrashSafetyTests(SynchronousTestCase):
    """
    SIGKILL while a client streams acknowledged edits over SSH.
    """

    def test_sigkill_loses_nothing_acknowledged(self) -> None:
        """
        Every edit the server acknowledged before it was killed is in the store after a restart, and the
        SQLite file passes C{PRAGMA integrity_check}.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        store = setup_site(self, directory)
        key = make_key(directory, "ed25519")
        self.assertEqual(run_tool("key", "add", "admin", key + ".pub", "--store", store).returncode, 0)
        server = ServerProcess(self, directory, ["--store", store, "--admin", "admin"], ssh=True).start()
        client = subprocess.Popen(
            [*ssh_args(server, "admin", key=key), "-T"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env(),
        )  # fmt: skip
        self.addCleanup(client.kill)
        assert client.stdin is not None and client.stdout is not None
        acknowledged: list[str] = []
        deadline = time.monotonic() + 20
        for number in range(1000):
            client.stdin.write(f"set alice status edit-{number}\n".encode())
            client.stdin.flush()
            ready, _, _ = select.select([client.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = client.stdout.readline()
            if line != b"status of alice set\n":
                break
            acknowledged.append(f"edit-{number}")
            if len(acknowledged) >= 60:
                break
        self.assertGreaterEqual(len(acknowledged), 60)
        server.stop(signal.SIGKILL)
        connection = sqlite3.connect(store)
        self.assertEqual(connection.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        connection.close()
        again = ServerProcess(self, directory, ["--store", store], ssh=False).start()
        self.assertIn(acknowledged[-1].encode(), again.finger(b"alice\r\n"))
        audit = run_tool("audit", "1000", "--login", "alice", "--store", store).stdout
        missing = [value for value in acknowledged if f"-> '{value}'" not in audit]
        self.assertEqual(missing, [])


def malformed_queries(rng: random.Random, count: int) -> list[bytes]:
    """
    A seeded mix of hostile finger queries.
    """
    fixed = [
        b"\x00\r\n", b"\xff\xfe\xfd\r\n", b"@" * 400 + b"\r\n", b"/W /W /W\r\n", b"/w\r\n", b"/X alice\r\n",
        b"\x1b[2J\x07alice\r\n", b"alice\r\nbob\r\ncarol\r\n", b"a" * 513, b"\r\n" * 50, b"alice@" + b"@" * 200 + b"\r\n",
        "ålïcé\r\n".encode(), b"\xc3\x28\r\n", b" " * 511 + b"\n", b"@" * 5000 + b"\r\n", b"/W" * 3000 + b"\r\n",
    ]  # fmt: skip
    queries = list(fixed)
    while len(queries) < count:
        length = rng.choice([1, 5, 20, 100, 600])
        body = bytes(rng.getrandbits(8) for _ in range(length))
        queries.append(body + rng.choice([b"\r\n", b"\n", b""]))
    return queries


class FingerAbuseTests(SynchronousTestCase):
    """
    Malformed input and slow clients against a running finger server.
    """

    def setUp(self) -> None:
        """
        A finger-only server with a short idle timeout, and room for a thousand sockets on both sides.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096 <= hard or (soft < hard and hard != resource.RLIM_INFINITY):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        store = os.path.join(directory, "s.db")
        run_tool("init", "--store", store)
        self.server = ServerProcess(
            self, directory, ["--store", store, "--finger-timeout", "2", "--max-per-peer", "20"],
        ).start()

    def ask(self, query: bytes, source: str = "127.0.0.1", half_close: bool = False) -> bytes:
        """
        Send C{query} from C{source} (then close our sending side if C{half_close}); return what arrives before
        the server closes (within 5 s).
        """
        address = ("127.0.0.1", self.server.finger_port)
        with socket.create_connection(address, timeout=5, source_address=(source, 0)) as s:
            s.sendall(query)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
            return b"".join(chunks)

    def test_fuzz(self) -> None:
        """
        300 seeded malformed queries (and a megabyte without a newline): every one is answered or closed within
        the idle timeout, no answer holds a traceback or a control byte, and the server still serves alice.
        """
        rng = random.Random(SEED)
        queries = malformed_queries(rng, 300)

        def probe(item: tuple[int, bytes]) -> tuple[bytes, bytes, float]:
            index, query = item
            started = time.monotonic()
            # Most clients close their side after the query; every 30th keeps the connection open, idle.
            answer = self.ask(query, source=f"127.0.1.{index % 8 + 1}", half_close=index % 30 != 0)
            return query, answer, time.monotonic() - started

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(probe, enumerate(queries)))
        for query, answer, elapsed in results:
            self.assertNotIn(b"Traceback", answer)
            self.assertFalse(set(answer) & (set(range(32)) - {10, 13}), (query, answer))
            self.assertLess(elapsed, 2 + 2, query)
        with socket.create_connection(("127.0.0.1", self.server.finger_port), timeout=5) as s:
            try:
                s.sendall(b"x" * 1_000_000)
            except OSError:
                pass  # the server may close before taking it all
            self.assertIn(b"query too long", s.recv(4096))
        self.assertIn(b"Alice Liddell", self.ask(b"alice\r\n"))
        self.assertNotIn("Traceback", self.server.log())
        with open(f"/proc/{self.server.process.pid}/status") as f:  # type: ignore[union-attr]
            rss_kb = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
        self.assertLess(rss_kb, 200_000)

    def test_slowloris(self) -> None:
        """
        A thousand idle connections from fifty addresses fill their per-address slots; another address is still
        answered, a full address is refused politely, and the idle timeout frees the slots.
        """
        held = []
        for number in range(50):
            source = f"127.0.2.{number + 1}"
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", self.server.finger_port), timeout=5, source_address=(source, 0))
                s.sendall(b"ali")  # never finishes the line
                held.append(s)
        try:
            self.assertEqual(len(held), 1000)
            self.assertIn(b"Alice Liddell", self.ask(b"alice\r\n", source="127.0.0.9"))
            # The last address filled its 20 slots just now (the first ones may already have timed out).
            self.assertIn(b"too many connections", self.ask(b"alice\r\n", source="127.0.2.50"))
            time.sleep(3.0)  # the 2 s timeout, checked every 0.5 s, and a margin
            self.assertIn(b"Alice Liddell", self.ask(b"alice\r\n", source="127.0.2.50"))
        finally:
            for s in held:
                s.close()
