"""
Support for the SSH integration tests: drive the real OpenSSH client (with sshpass for passwords, tmux for a
real terminal) against a L{ServerProcess}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.process import ServerProcess, clean_env, run_tool

COMMON = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
]  # fmt: skip

PASSWORD = "correct horse"


def require(tool: str) -> str:
    """
    The path of a client tool; C{make test} installs them, so a missing one fails the test.
    """
    path = shutil.which(tool)
    if path is None:
        raise AssertionError(f"{tool} is not installed: run the tests with 'make test' (it installs it)")
    return path


def ssh_args(
    server: ServerProcess,
    login: str,
    password: str | None = None,
    key: str | None = None,
    prompts: int = 1,
    bind: str | None = None,
    options: Sequence[str] = (),
) -> list[str]:
    """
    The command line of a real C{ssh} login to C{server} by password (through sshpass) or key.  With
    C{prompts} > 1 there is no sshpass: the caller answers through C{SSH_ASKPASS}.  C{options} are more
    C{-o} settings (C{"Ciphers=aes128-ctr"}), ahead of the usual ones (for ssh, the first value given wins).
    """
    connect = [arg for option in options for arg in ("-o", option)]
    connect += ["-p", str(server.ssh_port), *(["-b", bind] if bind else [])]
    if key is not None:
        auth = ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey"]
        return [require("ssh"), *connect, *COMMON, *auth, f"{login}@127.0.0.1"]
    auth = ["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", f"NumberOfPasswordPrompts={prompts}"]  # fmt: skip
    if prompts > 1:
        return [require("ssh"), *connect, *COMMON, *auth, f"{login}@127.0.0.1"]
    sshpass = [require("sshpass"), "-p", password or PASSWORD]
    return [*sshpass, require("ssh"), *connect, *COMMON, *auth, f"{login}@127.0.0.1"]


def ssh_run(
    server: ServerProcess,
    login: str,
    command: Sequence[str],
    password: str | None = None,
    key: str | None = None,
    stdin: str = "",
    bind: str | None = None,
    options: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """
    Run one exec command over a real SSH connection (from source address C{bind} if given, with more C{-o}
    C{options}) and return the completed client process.
    """
    return subprocess.run(
        [*ssh_args(server, login, password, key, bind=bind, options=options), *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )


def make_key(directory: str, kind: str, bits: int | None = None) -> str:
    """
    Generate a client key pair with the real C{ssh-keygen}; return the private key path.
    """
    path = os.path.join(directory, f"id_{kind}")
    args = [require("ssh-keygen"), "-q", "-t", kind, "-N", "", "-C", f"test-{kind}", "-f", path]
    if bits:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True)
    return path


def setup_site(case: SynchronousTestCase, directory: str) -> str:
    """
    Create a demo store (admin, alice), a passwd file with L{PASSWORD} for both at bcrypt cost 4, and a plain
    user C{bob}; return the store path.
    """
    store = os.path.join(directory, "s.db")
    for args in (("init", "--store", store), ("add", "bob", "Bob", "--store", store)):
        result = run_tool(*args)
        case.assertEqual(result.returncode, 0, result.stderr)
    for login in ("admin", "alice", "bob"):
        result = run_tool(
            "passwd", login, "--file", os.path.join(directory, "passwd"), "--rounds", "4", "--password-stdin",
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        case.assertEqual(result.returncode, 0, result.stderr)
    return store


def start_site(case: SynchronousTestCase) -> tuple[str, str, ServerProcess]:
    """
    Build the demo site (L{setup_site}) in a fresh directory and start the installed server on it, with
    C{--auth file:passwd --admin admin} and SSH; return the directory, the store path and the server.
    """
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    store = setup_site(case, directory)
    server = ServerProcess(
        case, directory, ["--store", store, "--auth", "file:passwd", "--admin", "admin"], ssh=True
    ).start()
    return directory, store, server


class Tmux:
    """
    A real terminal: tmux running a command in a detached session of a given size, on a private server socket.
    """

    def __init__(self, case: SynchronousTestCase, command: Sequence[str], width: int = 100, height: int = 30) -> None:
        """
        Start C{command} in a new tmux session; it is killed at the end of the test.
        """
        self.tmux = require("tmux")
        self.socket = f"sshfinger-test-{os.getpid()}-{id(self)}"
        self.case = case
        env = clean_env()
        env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
        subprocess.run(
            [self.tmux, "-L", self.socket, "-u", "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
             *command],
            check=True,
            env=env,
        )  # fmt: skip
        case.addCleanup(self.kill)

    def keys(self, *keys: str, literal: bool = False) -> None:
        """
        Type keys (tmux key names such as C{Up}, C{C-r}, C{Enter}, or literal text).
        """
        subprocess.run([self.tmux, "-L", self.socket, "send-keys", "-t", "t", *(["-l"] if literal else []), *keys], check=True)

    def type(self, text: str) -> None:
        """
        Type literal text.
        """
        self.keys(text, literal=True)

    def screen(self) -> str:
        """
        The visible screen as text.
        """
        return subprocess.run(
            [self.tmux, "-L", self.socket, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True, check=True
        ).stdout

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """
        Wait until C{text} is on the screen; return the screen.
        """
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen}")
            time.sleep(0.05)

    def resize(self, width: int, height: int) -> None:
        """
        Resize the terminal, as a person resizing a window.
        """
        subprocess.run(
            [self.tmux, "-L", self.socket, "resize-window", "-t", "t", "-x", str(width), "-y", str(height)], check=True
        )

    def kill(self) -> None:
        """
        Stop the tmux server.
        """
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], capture_output=True)


def key_file_mode(path: Path) -> int:
    """
    The permission bits of a file.
    """
    return path.stat().st_mode & 0o777
