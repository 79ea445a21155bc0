"""
Several C{twistd sshfinger} nodes on one PostgreSQL database, driven by the real OpenSSH client and raw finger:
edits propagate, concurrent writers lose nothing, a node killed mid-stream or a killed LISTEN connection loses
no acknowledged edit, and a database crash (C{pg_ctl -m immediate}, fsync on) is survived.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from tests.pgcluster import PostgresCluster, crash_cluster, shared_cluster
from tests.process import ServerProcess, run_tool
from tests.sshclient import PASSWORD, ssh_run


def database_name(url: str) -> str:
    """
    The database name in a URL made by L{PostgresCluster.url}.
    """
    return url.split("/")[3].split("?")[0]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> float:
    """
    Wait until C{condition()} holds; return the seconds it took.

    @raise AssertionError: after C{timeout} seconds.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


def status_of(node: ServerProcess, login: str) -> str | None:
    """
    The status line raw finger shows on C{node} for C{login}, or L{None}.
    """
    try:
        answer = node.finger(f"{login}\r\n".encode()).decode("utf-8", "replace")
    except OSError:
        return None
    match = re.search(r"^Status: (.*?)\r?$", answer, re.MULTILINE)
    return match.group(1) if match else None


class ClusterMixin:
    """
    Build a site on a database (demo accounts, a passwd file) and start nodes on it.
    """

    def make_site(self, cluster: PostgresCluster) -> None:
        """
        Create a database with the demo accounts and C{bob}, and a passwd file for admin at bcrypt cost 4.
        """
        case: SynchronousTestCase = self  # type: ignore[assignment]
        self.cluster = cluster
        self.url = cluster.new_database()
        self.directory = os.path.abspath(case.mktemp())
        os.makedirs(self.directory)
        for args in (("init", "--store", self.url), ("add", "bob", "Bob", "--store", self.url)):
            result = run_tool(*args)
            case.assertEqual(result.returncode, 0, result.stderr)
        result = run_tool(
            "passwd", "admin", "--file", os.path.join(self.directory, "passwd"), "--rounds", "4", "--password-stdin",
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        case.assertEqual(result.returncode, 0, result.stderr)

    def start_node(self, name: str) -> ServerProcess:
        """
        Start one node (finger and SSH) on the site's database.
        """
        case: SynchronousTestCase = self  # type: ignore[assignment]
        directory = os.path.join(self.directory, name)
        os.makedirs(directory, exist_ok=True)
        args = ["--store", self.url, "--auth", f"file:{os.path.join(self.directory, 'passwd')}", "--admin", "admin"]
        return ServerProcess(case, directory, args, ssh=True).start()

    def wait_following(self, count: int) -> None:
        """
        Wait until C{count} nodes hold a LISTEN connection to the database (they follow it).
        """
        query = (
            "SELECT count(*) FROM pg_stat_activity"
            f" WHERE application_name = 'sshfinger-listen' AND datname = '{database_name(self.url)}'"
        )
        wait_for(lambda: self.cluster.execute(query)[0][0] == count, interval=0.05)

    def set_status(self, node: ServerProcess, login: str, status: str) -> int:
        """
        Set C{login}'s status over SSH as admin on C{node}; return ssh's exit status.
        """
        return ssh_run(node, "admin", ["set", login, "status", status]).returncode

    def audit_statuses(self, login: str) -> list[str]:
        """
        Every status C{login} was given, in commit order, from the database's change log.
        """
        rows = self.cluster.execute(
            f"SELECT new FROM change_log WHERE login = '{login}' AND field = 'status' AND actor_channel = 'exec'"
            " ORDER BY seq",
            database_name(self.url),
        )
        return [row[0] for row in rows]


class ThreeNodesTests(ClusterMixin, SynchronousTestCase):
    """
    Three nodes on one database of the shared (fsync off) cluster.
    """

    def setUp(self) -> None:
        """
        Make the site and start three nodes.
        """
        self.make_site(shared_cluster())
        self.nodes = [self.start_node(f"node{i}") for i in range(3)]
        self.wait_following(3)

    def test_edit_visible_everywhere(self) -> None:
        """
        An edit made over SSH on one node shows in raw finger on the two others within a second of ssh
        returning 0.
        """
        for n in range(3):
            self.assertEqual(self.set_status(self.nodes[0], "alice", f"edit {n}"), 0)
            for other in self.nodes[1:]:
                took = wait_for(lambda other=other, n=n: status_of(other, "alice") == f"edit {n}", timeout=5)
                self.assertLess(took, 1.0)

    def test_concurrent_writers(self) -> None:
        """
        Two nodes take a stream of edits at once (one of alice, one of bob, and one field both edit): every
        acknowledged edit is in the change log in the order each node made it, and every node ends with the
        same values.
        """
        acked: dict[str, list[str]] = {"alice": [], "bob": []}

        def stream(node: ServerProcess, login: str) -> None:
            for n in range(12):
                if self.set_status(node, login, f"{login}-{n}") == 0:
                    acked[login].append(f"{login}-{n}")

        threads = [
            threading.Thread(target=stream, args=(self.nodes[0], "alice")),
            threading.Thread(target=stream, args=(self.nodes[1], "bob")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for login in ("alice", "bob"):
            self.assertEqual(len(acked[login]), 12)
            self.assertEqual(self.audit_statuses(login), acked[login])
            for node in self.nodes:
                wait_for(lambda node=node, login=login: status_of(node, login) == acked[login][-1])

    def test_sigkill_mid_stream(self) -> None:
        """
        A node is SIGKILLed while it takes a stream of edits: every edit whose ssh returned 0 is in the change
        log and the other nodes show the newest committed one.
        """
        acked: list[int] = []
        stop = threading.Event()

        def stream() -> None:
            for n in range(1000):
                if stop.is_set():
                    return
                if self.set_status(self.nodes[0], "alice", str(n)) == 0:
                    acked.append(n)

        thread = threading.Thread(target=stream)
        thread.start()
        wait_for(lambda: len(acked) >= 8, timeout=30)
        self.nodes[0].stop(signal.SIGKILL)
        stop.set()
        thread.join()
        committed = [int(value) for value in self.audit_statuses("alice")]
        self.assertTrue(set(acked) <= set(committed), (acked, committed))
        self.assertEqual(committed, sorted(committed))
        for node in self.nodes[1:]:
            wait_for(lambda node=node: status_of(node, "alice") == str(committed[-1]))

    def test_listener_killed(self) -> None:
        """
        The server terminates every node's LISTEN connection: edits made meanwhile reach the other nodes once
        they reconnect, and each node's log says so once.
        """
        killed = self.cluster.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE application_name = 'sshfinger-listen' AND datname = '{database_name(self.url)}'"
        )
        self.assertEqual(len(killed), 3)
        self.assertEqual(self.set_status(self.nodes[0], "alice", "after the kill"), 0)
        self.assertEqual(self.set_status(self.nodes[0], "bob", "also"), 0)
        for node in self.nodes[1:]:
            wait_for(lambda node=node: status_of(node, "alice") == "after the kill")
            wait_for(lambda node=node: status_of(node, "bob") == "also")
        for node in self.nodes:
            wait_for(lambda node=node: "Following the changes" in node.log())
            self.assertEqual(node.log().count("Lost the change feed"), 1)


class DatabaseCrashTests(ClusterMixin, SynchronousTestCase):
    """
    A cluster of its own with fsync on, crashed with C{pg_ctl -m immediate} and started again.
    """

    def setUp(self) -> None:
        """
        Start a crash-safe cluster, make the site and start two nodes.
        """
        cluster = crash_cluster()
        self.addCleanup(cluster.destroy)
        self.make_site(cluster)
        self.nodes = [self.start_node(f"node{i}") for i in range(2)]
        self.wait_following(2)

    def test_crash_and_recover(self) -> None:
        """
        Every edit acknowledged before the crash is there after it; during the outage finger keeps answering,
        edits fail at once with a clear error and exit status 1, and each node's log says what is wrong once;
        after the restart the nodes follow again without a restart of their own.
        """
        acked = []
        for n in range(5):
            self.assertEqual(self.set_status(self.nodes[0], "alice", f"before {n}"), 0)
            acked.append(f"before {n}")
        wait_for(lambda: status_of(self.nodes[1], "alice") == "before 4")
        self.cluster.stop("immediate")

        self.assertEqual(status_of(self.nodes[1], "alice"), "before 4")
        for node in self.nodes:
            wait_for(lambda node=node: "Lost the change feed" in node.log(), timeout=15)
        started = time.monotonic()
        result = ssh_run(self.nodes[0], "admin", ["set", "alice", "status", "during"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot save change", result.stderr)
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertIn("Status: before 4", self.nodes[0].finger(b"alice\r\n").decode())
        time.sleep(3)  # several ticks of the feed's timer while the database is down

        self.cluster.start()
        self.assertEqual(self.audit_statuses("alice"), acked)
        wait_for(lambda: self.set_status(self.nodes[0], "alice", "after") == 0, timeout=20, interval=0.5)
        for node in self.nodes:
            wait_for(lambda node=node: status_of(node, "alice") == "after", timeout=15)
            log = node.log()
            self.assertEqual(log.count("Lost the change feed"), 1, log)
            self.assertLessEqual(log.count("Cannot read the changes"), 1, log)
            self.assertIn("Following the changes", log)
