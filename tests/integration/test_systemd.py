"""
The systemd units in C{contrib/systemd} and the socket-activation path they use.

The unit files are read with a small parser rather than L{configparser}: systemd allows a key more than once
(C{ListenStream=79}, C{ListenStream=2222}) and the order matters, while configparser either rejects the duplicate
(strict) or keeps only the last value.

The integration tests start the installed server exactly the way systemd does: the listening sockets are bound by
someone else and arrive as fds 3 and 4, with C{LISTEN_FDS} and a C{LISTEN_PID} naming the server's own pid.  One
of them also runs it under a copy of the seccomp filter that systemd installs for C{MemoryDenyWriteExecute=yes}.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.process import REPO, clean_env, run_tool, venv_tool
from tests.sshclient import COMMON, PASSWORD, require

UNITS = REPO / "contrib" / "systemd"

#: The state directory of the units (C{StateDirectory=sshfinger}): the store and the host keys.
STATE = "/var/lib/sshfinger"
#: The configuration directory (C{ConfigurationDirectory=sshfinger}): the passwd file.
CONFIG = "/etc/sshfinger"


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """
    The C{(section, key, value)} entries of a unit file, in order: duplicate keys kept, continuation lines joined
    as systemd joins them (the backslash becomes a space), comments and blank lines dropped.
    """
    entries, section, pending = [], "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(path: Path, section: str) -> dict[str, list[str]]:
    """
    The values of every key in one section of a unit file, in order.
    """
    values: dict[str, list[str]] = {}
    for entry_section, key, value in unit_entries(path):
        if entry_section == section:
            values.setdefault(key, []).append(value)
    return values


#: The unit's twistd command, up to the plugin's name (the activation tests run the venv's twistd the same way).
TWISTD = [
    "/opt/sshfinger/venv/bin/twistd", "--nodaemon", "--pidfile=", "--logger", "sshfinger.ops.logs.observer", "sshfinger",
]  # fmt: skip


def exec_start() -> list[str]:
    """
    The service's C{ExecStart} command line, split into words.
    """
    [command] = unit_values(UNITS / "sshfinger.service", "Service")["ExecStart"]
    return command.split()


def service_settings() -> dict[str, Any]:
    """
    The options the service runs with: ExecStart gives only C{--config} with the configuration directory's
    C{sshfinger.toml}, which is C{contrib/systemd/sshfinger.toml}.
    """
    words = exec_start()
    assert words[words.index("sshfinger") + 1 :] == ["--config", f"{CONFIG}/sshfinger.toml"], words
    with open(UNITS / "sshfinger.toml", "rb") as f:
        return tomllib.load(f)


def listen_family(address: str) -> str:
    """
    The address family (as in C{systemd:domain=}) of the socket systemd makes for a C{ListenStream=} value; for a
    bare port, whose family depends on whether the host has IPv6, a description that matches no domain.
    """
    if address.startswith(("/", "@")):
        return "UNIX"
    if address.startswith("["):
        return "INET6"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+:\d+", address):
        return "INET"
    return f"ListenStream={address}: IPv6 where the host has it, else IPv4 (name the address)"


class UnitFileTests(SynchronousTestCase):
    """
    The unit files say what the README promises, and agree with each other.
    """

    def test_parser_keeps_duplicates_in_order(self) -> None:
        """
        The unit parser keeps repeated keys in order, joins continuation lines, and skips comments.
        """
        path = Path(self.mktemp())
        path.write_text("# c\n[Socket]\nListenStream=79\n; c\nListenStream=2222\n[Service]\nExecStart=/a \\\n  -b c\n")
        self.assertEqual(
            unit_entries(path),
            [("Socket", "ListenStream", "79"), ("Socket", "ListenStream", "2222"), ("Service", "ExecStart", "/a -b c")],
        )

    def test_socket_order(self) -> None:
        """
        The socket unit listens on 79 then 2222 (fd index 0 is finger, 1 is SSH), for the service, at boot.
        """
        path = UNITS / "sshfinger.socket"
        socket_section = unit_values(path, "Socket")
        self.assertEqual([value.rsplit(":", 1)[-1] for value in socket_section["ListenStream"]], ["79", "2222"])
        self.assertEqual(socket_section["Service"], ["sshfinger.service"])
        self.assertEqual(unit_values(path, "Install")["WantedBy"], ["sockets.target"])

    def test_service_takes_the_sockets(self) -> None:
        """
        The service runs the venv's twistd in the foreground, logging through L{sshfinger.ops.logs.observer}, takes
        finger from fd index 0 and SSH from index 1, needs the socket unit, and restarts after a failure.
        """
        words = exec_start()
        self.assertEqual(words[: words.index("sshfinger") + 1], TWISTD)
        settings = service_settings()
        self.assertEqual(settings["finger"], "systemd:domain=INET6:index=0")
        self.assertEqual(settings["ssh"], "systemd:domain=INET6:index=1")
        self.assertEqual(settings["admin"], ["admin"])
        unit = unit_values(UNITS / "sshfinger.service", "Unit")
        self.assertIn("sshfinger.socket", " ".join(unit["Requires"]).split())
        self.assertIn("sshfinger.socket", " ".join(unit["After"]).split())
        service = unit_values(UNITS / "sshfinger.service", "Service")
        self.assertEqual(service["Restart"], ["on-failure"])
        self.assertEqual(service["User"], ["sshfinger"])
        self.assertEqual(service["Group"], ["sshfinger"])

    def test_socket_family_matches_domain(self) -> None:
        """
        Each socket's address family is the C{domain=} of the endpoint that adopts it.  A bare port would make an
        IPv6 socket wherever IPv6 is enabled, which C{domain=INET} misreads (see the activation tests).
        """
        listens = unit_values(UNITS / "sshfinger.socket", "Socket")["ListenStream"]
        settings = service_settings()
        for name in ("finger", "ssh"):
            fields = dict(field.partition("=")[::2] for field in settings[name].split(":")[1:])
            self.assertEqual(listen_family(listens[int(fields["index"])]), fields["domain"], name)

    def test_ipv6_and_ipv4(self) -> None:
        """
        The sockets take IPv6 and IPv4 (issue 23 §4): C{[::]} addresses, dual-stack.
        """
        socket_section = unit_values(UNITS / "sshfinger.socket", "Socket")
        self.assertEqual([value.rsplit(":", 1)[0] for value in socket_section["ListenStream"]], ["[::]", "[::]"])
        self.assertEqual(socket_section["BindIPv6Only"], ["both"])

    def test_notify_and_limits(self) -> None:
        """
        The service is C{Type=notify} (the server sends READY=1 once it serves, see L{NotifyTests}) and raises
        its descriptor limit.
        """
        service = unit_values(UNITS / "sshfinger.service", "Service")
        self.assertEqual(service["Type"], ["notify"])
        self.assertEqual(service["NotifyAccess"], ["main"])
        self.assertGreaterEqual(int(service["LimitNOFILE"][0]), 4096)

    def test_config_file_checks(self) -> None:
        """
        The unit's configuration file passes C{sshfinger config check} (its paths moved into a test directory).
        """
        directory = os.path.abspath(self.mktemp())
        text = (UNITS / "sshfinger.toml").read_text()
        for path in (STATE, CONFIG, "/var/log/sshfinger"):
            os.makedirs(directory + path)
            text = text.replace(f'"{path}/', f'"{directory}{path}/').replace(f'"file:{path}/', f'"file:{directory}{path}/')
        Path(directory + CONFIG + "/passwd").write_text("")
        config = Path(directory) / "sshfinger.toml"
        config.write_text(text)
        result = run_tool("config", "check", str(config))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("ok", result.stdout)

    def test_hardening(self) -> None:
        """
        The service is hardened: no privileges or capabilities at all (systemd binds the sockets), a read-only
        system, and no way to write executable memory.
        """
        service = unit_values(UNITS / "sshfinger.service", "Service")
        expected = {
            "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "RestrictNamespaces": "yes",
            "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes",
            "SystemCallFilter": "@system-service",
            "StateDirectory": "sshfinger",
            "ConfigurationDirectory": "sshfinger",
            "ReadWritePaths": STATE,
        }
        for key, value in expected.items():
            self.assertEqual(service.get(key), [value], key)

    def test_paths_inside_the_unit_directories(self) -> None:
        """
        The store and the host keys are in the state directory (the only writable place under
        C{ProtectSystem=strict}), the passwd file in the configuration directory.
        """
        settings = service_settings()
        self.assertEqual(os.path.dirname(settings["store"]), STATE)
        self.assertEqual(os.path.dirname(settings["keys"]), STATE)
        self.assertEqual(settings["auth"], [f"file:{CONFIG}/passwd"])
        self.assertEqual(os.path.dirname(settings["access-log"]), "/var/log/sshfinger")
        self.assertEqual(unit_values(UNITS / "sshfinger.service", "Service")["LogsDirectory"], ["sshfinger"])

    def test_readme_agrees(self) -> None:
        """
        The install guide uses the unit's paths, ports and commands, and installs the package for real (twistd
        does not find the plugin of an editable install).
        """
        readme = (UNITS / "README.md").read_text()
        words = exec_start()
        settings = service_settings()
        for text in [
            settings["store"],
            settings["keys"],
            settings["auth"][0].removeprefix("file:"),
            words[0],
            f"{CONFIG}/sshfinger.toml",
            "sshfinger config check",
            "useradd --system",
            "chown root:sshfinger /etc/sshfinger/passwd",
            "chmod 0640 /etc/sshfinger/passwd",
            "systemctl daemon-reload",
            "systemctl enable --now sshfinger.socket",
            "/opt/sshfinger/src",
            "twistd sshfinger --help",
            "finger alice@localhost",
            "ssh -p 2222 admin@localhost",
            "journalctl -u sshfinger",
        ]:
            self.assertIn(text, readme)
        self.assertIn("/opt/sshfinger/venv/bin/pip install /opt/sshfinger/src\n", readme)
        self.assertIsNone(re.search(r"^[^#\n]*pip install (-e|--editable)", readme, re.MULTILINE))


# Socket activation.

#: Run by the child as C{python -c LAUNCHER FILTER FD... -- COMMAND...}: install the seccomp program FILTER (hex,
#: empty for none), move the passed FDs to 3, 4, ..., set LISTEN_PID to its own pid and exec COMMAND, which keeps
#: the pid, as systemd's own fork-then-exec does.  A fresh single-threaded process does this rather than a
#: C{preexec_fn} in the (possibly threaded) test process.
LAUNCHER = """
import ctypes, os, sys
separator = sys.argv.index("--")
program, fds, command = bytes.fromhex(sys.argv[1]), [int(fd) for fd in sys.argv[2:separator]], sys.argv[separator + 1:]
env = dict(os.environ)
if program:
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    instructions = (ctypes.c_char * len(program)).from_buffer_copy(program)
    fprog = Fprog(len(program) // 8, ctypes.addressof(instructions))
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_NO_NEW_PRIVS (NoNewPrivileges=yes), then PR_SET_SECCOMP with SECCOMP_MODE_FILTER.
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
        sys.exit("cannot install the seccomp filter: " + os.strerror(ctypes.get_errno()))
for target, fd in enumerate(fds, 3):
    os.dup2(fd, target)
for fd in fds:
    os.close(fd)
if fds:
    env["LISTEN_PID"] = str(os.getpid())
os.execve(command[0], command, env)
"""


def launch(command: list[str], fds: Sequence[int] = (), program: bytes = b"", **kwargs: Any) -> subprocess.Popen[Any]:
    """
    Start C{command} through L{LAUNCHER}: with the sockets C{fds} as fds 3, 4, ... and C{LISTEN_PID} set (the rest of
    the systemd environment comes in C{kwargs["env"]}), under the seccomp C{program} if one is given.
    """
    launcher = [sys.executable, "-c", LAUNCHER, program.hex(), *map(str, fds), "--", *command]
    return subprocess.Popen(launcher, pass_fds=fds, **kwargs)


class ActivatedServer:
    """
    The installed C{twistd sshfinger} started on two loopback sockets that the test bound, as systemd starts it.

    @ivar host: the loopback address the sockets are bound to.
    @ivar ports: the finger and SSH ports.
    @ivar process: the server (its pid is the one in C{LISTEN_PID}).
    @ivar log_path: where its output goes.
    """

    def __init__(
        self,
        case: SynchronousTestCase,
        program: bytes = b"",
        family: socket.AddressFamily = socket.AF_INET,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """
        Build a store and a passwd file, bind the sockets, start the server; it is stopped in the test's cleanup.

        @param program: a seccomp program to run the server under (see L{mdwe_program}).
        @param family: the sockets' address family; the endpoints say C{domain=INET} or C{domain=INET6} to match.
        @param extra_env: more environment variables for the server (C{NOTIFY_SOCKET}).
        """
        self.host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        domain = "INET6" if family == socket.AF_INET6 else "INET"
        directory = os.path.abspath(case.mktemp())
        os.makedirs(directory)
        store = os.path.join(directory, "s.db")
        passwd = os.path.join(directory, "passwd")
        result = run_tool("init", "--store", store)
        case.assertEqual(result.returncode, 0, result.stderr)
        result = run_tool("passwd", "admin", "--file", passwd, "--rounds", "4", "--password-stdin", stdin=PASSWORD)
        case.assertEqual(result.returncode, 0, result.stderr)
        sockets = []
        for _ in range(2):
            s = socket.socket(family)
            s.bind((self.host, 0))
            s.listen(16)
            sockets.append(s)
        self.ports = [int(s.getsockname()[1]) for s in sockets]
        # Numbers well above 4, so that moving them to 3 and 4 in the child cannot clobber one another.
        passed = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for s in sockets]
        # What systemd (>= 227) sets: the count, and one name per fd (the socket unit's name by default).  Twisted
        # ignores the fds unless LISTEN_FDNAMES names as many as LISTEN_FDS counts.
        env = dict(clean_env(), LISTEN_FDS="2", LISTEN_FDNAMES="sshfinger.socket:sshfinger.socket", **(extra_env or {}))
        command = [
            venv_tool("twistd"), *TWISTD[1:],
            "--finger", f"systemd:domain={domain}:index=0", "--ssh", f"systemd:domain={domain}:index=1",
            "--store", store, "--keys", os.path.join(directory, "keys"), "--auth", f"file:{passwd}",
            "--admin", "admin",
        ]  # fmt: skip
        self.log_path = Path(directory) / "twistd.log"
        try:
            with open(self.log_path, "wb") as log:
                self.process = launch(
                    command, passed, program, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT
                )
        finally:
            # Only the server holds the sockets from now on.
            for fd in passed:
                os.close(fd)
            for s in sockets:
                s.close()
        case.addCleanup(self.stop)

    def stop(self) -> int:
        """
        Stop the server with SIGTERM, as C{systemctl stop} does, and return its exit status.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        """
        Everything the server logged so far.
        """
        return self.log_path.read_text(errors="replace")

    def finger(self, query: bytes) -> bytes:
        """
        Send one raw finger query to the finger socket and return the whole answer.
        """
        with socket.create_connection((self.host, self.ports[0]), timeout=30) as s:
            s.sendall(query)
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
            return b"".join(chunks)

    def ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        """
        Run one command over a real OpenSSH password login as admin on the SSH socket.
        """
        return subprocess.run(
            [require("sshpass"), "-p", PASSWORD, require("ssh"), *COMMON, "-p", str(self.ports[1]),
             "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", f"admin@{self.host}",
             command],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def check_serves(self, case: SynchronousTestCase) -> None:
        """
        Finger answers on the first socket, an SSH login works on the second, both see the client's real address,
        the server listens on nothing else, and SIGTERM stops it cleanly.
        """
        answer = self.finger(b"alice\r\n")
        case.assertIn(b"Alice Liddell", answer, self.log())
        result = self.ssh("whoami")
        case.assertEqual(result.returncode, 0, result.stderr + self.log())
        # The client's address as every log line and the shell show it: an IPv6 host in brackets.
        peer = re.escape(f"[{self.host}]" if ":" in self.host else self.host)
        case.assertRegex(result.stdout, rf"^admin \(admin\) from {peer}:\d+\n$")
        case.assertEqual(listening_ports(self.process.pid), set(self.ports))
        log = self.log()
        started = re.findall(r"(\w+Factory) starting on (\d+)", log)
        expected = [("FingerFactory", str(self.ports[0])), ("SSHFactory", str(self.ports[1]))]
        case.assertEqual(sorted(started), expected, log)
        case.assertRegex(log, rf"finger {peer}:\d+ 'alice' -> user")
        case.assertRegex(log, rf"SSH login accepted: admin from {peer}:\d+ ")
        # The unit's --logger: per login, sshfinger's own lines, not Conch's debug trace or channel notes.
        case.assertNotIn("#debug]", log)
        case.assertNotIn("Executing command", log)
        # twistd re-raises the signal after its clean shutdown; systemd counts death by SIGTERM as a clean exit.
        case.assertIn(self.stop(), (0, -signal.SIGTERM), self.log())
        case.assertIn("Server Shut Down.", self.log())


def listening_ports(pid: int) -> set[int]:
    """
    The TCP ports on which process C{pid} itself holds a listening socket.
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # a connection closing while we look
            continue
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


# MemoryDenyWriteExecute=yes, as systemd implements it: a seccomp filter refusing (EPERM) mmap() of memory both
# writable and executable, mprotect()/pkey_mprotect() adding PROT_EXEC, and shmat() with SHM_EXEC.

#: Audit architecture and the syscall numbers the filter looks at, per machine.
_ARCHES = {
    "x86_64": (0xC000003E, {"mmap": 9, "mprotect": 10, "pkey_mprotect": 329, "shmat": 30}),
    "aarch64": (0xC00000B7, {"mmap": 222, "mprotect": 226, "pkey_mprotect": 288, "shmat": 196}),
}


def mdwe_program() -> bytes:
    """
    The C{MemoryDenyWriteExecute=} seccomp program, as the C{struct sock_filter} array C{PR_SET_SECCOMP} takes.

    @raise SkipTest: on a machine other than Linux on x86_64 or aarch64.
    """
    if sys.platform != "linux" or platform.machine() not in _ARCHES:
        raise SkipTest(f"no seccomp syscall table for {sys.platform} {platform.machine()}")
    arch, numbers = _ARCHES[platform.machine()]
    ld, jeq, jset, and_, ret = 0x20, 0x15, 0x45, 0x54, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, ALU|AND|K, RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    prot = 16 + 8 * 2  # seccomp_data.args[2], low 32 bits (little-endian): prot for mmap/mprotect, shmflg for shmat
    program: list[str | tuple[int, str | int, str | int, int]] = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, "allow", arch),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jeq, "mmap", 0, numbers["mmap"]),
        (jeq, "exec", 0, numbers["mprotect"]),
        (jeq, "exec", 0, numbers["pkey_mprotect"]),
        (jeq, "shm", 0, numbers["shmat"]),
        (ret, 0, 0, allow),
        "mmap", (ld, 0, 0, prot), (and_, 0, 0, 0x2 | 0x4), (jeq, "deny", "allow", 0x2 | 0x4),  # PROT_WRITE|EXEC
        "exec", (ld, 0, 0, prot), (jset, "deny", "allow", 0x4),  # PROT_EXEC
        "shm", (ld, 0, 0, prot), (jset, "deny", "allow", 0o100000),  # SHM_EXEC
        "allow", (ret, 0, 0, allow),
        "deny", (ret, 0, 0, deny),
    ]  # fmt: skip
    labels: dict[str, int] = {}
    instructions: list[tuple[int, str | int, str | int, int]] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)

    def offset(target: str | int, index: int) -> int:
        return 0 if target == 0 else labels[str(target)] - index - 1

    return b"".join(
        struct.pack("=HBBI", code, offset(jt, i), offset(jf, i), k) for i, (code, jt, jf, k) in enumerate(instructions)
    )


class SocketActivationTests(SynchronousTestCase):
    """
    The installed server started the way systemd starts it: sockets bound by someone else, passed as fds 3 and 4
    with C{LISTEN_FDS}/C{LISTEN_PID}.
    """

    def test_serves_on_passed_sockets(self) -> None:
        """
        Finger and SSH answer on the two passed sockets, the server listens on no other port, and SIGTERM (what
        C{systemctl stop} sends) ends it cleanly.
        """
        ActivatedServer(self).check_serves(self)

    def test_ipv6_variant(self) -> None:
        """
        The README's IPv6 variant: IPv6 sockets adopted with C{domain=INET6} serve finger and SSH and see the
        client's IPv6 address.
        """
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError as e:
            raise SkipTest(f"no IPv6 loopback: {e}")
        ActivatedServer(self, family=socket.AF_INET6).check_serves(self)

    def test_filter_refuses_writable_executable_memory(self) -> None:
        """
        The C{MemoryDenyWriteExecute=} filter used below works: a child under it cannot map memory both writable
        and executable, nor make memory executable, while plain writable memory still works.
        """
        script = (
            "import ctypes, mmap\n"
            "try:\n    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "except PermissionError:\n    print('wx refused')\n"
            "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)\n"
            "address = ctypes.addressof(ctypes.c_char.from_buffer(m))\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "if libc.mprotect(ctypes.c_void_p(address), 4096, mmap.PROT_READ | mmap.PROT_EXEC) != 0:\n"
            "    print('exec refused', ctypes.get_errno())\n"
        )
        process = launch([sys.executable, "-c", script], program=mdwe_program(), stdout=subprocess.PIPE, text=True)
        output, _ = process.communicate(timeout=60)
        self.assertEqual((process.returncode, output), (0, "wx refused\nexec refused 1\n"))

    def test_serves_under_memory_deny_write_execute(self) -> None:
        """
        The unit's C{MemoryDenyWriteExecute=yes} does not break the server: under the same seccomp filter it
        starts (generating its host keys), answers finger, and accepts an SSH password login (bcrypt,
        key exchange and ciphers from cryptography).
        """
        ActivatedServer(self, program=mdwe_program()).check_serves(self)


class NotifyTests(SynchronousTestCase):
    """
    C{Type=notify}: the server tells the service manager when it serves and when it stops, with datagrams on
    C{NOTIFY_SOCKET} (here a socket of the test's, standing in for systemd).
    """

    def test_ready_and_stopping(self) -> None:
        """
        READY=1 arrives once the store is open and both ports are served; STOPPING=1 when SIGTERM stops it.
        """
        directory = tempfile.mkdtemp(prefix="sshfinger-notify-")  # short: a socket path has at most 107 bytes
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.settimeout(60)
        server = ActivatedServer(self, extra_env={"NOTIFY_SOCKET": path})
        ready = listener.recv(4096).split(b"\n")
        self.assertIn(b"READY=1", ready)
        log = server.log()
        self.assertIn("Store ", log)
        self.assertEqual(sorted(re.findall(r"(\w+Factory) starting on", log)), ["FingerFactory", "SSHFactory"], log)
        self.assertIn(b"Alice Liddell", server.finger(b"alice\r\n"))
        server.stop()
        self.assertIn(b"STOPPING=1", listener.recv(4096).split(b"\n"))
