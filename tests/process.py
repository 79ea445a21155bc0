"""
Support for the integration tests: run the installed C{twistd sshfinger} on free loopback ports and talk to it
over real sockets.

The tests run under the venv's Python (C{make test}); the installed console scripts sit beside it.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def venv_tool(name: str) -> str:
    """
    Return the path of an installed console script (C{twistd}, C{sshfinger}) beside the running Python.

    @raise AssertionError: when it is not installed: run the suite through C{make test}.
    """
    path = BIN / name
    if not path.exists():
        raise AssertionError(f"{path} is missing: run the tests with 'make test' (it installs the package)")
    return str(path)


def free_port() -> int:
    """
    Return a TCP port that was free a moment ago on IPv4 and, where the host has IPv6, on IPv6 too (a server
    started with a default, dual-stack endpoint binds both).
    """
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.bind(("::", 0))
                return int(s.getsockname()[1])
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """
    The environment for child processes: no PYTHONPATH, so they import the installed package.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def finger(port: int, query: bytes, timeout: float = 5.0, source: str | None = None) -> bytes:
    """
    Send one raw finger query (from the loopback address C{source}, if given) and return everything the server
    sends before it closes.
    """
    source_address = None if source is None else (source, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=source_address) as s:
        s.sendall(query)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def run_tool(*args: str, stdin: str | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """
    Run the installed C{sshfinger} tool and return its completed process (text output).
    """
    return subprocess.run(
        [venv_tool("sshfinger"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=cwd,
        timeout=60,
    )


class ServerProcess:
    """
    One C{twistd --nodaemon sshfinger} process on free loopback ports, stopped at the end of the test.

    @ivar finger_port: the finger port.
    @ivar log_path: where its output goes.
    """

    def __init__(
        self,
        case: SynchronousTestCase,
        directory: str,
        args: Sequence[str] = (),
        ssh: bool = False,
        finger_port: int | None = None,
        twistd_options: Sequence[str] = (),
        descriptor_limit: int | None = None,
    ) -> None:
        """
        @param case: the test; the process is stopped in its cleanup.
        @param directory: working directory (the store, host keys and log live there unless C{args} say
            otherwise).
        @param args: extra C{twistd sshfinger} arguments.
        @param ssh: whether to serve SSH too (on C{ssh_port}, host keys in C{directory/keys}).
        @param finger_port: the finger port (default: a free one).
        @param twistd_options: options for twistd itself (C{-u}, C{-g}).
        @param descriptor_limit: run the server with this C{RLIMIT_NOFILE}, soft and hard (as a small systemd
            C{LimitNOFILE} would), or L{None} for the test's own.
        """
        self.case = case
        self.directory = Path(directory)
        self.finger_port = finger_port or free_port()
        self.twistd_options = list(twistd_options)
        self.descriptor_limit = descriptor_limit
        self.ssh_port = free_port() if ssh else None
        self.log_path = self.directory / "twistd.log"
        self.args = ["--finger", f"tcp:{self.finger_port}:interface=127.0.0.1"]
        if ssh:
            self.args += ["--ssh", f"tcp:{self.ssh_port}:interface=127.0.0.1", "--keys", str(self.directory / "keys")]
        else:
            self.args.append("--no-ssh")
        self.args += list(args)
        self.process: subprocess.Popen[bytes] | None = None

    def _limit_descriptors(self) -> None:
        assert self.descriptor_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.descriptor_limit, self.descriptor_limit))

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """
        Start the server and wait until the finger port accepts connections.
        """
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [venv_tool("twistd"), "--nodaemon", "--pidfile=", *self.twistd_options, "sshfinger", *self.args],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                preexec_fn=self._limit_descriptors if self.descriptor_limit else None,
            )
        self.case.addCleanup(self.stop)
        deadline = time.monotonic() + timeout
        ports = [port for port in (self.finger_port, self.ssh_port) if port is not None]
        while ports and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"twistd exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()
                ports.pop(0)
            except OSError:
                time.sleep(0.05)
        if ports:
            raise AssertionError(f"twistd did not listen within {timeout}s:\n{self.log()}")
        return self

    def finger(self, query: bytes) -> bytes:
        """
        Send one raw finger query to this server.
        """
        return finger(self.finger_port, query)

    def log(self) -> str:
        """
        Everything the server logged so far.
        """
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """
        Stop the server with C{sig} (SIGTERM by default) and return its exit status.
        """
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> float:
    """
    Wait until C{condition()} holds; return the seconds it took.

    @raise AssertionError: if it is still false after C{timeout} seconds.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
