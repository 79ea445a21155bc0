"""
The systemd units in C{contrib/systemd} and the socket-activation path they use.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.process import REPO, clean_env, finger, run_tool, venv_tool
from tests.sshclient import PASSWORD, require

UNITS = REPO / "contrib" / "systemd"


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """
    The C{(section, key, value)} entries of a unit file, in order (duplicate keys kept; continuations joined).
    """
    entries, section, pending = [], "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


class UnitFileTests(SynchronousTestCase):
    """
    The unit files say what the README promises.
    """

    def test_socket_order(self) -> None:
        """
        The socket unit listens on 79 then 2222: fd index 0 is finger, 1 is SSH.
        """
        listens = [value for _, key, value in unit_entries(UNITS / "sshfinger.socket") if key == "ListenStream"]
        self.assertEqual(listens, ["79", "2222"])

    def test_service_uses_sockets_and_hardening(self) -> None:
        """
        The service takes both sockets from systemd, runs unprivileged and hardened.
        """
        entries = {(section, key): value for section, key, value in unit_entries(UNITS / "sshfinger.service")}
        command = entries[("Service", "ExecStart")]
        self.assertIn("--finger systemd:domain=INET:index=0", command)
        self.assertIn("--ssh systemd:domain=INET:index=1", command)
        self.assertIn("--nodaemon", command)
        self.assertEqual(entries[("Service", "User")], "sshfinger")
        for key, value in [
            ("NoNewPrivileges", "yes"),
            ("CapabilityBoundingSet", ""),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("ReadWritePaths", "/var/lib/sshfinger"),
            ("SystemCallFilter", "@system-service"),
        ]:
            self.assertEqual(entries[("Service", key)], value, key)


class SocketActivationTests(SynchronousTestCase):
    """
    The installed server started the way systemd starts it: sockets bound by someone else, passed as fds 3 and 4
    with C{LISTEN_FDS}/C{LISTEN_PID}.
    """

    def test_serves_on_passed_sockets(self) -> None:
        """
        Finger and SSH answer on the two passed sockets, and the server listens on no other port.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        store = os.path.join(directory, "s.db")
        self.assertEqual(run_tool("init", "--store", store).returncode, 0)
        passwd = os.path.join(directory, "passwd")
        run_tool("passwd", "admin", "--file", passwd, "--rounds", "4", "--password-stdin", stdin=PASSWORD + "\n")
        sockets = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            sockets.append(s)
        ports = [s.getsockname()[1] for s in sockets]
        high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100 + index) for index, s in enumerate(sockets)]

        def place_fds() -> None:
            for target, fd in enumerate(high, 3):
                os.dup2(fd, target)

        # What systemd (>= 227) sets: the count, and one name per fd (the socket unit name by default).
        env = dict(clean_env(), LISTEN_FDS="2", LISTEN_FDNAMES="sshfinger.socket:sshfinger.socket")
        log_path = os.path.join(directory, "twistd.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", venv_tool("twistd"), "--nodaemon", "--pidfile=",
                 "sshfinger", "--finger", "systemd:domain=INET:index=0", "--ssh", "systemd:domain=INET:index=1",
                 "--store", store, "--keys", os.path.join(directory, "keys"), "--auth", f"file:{passwd}",
                 "--admin", "admin"],
                cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(3, 4, *high), preexec_fn=place_fds,
            )  # fmt: skip
        for fd in high:
            os.close(fd)
        for s in sockets:
            s.close()  # only the server holds them now

        def stop() -> None:
            process.terminate()
            process.wait(15)

        self.addCleanup(stop)
        answer = finger(ports[0], b"alice\r\n", timeout=30)
        self.assertIn(b"Alice Liddell", answer)
        result = subprocess.run(
            [require("sshpass"), "-p", PASSWORD, require("ssh"), "-p", str(ports[1]),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "admin@127.0.0.1", "whoami"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr + Path(log_path).read_text())
        self.assertIn("admin (admin)", result.stdout)
        self.assertEqual(listening_ports(process.pid), set(ports))


def listening_ports(pid: int) -> set[int]:
    """
    The TCP ports on which process C{pid} itself holds a listening socket.
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
