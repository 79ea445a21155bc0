"""
End-to-end tests of the installed package: the twistd plugin, the C{sshfinger} tool and a real C{twistd
sshfinger} process queried over real sockets.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.process import REPO, ServerProcess, clean_env, finger, free_port, run_tool, venv_tool


class InstalledPackageTests(SynchronousTestCase):
    """
    The package as C{pip install .} left it in the venv.
    """

    def python(self, code: str) -> str:
        """
        Run C{code} with the venv's Python outside the source tree and return its output.
        """
        result = subprocess.run(
            [venv_tool("python"), "-c", code],
            capture_output=True,
            text=True,
            cwd=self.mktemp_dir(),
            env=clean_env(),
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def mktemp_dir(self) -> str:
        """
        Make and return a fresh directory.
        """
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path

    def test_plugin_discovered(self) -> None:
        """
        C{getPlugins(IServiceMaker)} finds C{sshfinger} in the installed package, not in the source tree.
        """
        out = self.python(
            "from twisted.plugin import getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "import sshfinger\n"
            "print(sorted(p.tapname for p in getPlugins(IServiceMaker)))\n"
            "print(sshfinger.__file__)\n"
        )
        names, location = out.splitlines()
        self.assertIn("'sshfinger'", names)
        self.assertIn("site-packages", location)
        self.assertFalse(location.startswith(str(REPO) + "/sshfinger"))

    def test_no_dropin_cache_installed(self) -> None:
        """
        The installed distribution ships the plugin module but never a C{dropin.cache}.
        """
        out = self.python(
            "from importlib.metadata import files\n"
            "for f in files('sshfinger'): print(f)\n"
        )
        installed = out.splitlines()
        self.assertIn("twisted/plugins/sshfinger_plugin.py", installed)
        self.assertEqual([f for f in installed if "dropin.cache" in f], [])

    def test_twistd_help_lists_plugin(self) -> None:
        """
        C{twistd --help} lists the plugin and C{twistd sshfinger --help} explains every option.
        """
        listing = subprocess.run(
            [venv_tool("twistd"), "--help"], capture_output=True, text=True, env=clean_env(), timeout=60
        )
        self.assertIn("sshfinger", listing.stdout)
        help_text = subprocess.run(
            [venv_tool("twistd"), "sshfinger", "--help"], capture_output=True, text=True, env=clean_env(), timeout=60
        ).stdout
        for option in ("--finger=", "--store=", "--no-list", "--ascii", "--finger-timeout=", "--max-per-peer="):
            self.assertIn(option, help_text)

    def test_bad_option_is_one_line(self) -> None:
        """
        A bad option value makes twistd exit non-zero with one clear line naming the option, no traceback.
        """
        for args, expected in [
            (["--finger", "bogus:1"], "--finger: invalid endpoint"),
            (["--store", "/nonexistent/dir/x.db"], "--store: directory"),
            (["--max-per-peer", "zero"], "--max-per-peer takes a number"),
        ]:
            result = subprocess.run(
                [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", *args],
                capture_output=True,
                text=True,
                env=clean_env(),
                timeout=60,
                cwd=self.mktemp_dir(),
            )
            output = result.stdout + result.stderr
            self.assertNotEqual(result.returncode, 0)
            self.assertIn(expected, output)
            self.assertNotIn("Traceback", output)

    def test_every_bad_value_is_one_line(self) -> None:
        """
        Issue 18 #12: each bad value stops twistd with status 1 and only the line that matters (a usage error:
        that line and C{see twistd sshfinger --help}), never a traceback or twistd's whole usage.
        """
        directory = self.mktemp_dir()
        usage_errors = [
            (["--finger", "tcp:99999"], "twistd sshfinger: --finger: invalid endpoint 'tcp:99999': port 99999 is out of range (0-65535)"),
            (["--store", directory], f"twistd sshfinger: --store: {directory} is a directory; give the path of a SQLite file"),
            (["--store", "/nonexistent/dir/x.db"], "twistd sshfinger: --store: directory '/nonexistent/dir' does not exist"),
            (["--max-per-peer", "zero"], "twistd sshfinger: --max-per-peer takes a number, not 'zero'"),
            (["--no-such-option"], "twistd sshfinger: option --no-such-option not recognized"),
        ]
        for args, expected in usage_errors:
            result = self.twistd("--no-ssh", *args, cwd=directory)
            self.assertEqual(result.returncode, 1, args)
            self.assertEqual((result.stdout + result.stderr).splitlines(), [expected, "see twistd sshfinger --help"])
        result = self.twistd("--no-ssh", "--store", "memory", "--finger", f"tcp:{free_port()}:interface=127.0.0.1",
                             "--log-file", "/proc/x", cwd=directory)  # fmt: skip
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1)
        self.assertNotIn("Traceback", output)
        self.assertEqual(
            [line.split("] ", 1)[-1] for line in output.splitlines() if "/proc/x" in line],
            ["sshfinger: cannot open the log file /proc/x: No such file or directory"],
        )

    def twistd(self, *args: str, cwd: str) -> subprocess.CompletedProcess[str]:
        """
        Run C{twistd --nodaemon sshfinger ARGS} to its end and return it.
        """
        return subprocess.run(
            [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", *args],
            capture_output=True, text=True, env=clean_env(), timeout=60, cwd=cwd,
        )  # fmt: skip

    def test_version(self) -> None:
        """
        C{twistd sshfinger --version} and C{sshfinger --version} print sshfinger's version.
        """
        from sshfinger import __version__

        result = subprocess.run([venv_tool("twistd"), "sshfinger", "--version"], capture_output=True, text=True,
                                env=clean_env(), timeout=60)  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(f"sshfinger {__version__} "), result.stdout)
        self.assertEqual(run_tool("--version").stdout, f"sshfinger {__version__}\n")

    def test_sdist_carries_docs_and_contrib(self) -> None:
        """
        The source distribution, built from the files a clone has, carries the licence (and says MIT), the docs,
        C{contrib/} and C{sshfinger.tac} (issue 23 §4).
        """
        import tarfile

        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                               capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
        source, out = self.mktemp_dir(), self.mktemp_dir()
        for name in filter(None, files):
            if (REPO / name).is_file():
                os.makedirs(os.path.dirname(os.path.join(source, name)), exist_ok=True)
                shutil.copy2(REPO / name, os.path.join(source, name))
        result = subprocess.run([venv_tool("python"), "-m", "build", "--sdist", "--no-isolation", "--outdir", out, source],
                                capture_output=True, text=True, env=clean_env(), timeout=300)  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        [sdist] = os.listdir(out)
        with tarfile.open(os.path.join(out, sdist)) as tar:
            names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
            pkg_info = tar.extractfile(f"{sdist.removesuffix('.tar.gz')}/PKG-INFO").read().decode()  # type: ignore[union-attr]
        for name in ["LICENSE", "README.md", "sshfinger.tac", "contrib/systemd/sshfinger.service",
                     "contrib/systemd/sshfinger.socket", "contrib/systemd/sshfinger.toml", "contrib/systemd/README.md",
                     "bench/README.md", "plugins/sshfinger_plugin.py", "sshfinger/store/schema/v1.sql"]:  # fmt: skip
            self.assertIn(name, names)
        self.assertFalse([name for name in names if name.endswith("dropin.cache")])
        self.assertIn("License-Expression: MIT", pkg_info)
        self.assertIn("MIT License", (REPO / "LICENSE").read_text())

    def test_occupied_port_is_one_line(self) -> None:
        """
        A finger port already in use stops the server with one line naming it, and a non-zero status.
        """
        import socket

        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = subprocess.run(
                [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", "--no-ssh", "--store", "memory",
                 "--finger", f"tcp:{port}:interface=127.0.0.1"],
                capture_output=True, text=True, env=clean_env(), timeout=60, cwd=self.mktemp_dir(),
            )  # fmt: skip
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"sshfinger: cannot listen on 127.0.0.1:{port}:", output)
        self.assertIn("Address already in use", output)
        self.assertNotIn("Traceback", output)

    def test_unreadable_store_is_one_line(self) -> None:
        """
        A store file that is not a SQLite database stops the server with one line and a non-zero status.
        """
        directory = self.mktemp_dir()
        garbage = os.path.join(directory, "garbage.db")
        with open(garbage, "wb") as f:
            f.write(b"this is not a database" * 100)
        result = subprocess.run(
            [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", "--no-ssh", "--store", garbage,
             "--finger", f"tcp:{free_port()}:interface=127.0.0.1"],
            capture_output=True, text=True, env=clean_env(), timeout=60, cwd=directory,
        )  # fmt: skip
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("sshfinger: cannot open the store", output)
        self.assertNotIn("Traceback", output)

    def test_unwritable_access_log_is_one_line(self) -> None:
        """
        An access log path that cannot be opened (a directory) stops the server with one line and a non-zero
        status.
        """
        directory = self.mktemp_dir()
        result = subprocess.run(
            [venv_tool("twistd"), "--nodaemon", "--pidfile=", "sshfinger", "--no-ssh", "--store", "memory",
             "--finger", f"tcp:{free_port()}:interface=127.0.0.1", "--access-log", directory],
            capture_output=True, text=True, env=clean_env(), timeout=60, cwd=directory,
        )  # fmt: skip
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"sshfinger: cannot open the access log {directory}: Is a directory", output)
        self.assertNotIn("Traceback", output)


class LiveServerTests(SynchronousTestCase):
    """
    A running C{twistd sshfinger} process over a SQLite store.
    """

    def setUp(self) -> None:
        """
        Create a demo store with the installed tool and start the server on it.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.store = os.path.join(self.directory, "finger.db")
        result = run_tool("init", "--store", self.store)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.server = ServerProcess(self, self.directory, ["--store", self.store]).start()

    def test_query_demo_record(self) -> None:
        """
        A raw socket query for C{alice} answers her record with CRLF line endings.
        """
        answer = self.server.finger(b"alice\r\n")
        self.assertIn(b"alice", answer)
        self.assertIn(b"Alice Liddell", answer)
        self.assertIn(b"Down the rabbit hole", answer)
        self.assertTrue(answer.endswith(b"\r\n"))

    def test_cli_change_seen_within_a_second(self) -> None:
        """
        A status set by the C{sshfinger} tool in another process shows in a query within 1 s, though the answer
        before it was kept and sent again.
        """
        self.assertEqual(self.server.finger(b"alice\r\n"), self.server.finger(b"alice\r\n"))
        result = run_tool("set", "alice", "status", "Late for a very important date", "--store", self.store)
        self.assertEqual(result.returncode, 0, result.stderr)
        changed = time.monotonic()
        while b"Late for a very important date" not in self.server.finger(b"alice\r\n"):
            self.assertLess(time.monotonic() - changed, 1.0, "the change did not show within 1 s")
            time.sleep(0.02)

    def test_access_log(self) -> None:
        """
        With C{--access-log}, each query is one line in that file (written within a moment, and all of them by a
        clean stop) and not in the main log.
        """
        access = os.path.join(self.directory, "finger-access.log")
        server = ServerProcess(self, self.directory, ["--store", self.store, "--access-log", access]).start()
        server.finger(b"alice\r\n")
        deadline = time.monotonic() + 5
        while "'alice' -> user" not in (open(access).read() if os.path.exists(access) else ""):
            self.assertLess(time.monotonic(), deadline, "the query was not written within 5 s")
            time.sleep(0.05)
        for _ in range(20):
            server.finger(b"nobody\r\n")
        self.assertIn(server.stop(), (0, -signal.SIGTERM))
        with open(access) as f:
            lines = f.read().splitlines()
        self.assertEqual(len([line for line in lines if "'nobody' -> no-such-user" in line]), 20, lines)
        self.assertNotIn("'alice' -> user", server.log())

    def test_proxy_protocol(self) -> None:
        """
        Behind a proxy (C{--finger haproxy:tcp:...}, a wrapping transport) queries are answered, whether the
        query comes with the PROXY header or after it, and logged with the client the header names.
        """
        port = free_port()
        endpoint = f"haproxy:tcp:{port}:interface=127.0.0.1"
        server = ServerProcess(self, self.directory, ["--store", self.store, "--finger", endpoint], finger_port=port)
        server.start()
        header = b"PROXY TCP4 192.0.2.9 127.0.0.1 40001 79\r\n"
        self.assertIn(b"Down the rabbit hole", server.finger(header + b"alice\r\n"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(header.replace(b"40001", b"40002"))
            time.sleep(0.1)
            sock.sendall(b"nobody\r\n")
            self.assertEqual(b"".join(iter(lambda: sock.recv(4096), b"")), b"finger: nobody: no such user.\r\n")
        self.assertEqual(server.finger(b"alice\r\n"), b"")  # no PROXY header: closed unanswered
        self.assertIn("finger 192.0.2.9:40001 'alice' -> user", server.log())
        self.assertIn("finger 192.0.2.9:40002 'nobody' -> no-such-user", server.log())

    def test_sighup_after_log_directory_removed(self) -> None:
        """
        Issue 18 #12: SIGHUP after the C{--log-file} directory was removed logs one warning line, no traceback,
        and the server keeps serving (and logging).
        """
        logs = os.path.join(self.directory, "logs")
        os.makedirs(logs)
        server = ServerProcess(self, self.directory, ["--store", "memory", "--log-file", f"{logs}/sshfinger.log"])
        server.start()
        shutil.rmtree(logs)
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "Reloaded on SIGHUP" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(b"no such user", server.finger(b"nobody\r\n").lower())
        log = server.log()
        self.assertNotIn("Traceback", log)
        self.assertEqual(len([line for line in log.splitlines() if "cannot reopen the log file" in line]), 1)
        self.assertIn("Reloaded on SIGHUP: 0 log file(s) reopened", log)

    def test_default_interface_is_dual_stack(self) -> None:
        """
        Issue 23 §4: endpoints that leave the interface to its default (C{tcp:PORT}, as the defaults C{tcp:79}
        and C{tcp:2222} do; here on free ports) answer on IPv6 (C{::1}) and IPv4 (C{127.0.0.1}).
        """
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::", 0))
                finger_port = probe.getsockname()[1]
        except OSError as e:
            raise SkipTest(f"no IPv6: {e}")
        server = ServerProcess(self, self.directory, ["--store", self.store], ssh=True, finger_port=finger_port)
        server.args += ["--finger", f"tcp:{finger_port}", "--ssh", f"tcp:{server.ssh_port}"]
        self.server.stop()
        server.start()
        assert server.ssh_port is not None
        for host in ("::1", "127.0.0.1"):
            with socket.create_connection((host, finger_port), timeout=10) as s:
                s.sendall(b"alice\r\n")
                answer = b"".join(iter(lambda: s.recv(65536), b""))  # noqa: B023
            self.assertIn(b"Alice Liddell", answer, host)
            with socket.create_connection((host, server.ssh_port), timeout=10) as s:
                self.assertTrue(s.recv(256).startswith(b"SSH-2.0-"), host)
        self.assertRegex(server.log(), r"finger \[::1\]:\d+ 'alice' -> user")

    def test_restart_keeps_data(self) -> None:
        """
        A change survives a server restart.
        """
        run_tool("set", "alice", "status", "Still here", "--store", self.store)
        self.server.stop()
        server = ServerProcess(self, self.directory, ["--store", self.store]).start()
        self.assertIn(b"Still here", server.finger(b"alice\r\n"))


class ReadmeRunCommandTests(SynchronousTestCase):
    """
    README command 1 (C{make run}) serves the demo record, says how to reach it, and leaves what
    C{twistd -ny sshfinger.tac} needs.
    """

    def test_make_run(self) -> None:
        """
        C{make run} sets up, creates the demo store and serves C{alice} to C{nc}.  Its hint names the ports
        C{FINGER=}/C{SSH=} give and a literal C{printf 'alice\\r\\n'} (issue 18 #19), and its Python alternative
        to C{nc} works.  Then, stopped, C{twistd -ny sshfinger.tac} in the same directory serves the same store
        (issue 18 #20).
        """
        make, nc = shutil.which("make"), shutil.which("nc")
        self.assertIsNotNone(make, "make is required")
        self.assertIsNotNone(nc, "nc is required (make test installs it)")
        clone = os.path.abspath(self.mktemp())
        run_dir, keys = os.path.join(clone, "run"), os.path.join(clone, "keys")
        port, ssh_port = free_port(), free_port()
        venv = os.path.dirname(os.path.dirname(venv_tool("python")))
        process = subprocess.Popen(
            [
                make,
                "-C",
                str(REPO),
                "run",
                f"VENV={venv}",
                f"RUN_DIR={run_dir}",
                f"FINGER=tcp:{port}:interface=127.0.0.1",
                f"SSH=tcp:{ssh_port}:interface=127.0.0.1",
                f"KEYS={keys}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            start_new_session=True,
        )
        output: list[bytes] = []

        def stop() -> None:
            if process.poll() is None:
                os.killpg(process.pid, 15)
                process.wait(timeout=15)
            if process.stdout is not None and not process.stdout.closed:
                output.append(process.stdout.read())
                process.stdout.close()

        self.addCleanup(stop)
        deadline = time.monotonic() + 120
        answer = b""
        while time.monotonic() < deadline and b"Alice Liddell" not in answer:
            self.assertIsNone(process.poll(), "make run exited early")
            try:
                answer = subprocess.run(
                    [nc, "127.0.0.1", str(port)], input=b"alice\r\n", capture_output=True, timeout=10
                ).stdout
            except subprocess.TimeoutExpired:
                answer = b""
            time.sleep(0.2)
        self.assertIn(b"Alice Liddell", answer)
        self.assertIn(b"Down the rabbit hole", answer)
        hint = [line for line in self.read_until(process, b"ssh:") if line.startswith((b"finger:", b"ssh:", b" "))]
        self.assertEqual(hint[0], f"finger: printf 'alice\\r\\n' | nc 127.0.0.1 {port}".encode())
        self.assertIn(f"ssh -p {ssh_port} admin@127.0.0.1".encode(), hint[-1])
        self.assertNotIn(b"\r", b"".join(hint))
        alternative = hint[1].decode().strip().removeprefix("(no nc? ").removesuffix(")")
        python = subprocess.run(alternative.replace("python3", venv_tool("python"), 1), shell=True,
                                capture_output=True, timeout=30)  # fmt: skip
        self.assertIn(b"Down the rabbit hole", python.stdout, python.stderr)
        stop()
        self.tac_after_make_run(clone)

    def read_until(self, process: subprocess.Popen[bytes], marker: bytes) -> list[bytes]:
        """
        Read C{process}'s output lines up to the first one starting with C{marker}.
        """
        assert process.stdout is not None
        lines: list[bytes] = []
        while not (lines and lines[-1].startswith(marker)):
            line = process.stdout.readline()
            self.assertTrue(line, b"".join(lines))
            lines.append(line.rstrip(b"\n"))
        return lines

    def tac_after_make_run(self, clone: str) -> None:
        """
        In the directory C{make run} set up, the repository's C{sshfinger.tac} (ports changed to free ones) serves
        the demo store; its paths are the Makefile's defaults.
        """
        makefile = (REPO / "Makefile").read_text()
        defaults = dict(re.findall(r"^(RUN_DIR|KEYS) \?= (\S+)$", makefile, re.MULTILINE))
        tac = (REPO / "sshfinger.tac").read_text()
        self.assertIn(f'STORE = "{defaults["RUN_DIR"]}/sshfinger.db"', tac)
        self.assertIn(f'AUTH = ["file:{defaults["RUN_DIR"]}/passwd"]', tac)
        self.assertIn(f'KEYS = "{defaults["KEYS"]}"', tac)
        port = free_port()
        tac = re.sub(r'^FINGER = "[^"]*"', f'FINGER = "tcp:{port}:interface=127.0.0.1"', tac, flags=re.MULTILINE)
        tac = re.sub(r'^SSH = "[^"]*"', f'SSH = "tcp:{free_port()}:interface=127.0.0.1"', tac, flags=re.MULTILINE)
        with open(os.path.join(clone, "sshfinger.tac"), "w") as f:
            f.write(tac)
        with open(os.path.join(clone, "tac.log"), "wb") as log:
            server = subprocess.Popen(
                [venv_tool("twistd"), "-ny", "sshfinger.tac", "--pidfile="],
                cwd=clone, stdout=log, stderr=subprocess.STDOUT, env=clean_env(),
            )  # fmt: skip
        self.addCleanup(lambda: (server.terminate(), server.wait(timeout=15)))
        deadline = time.monotonic() + 30
        answer = b""
        while b"Alice Liddell" not in answer and time.monotonic() < deadline:
            self.assertIsNone(server.poll(), (REPO / clone / "tac.log").read_text())
            try:
                answer = finger(port, b"alice\r\n")
            except OSError:
                time.sleep(0.1)
        self.assertIn(b"Down the rabbit hole", answer)
