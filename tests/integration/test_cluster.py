"""
Several C{twistd sshfinger} nodes on one PostgreSQL database, driven by the real OpenSSH client and raw finger:
edits propagate, concurrent writers lose nothing, a node killed mid-stream or a killed LISTEN connection loses
no acknowledged edit, and a database crash (C{pg_ctl -m immediate}, fsync on) is survived.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.pgcluster import PostgresCluster, crash_cluster, shared_cluster
from tests.process import REPO, ServerProcess, finger, free_port, run_tool, wait_until
from tests.sshclient import PASSWORD, ssh_run


def database_name(url: str) -> str:
    """
    The database name in a URL made by L{PostgresCluster.url}.
    """
    return url.split("/")[3].split("?")[0]


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
        wait_until(lambda: self.cluster.execute(query)[0][0] == count, interval=0.05)

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
                took = wait_until(lambda other=other, n=n: status_of(other, "alice") == f"edit {n}", timeout=5)
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
                wait_until(lambda node=node, login=login: status_of(node, login) == acked[login][-1])

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
        wait_until(lambda: len(acked) >= 8, timeout=30)
        self.nodes[0].stop(signal.SIGKILL)
        stop.set()
        thread.join()
        committed = [int(value) for value in self.audit_statuses("alice")]
        self.assertTrue(set(acked) <= set(committed), (acked, committed))
        self.assertEqual(committed, sorted(committed))
        for node in self.nodes[1:]:
            wait_until(lambda node=node: status_of(node, "alice") == str(committed[-1]))

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
            wait_until(lambda node=node: status_of(node, "alice") == "after the kill")
            wait_until(lambda node=node: status_of(node, "bob") == "also")
        for node in self.nodes:
            wait_until(lambda node=node: "Following the changes" in node.log())
            self.assertEqual(node.log().count("Lost the change feed"), 1)


    def test_penalties_shared(self) -> None:
        """
        Ten failed logins from one source spread over two nodes (five each, as a brute force behind a load
        balancer would be) get that source refused by every node, as if they had hit one.
        """
        def fail_on(node: ServerProcess) -> None:
            for _ in range(5):
                ssh_run(node, "admin", ["whoami"], password="wrong", bind="127.0.0.5")

        threads = [threading.Thread(target=fail_on, args=(node,)) for node in self.nodes[:2]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for node in self.nodes:
            wait_until(lambda node=node: "SSH connection from 127.0.0.5 refused: penalised" in node.log()
                     or ssh_run(node, "admin", ["whoami"], bind="127.0.0.5").returncode == 255, interval=0.2)  # fmt: skip
            self.assertEqual(ssh_run(node, "admin", ["whoami"], bind="127.0.0.5").returncode, 255)
            self.assertIn("SSH connection from 127.0.0.5 refused: penalised", node.log())
        self.assertEqual(ssh_run(self.nodes[2], "admin", ["whoami"], bind="127.0.0.6").returncode, 0)


    def test_nodes_registered(self) -> None:
        """
        Every node registers itself (named by host and SSH port); C{sshfinger nodes} and the admin shell's
        C{nodes} list all three and, as each node here made its own host keys, warn that they differ (the tool
        exits 1), and so does C{sshfinger doctor}.
        """
        wait_until(lambda: run_tool("nodes", "--store", self.url).stdout.count("sshfinger 0.") == 3, interval=0.2)
        result = run_tool("nodes", "--store", self.url)
        self.assertEqual(result.returncode, 1, result.stderr)
        for node in self.nodes:
            self.assertIn(f":{node.ssh_port}  sshfinger", result.stdout)
        self.assertIn("warning: nodes serve different host keys", result.stdout)
        wait_until(lambda: ssh_run(self.nodes[0], "admin", ["nodes"]).stdout.count("sshfinger 0.") == 3,
                 timeout=15, interval=0.5)  # fmt: skip
        shell = ssh_run(self.nodes[0], "admin", ["nodes"])
        self.assertIn("warning: nodes serve different host keys", shell.stdout)
        doctor = run_tool("doctor", "--store", self.url, "--keys", os.path.join(self.directory, "node0", "keys"))
        self.assertIn("integrity ok, 3 accounts", doctor.stdout)
        self.assertIn("nodes: nodes serve different host keys", doctor.stdout)


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
        logins still work; after the restart the nodes follow again without a restart of their own.
        """
        acked = []
        for n in range(5):
            self.assertEqual(self.set_status(self.nodes[0], "alice", f"before {n}"), 0)
            acked.append(f"before {n}")
        wait_until(lambda: status_of(self.nodes[1], "alice") == "before 4")
        self.cluster.stop("immediate")

        self.assertEqual(status_of(self.nodes[1], "alice"), "before 4")
        for node in self.nodes:
            wait_until(lambda node=node: "Lost the change feed" in node.log(), timeout=15)
        started = time.monotonic()
        result = ssh_run(self.nodes[0], "admin", ["set", "alice", "status", "during"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot save change", result.stderr)
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertIn("Status: before 4", self.nodes[0].finger(b"alice\r\n").decode())
        self.assertEqual(ssh_run(self.nodes[1], "admin", ["whoami"]).returncode, 0)  # logins need no database
        time.sleep(3)  # several ticks of the feed's timer while the database is down

        self.cluster.start()
        self.assertEqual(self.audit_statuses("alice"), acked)
        wait_until(lambda: self.set_status(self.nodes[0], "alice", "after") == 0, timeout=20, interval=0.5)
        for node in self.nodes:
            wait_until(lambda node=node: status_of(node, "alice") == "after", timeout=15)
            wait_until(lambda node=node: "Following the changes" in node.log(), timeout=15)
            log = node.log()
            self.assertEqual(log.count("Lost the change feed"), 1, log)
            self.assertEqual(log.count("Cannot read the changes"), 0, log)  # the feed's line said it already
            self.assertIn("Following the changes", log)


class HAProxyTests(ClusterMixin, SynchronousTestCase):
    """
    Two nodes behind a real HAProxy running C{contrib/cluster/haproxy.cfg} (its addresses replaced by loopback
    ports): logins and finger pass through it, and the nodes see, log and penalise the real client address.
    """

    def setUp(self) -> None:
        """
        Start two nodes with C{haproxy:} endpoints on one database, and HAProxy in front of them.
        """
        self.haproxy_bin = shutil.which("haproxy")
        if self.haproxy_bin is None:
            raise AssertionError("haproxy is not installed: run the tests with 'make test' (make test-tools)")
        self.make_site(shared_cluster())
        self.nodes = []
        for i in range(2):
            node = ServerProcess(
                self, os.path.join(self.directory, f"node{i}"),
                ["--store", self.url, "--auth", f"file:{os.path.join(self.directory, 'passwd')}", "--admin", "admin"],
                ssh=True,
            )  # fmt: skip
            os.makedirs(node.directory, exist_ok=True)
            node.args = [arg.replace("tcp:", "haproxy:tcp:", 1) if arg.startswith("tcp:") else arg for arg in node.args]
            self.nodes.append(node.start())
        self.wait_following(2)
        self.finger_port, self.ssh_port = free_port(), free_port()
        config = (REPO / "contrib" / "cluster" / "haproxy.cfg").read_text()
        config = re.sub(r"^\s*(user|group|daemon)\b.*$", "", config, flags=re.MULTILINE)
        config = config.replace("log /dev/log local0", "log stdout format raw local0")
        config = config.replace("bind :79", f"bind 127.0.0.1:{self.finger_port}")
        config = config.replace("bind :22", f"bind 127.0.0.1:{self.ssh_port}")
        for n, node in enumerate(self.nodes, 1):
            config = config.replace(f"10.0.0.1{n}:1079", f"127.0.0.1:{node.finger_port}")
            config = config.replace(f"10.0.0.1{n}:2222", f"127.0.0.1:{node.ssh_port}")
        config = re.sub(r"^\s*server node3 .*$", "", config, flags=re.MULTILINE)
        path = os.path.join(self.directory, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(config)
        self.haproxy_log = open(os.path.join(self.directory, "haproxy.log"), "wb")
        self.addCleanup(self.haproxy_log.close)
        self.haproxy = subprocess.Popen([self.haproxy_bin, "-db", "-f", path], stdout=self.haproxy_log,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        self.addCleanup(self.stop_haproxy)
        # Both backends of both services up: every node has answered a health check through its haproxy: endpoint.
        wait_until(lambda: self.through(b"alice\r\n").startswith(b"Login: alice"), timeout=15)

    def stop_haproxy(self) -> None:
        """
        Stop HAProxy.
        """
        self.haproxy.terminate()
        self.haproxy.wait(timeout=10)

    def through(self, query: bytes, source: str = "127.0.0.1") -> bytes:
        """
        One raw finger query through HAProxy from the address C{source}.
        """
        try:
            return finger(self.finger_port, query, source=source)
        except OSError:
            return b""

    def test_through_haproxy(self) -> None:
        """
        Through HAProxy: an SSH login from 127.0.0.2 is seen by the node as coming from 127.0.0.2, its edit shows in
        finger (from 127.0.0.3) whichever node answers, and both nodes log finger queries from 127.0.0.3; a
        failed login from 127.0.0.4 is logged with that address.
        """
        proxy = type("Via", (), {"ssh_port": self.ssh_port})()
        result = ssh_run(proxy, "admin", ["whoami"], bind="127.0.0.2")  # type: ignore[arg-type]
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^admin \(admin\) from 127\.0\.0\.2:\d+\n$")
        result = ssh_run(proxy, "admin", ["set", "alice", "status", "through the proxy"], bind="127.0.0.2")  # type: ignore[arg-type]
        self.assertEqual(result.returncode, 0, result.stderr)
        for _ in range(4):  # round robin: both nodes answer
            wait_until(lambda: b"Status: through the proxy" in self.through(b"alice\r\n", "127.0.0.3"))
        for node in self.nodes:
            wait_until(lambda node=node: "finger 127.0.0.3:" in node.log())
        self.assertTrue(any("SSH login accepted: admin from 127.0.0.2:" in node.log() for node in self.nodes))
        result = ssh_run(proxy, "admin", ["whoami"], password="wrong", bind="127.0.0.4")  # type: ignore[arg-type]
        self.assertEqual(result.returncode, 255)
        wait_until(lambda: any("SSH login refused: admin from 127.0.0.4:" in node.log() for node in self.nodes))


    def test_penalties_through_haproxy(self) -> None:
        """
        Ten failed logins from 127.0.0.7 through HAProxy (spread over both nodes by it) get 127.0.0.7 refused
        by both nodes, while another client through the same HAProxy still logs in: the penalty is on the real
        client address, shared by the nodes, never on HAProxy's.
        """
        proxy = type("Via", (), {"ssh_port": self.ssh_port})()

        def fail() -> None:
            ssh_run(proxy, "admin", ["whoami"], password="wrong", bind="127.0.0.7")  # type: ignore[arg-type]

        threads = [threading.Thread(target=fail) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for node in self.nodes:
            wait_until(lambda node=node: "SSH source 127.0.0.7 penalised" in node.log(), interval=0.1)
        for _ in range(2):  # least connections: both nodes are asked in turn
            result = ssh_run(proxy, "admin", ["whoami"], bind="127.0.0.7")  # type: ignore[arg-type]
            self.assertEqual(result.returncode, 255)
        self.assertEqual(ssh_run(proxy, "admin", ["whoami"], bind="127.0.0.8").returncode, 0)  # type: ignore[arg-type]


class StorePasswordTests(ClusterMixin, SynchronousTestCase):
    """
    C{--auth store}: passwords kept with the accounts in the database, shared by every node.
    """

    def setUp(self) -> None:
        """
        Make the site, set admin's password in the store with the tool, and start two nodes with
        C{--auth store} (no passwd file).
        """
        self.make_site(shared_cluster())
        result = run_tool("passwd", "admin", "--store", self.url, "--rounds", "4", "--password-stdin",
                          stdin=PASSWORD + "\n")  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("password set for admin", result.stdout)
        self.nodes = []
        for i in range(2):
            directory = os.path.join(self.directory, f"node{i}")
            os.makedirs(directory)
            args = ["--store", self.url, "--auth", "store", "--admin", "admin"]
            self.nodes.append(ServerProcess(self, directory, args, ssh=True).start())
        self.wait_following(2)

    def test_password_change_applies_everywhere(self) -> None:
        """
        The password set with C{sshfinger passwd --store} logs in on both nodes; changed with the shell's
        C{passwd} on node 0, the new one logs in on node 1 and the old one no longer does; the audit trail says
        the password changed and never shows the hash.
        """
        for node in self.nodes:
            self.assertEqual(ssh_run(node, "admin", ["whoami"]).returncode, 0)
        result = ssh_run(self.nodes[0], "admin", ["passwd"], stdin="a new secret\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        wait_until(lambda: ssh_run(self.nodes[1], "admin", ["whoami"], password="a new secret").returncode == 0,
                 interval=0.2)  # fmt: skip
        self.assertEqual(ssh_run(self.nodes[1], "admin", ["whoami"]).returncode, 255)
        trail = self.cluster.execute(
            "SELECT action, new FROM change_log WHERE field = 'password' ORDER BY seq", database_name(self.url)
        )
        # The store's own change for each hash set (CLI, then shell), once each: the shell adds no record of its own.
        self.assertEqual(trail, [("update", "(set)"), ("update", "(set)")])
        result = run_tool("passwd", "nobody", "--store", self.url, "--password-stdin", stdin="long enough secret\n")
        self.assertEqual(result.returncode, 1)
        self.assertIn("no such user: nobody", result.stderr)
