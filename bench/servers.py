"""
The bench's data directory (store, passwd file, client key) and every server process it starts, each pinned to
the server core, logging to its own file, and stopped by L{Servers.stop}.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from common import HOST, PASSWORD, SERVER_CORE, free_port, thread_affinities

BENCH = Path(__file__).resolve().parent


def setup_step(args: list[str], stdin: str | None = None) -> None:
    """
    Run one preparation command; stop the bench with its error output if it fails.
    """
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr.strip()[-500:]}")


class Servers:
    """
    The data directory (store, passwd file, client key) and every server process, stopped by L{stop}.
    """

    def __init__(self, venv: Path, directory: Path, pinned: bool) -> None:
        """
        @param pinned: start the servers on L{SERVER_CORE} only.
        """
        self.venv, self.directory = venv, directory
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.pinned = pinned
        self.logs: list[str] = []
        self.affinities: dict[str, list[list[int]]] = {}
        self.store = directory / "bench.db"
        self.passwd = directory / "passwd"
        self.key = directory / "id_ed25519"
        self.keys_dir = directory / "hostkeys"
        self.tool = tool = str(venv / "bin" / "sshfinger")
        setup_step([tool, "init", "--store", str(self.store)])
        setup_step([tool, "passwd", "admin", "--file", str(self.passwd), "--password-stdin", "--rounds", "12"],
                   PASSWORD + "\n")  # fmt: skip
        setup_step(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        setup_step([tool, "key", "add", "admin", f"{self.key}.pub", "--store", str(self.store)])

    def start(self, name: str, args: list[str], ports: list[int], env: dict[str, str] | None = None) -> int:
        """
        Start a server process named C{name} (its log: C{NAME.log} in the directory) and wait until it listens on
        every one of C{ports}; return its process id.

        @raise SystemExit: if it exits or does not listen within 60 s (with the tail of its log).
        """
        log = open(self.directory / f"{name}.log", "wb")
        pin = (lambda: os.sched_setaffinity(0, {SERVER_CORE})) if self.pinned else None
        process = subprocess.Popen(
            args, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=pin, env={**os.environ, **(env or {})},
        )  # fmt: skip
        log.close()
        self.processes.append((name, process))
        self.logs.append(name)
        deadline = time.monotonic() + 60
        for port in ports:
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{name} exited early ({process.returncode}):\n{self.log_tail(name)}")
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{name}: nothing listens on {port} after 60 s:\n{self.log_tail(name)}")
                    time.sleep(0.05)
        self.affinities[name] = sorted(sorted(cpus) for cpus in thread_affinities(process.pid))
        return process.pid

    def log_tail(self, name: str, lines: int = 15) -> str:
        """
        The last lines of a server's log.
        """
        try:
            text = (self.directory / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self, name: str) -> dict[str, int]:
        """
        Lines of a server's log that look like trouble (tracebacks, errors, warnings), without their time stamp
        and with numbers masked, counted.
        """
        try:
            text = (self.directory / f"{name}.log").read_text(errors="replace")
        except OSError:
            return {}
        needles = ("Traceback", "#critical", "#error", "#warn", "Unhandled", "CRITICAL", "ERROR")
        counts: dict[str, int] = {}
        for line in text.splitlines():
            if any(needle in line for needle in needles):
                message = re.sub(r"\d+", "N", re.sub(r"^\S+[+-]\d{4} ", "", line))
                counts[message] = counts.get(message, 0) + 1
        return counts

    def keep_logs(self, target: Path) -> None:
        """
        Copy every server log into C{target}.
        """
        target.mkdir(parents=True, exist_ok=True)
        for name in self.logs:
            source = self.directory / f"{name}.log"
            if source.exists():
                shutil.copy(source, target / source.name)

    def start_baseline(self, name: str = "baseline", backlog: int | None = None, launcher: tuple[str, ...] = ()) -> int:
        """
        The tutorial server; return its port.

        @param backlog: its listen backlog (Twisted's default is 50).
        @param launcher: a command that runs the Python script named by its next argument (L{phase_probe});
            by default the venv's python.
        """
        port = free_port()
        args = [*(launcher or [str(self.venv / "bin" / "python")]), str(BENCH / "baseline_finger.py"), str(port)]
        self.start(name, args + ([str(backlog)] if backlog else []), [port])
        return port

    def start_sshfinger(
        self,
        name: str,
        ssh: bool,
        quiet_log: bool = False,
        as_unit: bool = False,
        launcher: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
    ) -> tuple[int, int | None]:
        """
        C{twistd -n --pidfile= sshfinger}, finger only or with SSH; return the finger and SSH ports.

        @param quiet_log: drop info events (L{quiet_log.observer}).
        @param as_unit: run it as the systemd unit does: the finger queries in an C{--access-log} file (next to
            the store) rather than in twistd's log, and the rest through C{--logger sshfinger.ops.logs.observer}.
        @param launcher: a command that runs the Python script named by its next argument, here the venv's
            C{twistd} (L{phase_probe}); by default that script runs by itself.
        @param extra: more C{twistd sshfinger} options (C{--no-answer-on-accept}).
        """
        finger = free_port()
        ssh_port = free_port() if ssh else None
        args = [*launcher, str(self.venv / "bin" / "twistd"), "-n", "--pidfile="]
        env = None
        if quiet_log:
            args += ["--logger", "quiet_log.observer"]
            env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))}
        elif as_unit:
            args += ["--logger", "sshfinger.ops.logs.observer"]
        args += [
            "sshfinger", "--finger", f"tcp:{finger}:interface={HOST}",
            "--store", str(self.store),
            # All load comes from 127.0.0.1: lift the per-address limit (default 20) above the concurrency.
            "--max-per-peer", "1000",
        ]  # fmt: skip
        if as_unit:
            args += ["--access-log", str(self.store.parent / f"{name}-access.log")]
        args += list(extra)
        if ssh:
            args += ["--ssh", f"tcp:{ssh_port}:interface={HOST}", "--keys", str(self.keys_dir),
                     "--auth", f"file:{self.passwd}",
                     # and the SSH one (default 10): the parallel logins all come from 127.0.0.1 too.
                     "--max-ssh-per-peer", "1000"]  # fmt: skip
        else:
            args += ["--no-ssh"]
        self.start(name, args, [finger] + ([ssh_port] if ssh_port else []), env)
        return finger, ssh_port

    def stop(self, name: str | None = None) -> None:
        """
        Stop one server (by name) or all: SIGTERM, then SIGKILL after 10 s.
        """
        for proc_name, process in self.processes:
            if name is not None and proc_name != name:
                continue
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)

    def pid(self, name: str) -> int:
        """
        The process id of a running server.
        """
        return next(process.pid for proc_name, process in self.processes if proc_name == name)


# --------------------------------------------------------------------------------------------------- table
