"""
Tests for L{sshfinger.options} and L{sshfinger.tap}: option parsing and validation, and the services C{makeService} builds.
"""

from __future__ import annotations

import gc
import io
import os
import re
import sys

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sshfinger import __version__
from sshfinger.finger.onaccept import AnsweringEndpoint
from sshfinger.ops.endpoints import check_description, client_address, endpoint_port, listen_description
from sshfinger.ssh.checkers import BytesUsernameChecker
from sshfinger.tap import GC_YOUNG_THRESHOLD, Options, TwistdOptions, makeService


class OptionsTests(SynchronousTestCase):
    """
    L{Options}.
    """

    def setUp(self) -> None:
        """
        A directory for host keys and files.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.keys = os.path.join(self.directory, "keys")

    def parse(self, *args: str) -> Options:
        """
        Parse C{args} plus a private keys directory.
        """
        options = Options()
        options.parseOptions(["--keys", self.keys, *args])
        return options

    def test_defaults(self) -> None:
        """
        The documented defaults.
        """
        options = self.parse()
        self.assertEqual(
            (options["finger"], options["ssh"], options["store"], options["finger-timeout"], options["max-per-peer"]),
            ("tcp:79", "tcp:2222", "sshfinger.db", 10.0, 20),
        )
        self.assertEqual(
            (options["idle-timeout"], options["login-grace"], options["max-auth-failures"], options["audit-keep"]),
            (900, 60, 6, 100_000),
        )
        self.assertEqual(sorted(options["host_keys"]), [b"ssh-ed25519", b"ssh-rsa"])

    def test_bad_values(self) -> None:
        """
        Each bad value is a usage error naming the option.
        """
        for args, expected in [
            (["--finger", "nonsense:9"], "--finger: invalid endpoint"),
            (["--ssh", "tcp:notaport"], "--ssh: invalid endpoint"),
            (["--finger", "tcp:99999"], "--finger: invalid endpoint 'tcp:99999': port 99999 is out of range (0-65535)"),
            (["--ssh", "tcp:port=70000:interface=::1"], "--ssh: invalid endpoint"),
            (["--store", "/no/such/dir/x.db"], "--store: directory '/no/such/dir' does not exist"),
            (["--store", self.directory], "is a directory"),
            (["--finger-timeout", "-1"], "--finger-timeout must be greater than zero"),
            (["--max-auth-failures", "many"], "--max-auth-failures takes a number"),
            (["--max-per-peer", "0"], "--max-per-peer must be greater than zero"),
            (["--idle-timeout", "soon"], "--idle-timeout takes a number"),
            (["--login-grace", "0"], "--login-grace must be greater than zero"),
            (["--audit-keep", "-5"], "--audit-keep must be greater than zero"),
            (["--json-log", "/no/such/dir/events.json"], "--json-log: directory"),
            (["--admin", "Not Valid"], "--admin: a login is"),
            (["--auth", "file:/no/such/passwd"], "--auth file:"),
            (["--auth", "anonymous"], "--auth anonymous: anonymous logins would give anyone a shell"),
            (["--auth", "unix"], "--auth unix: system passwords are not supported"),
            (["--auth", "bogus"], "Auth plugin not recognized"),
        ]:
            error = self.assertRaises(usage.UsageError, self.parse, *args)
            self.assertIn(expected, str(error), args)

    def test_twistd_usage_error_is_one_line(self) -> None:
        """
        As twistd parses them (L{TwistdOptions}), a bad value ends the process with the problem and a pointer to
        C{--help}, not twistd's whole usage (issue 18 #12).
        """
        for args, expected in [
            (["--finger", "tcp:99999"], "twistd sshfinger: --finger: invalid endpoint 'tcp:99999': port 99999"),
            (["--store", self.directory], f"twistd sshfinger: --store: {self.directory} is a directory"),
            (["--store", "/no/such/dir/x.db"], "twistd sshfinger: --store: directory '/no/such/dir' does not exist"),
            (["--max-per-peer", "zero"], "twistd sshfinger: --max-per-peer takes a number, not 'zero'"),
            (["--bogus"], "twistd sshfinger: option --bogus not recognized"),
        ]:
            error = self.assertRaises(SystemExit, TwistdOptions().parseOptions, ["--keys", self.keys, *args])
            first, second = str(error.code).split("\n")
            self.assertTrue(first.startswith(expected), (first, expected))
            self.assertEqual(second, "see twistd sshfinger --help")

    def test_version(self) -> None:
        """
        C{--version} prints sshfinger's version, not only Twisted's.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, TwistdOptions().parseOptions, ["--version"])
        self.assertEqual(error.code, 0)
        self.assertTrue(out.getvalue().startswith(f"sshfinger {__version__} (Twisted "), out.getvalue())

    def test_help(self) -> None:
        """
        C{--help} has no run of stray spaces (docstring indentation) and describes C{sshkey} on one line (issue 18
        #18; C{--help-auth} is tested with the SSH options).
        """
        descriptions = help_descriptions(str(Options()))
        self.assertIn("sshkey (system users' ~/.ssh/authorized_keys)", " ".join(descriptions))
        self.assertEqual([d for d in descriptions if re.search(r"\S {2,}\S", d)], [])

    def test_bad_keys_directory(self) -> None:
        """
        A keys directory that cannot hold keys is a usage error.
        """
        blocker = os.path.join(self.directory, "file")
        open(blocker, "w").close()
        options = Options()
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--keys", os.path.join(blocker, "keys")])
        self.assertIn("--keys:", str(error))

    def test_auth_types(self) -> None:
        """
        C{file:} is collected for the bcrypt checker; C{memory:} is wrapped for SSH's bytes usernames;
        C{--admin} is repeatable and lower-cased.
        """
        passwd = os.path.join(self.directory, "passwd")
        open(passwd, "w").close()
        options = self.parse("--auth", f"file:{passwd}", "--auth", "memory:bob:pw", "--admin", "Root", "--admin", "x")
        self.assertEqual(options["passwd_files"], [passwd])
        self.assertIsInstance(options["credCheckers"][-1], BytesUsernameChecker)
        self.assertEqual(options["admin"], ["root", "x"])

    def test_no_ssh_skips_keys(self) -> None:
        """
        With C{--no-ssh} no host keys are generated.
        """
        self.parse("--no-ssh")
        self.assertFalse(os.path.exists(self.keys))


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService}.
    """

    def test_services(self) -> None:
        """
        The store, finger and SSH services are named children; starting listens on both endpoints and logs the
        host key fingerprints and plaintext passwd warnings.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        passwd = os.path.join(directory, "passwd")
        with open(passwd, "w") as f:
            f.write("bob:plaintext\n")
        os.chmod(passwd, 0o600)
        options = Options()
        options.parseOptions(
            ["--store", "memory", "--finger", "tcp:1079", "--ssh", "tcp:2022", "--keys", directory,
             "--auth", f"file:{passwd}"]
        )  # fmt: skip
        reactor = MemoryReactorClock()
        top = makeService(options, reactor)
        self.assertEqual([service.name for service in top], ["store", "finger", "reload", "ssh"])
        self.assertIsInstance(top.getServiceNamed("finger").endpoint, AnsweringEndpoint)
        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        top.privilegedStartService()
        self.addCleanup(gc.set_threshold, *gc.get_threshold())
        top.startService()
        self.addCleanup(top.stopService)
        self.assertEqual(sorted(port for port, *_ in reactor.tcpServers), [1079, 2022])
        self.assertEqual(gc.get_threshold()[0], GC_YOUNG_THRESHOLD)
        fingerprints = [e for e in events if "fingerprint" in e]
        self.assertEqual(len(fingerprints), 2)
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "problem" in e]
        self.assertEqual(len(warnings), 1)
        self.assertIn("passwd:1", str(warnings[0]["problem"]))


class BacklogTests(SynchronousTestCase):
    """
    L{sshfinger.ops.endpoints}: what sshfinger listens on for a description, and the checks a description gets.
    """

    def test_tcp_gets_backlog(self) -> None:
        """
        TCP endpoints without a backlog get 1024; others, and explicit backlogs, are left alone.
        """
        self.assertEqual(listen_description("tcp:79", dual_stack=False), "tcp:79:backlog=1024")
        self.assertEqual(listen_description("tcp:79:backlog=5", dual_stack=False), "tcp:79:backlog=5")
        self.assertEqual(listen_description("systemd:domain=INET:index=0"), "systemd:domain=INET:index=0")

    def test_tcp_without_interface_is_dual_stack(self) -> None:
        """
        A C{tcp:PORT} with no interface listens on C{::} (IPv6 and IPv4) where the system allows it; one that
        names its interface, and C{tcp6:}, keep it.
        """
        self.assertEqual(listen_description("tcp:79", dual_stack=True), "tcp6:79:interface=\\:\\::backlog=1024")
        self.assertEqual(
            listen_description("tcp:79:interface=127.0.0.1", dual_stack=True), "tcp:79:interface=127.0.0.1:backlog=1024"
        )
        self.assertEqual(
            listen_description("tcp6:79:interface=\\:\\:1", dual_stack=True), "tcp6:79:interface=\\:\\:1:backlog=1024"
        )

    def test_ports(self) -> None:
        """
        The port of a TCP description (also behind C{haproxy:}) is found, and one out of range is refused.
        """
        self.assertEqual(endpoint_port("tcp:1079:interface=127.0.0.1"), 1079)
        self.assertEqual(endpoint_port("haproxy:tcp:port=79"), 79)
        self.assertIsNone(endpoint_port("unix:/run/finger.sock"))
        self.assertRaises(ValueError, check_description, "tcp6:65536")
        check_description("tcp:65535")
        self.assertEqual(client_address("tcp:1079"), ("127.0.0.1", 1079))
        self.assertEqual(client_address("tcp6:79:interface=\\:\\:"), ("::1", 79))
        self.assertEqual(client_address("tcp:2222:interface=192.0.2.1"), ("192.0.2.1", 2222))


def help_descriptions(text: str) -> list[str]:
    """
    Return the description column of C{--help} output: the text after an option's names, and each continuation
    line, stripped.
    """
    descriptions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-"):
            names_and_text = re.split(r" {2,}", stripped, maxsplit=1)
            descriptions.extend(names_and_text[1:])
        elif line.startswith(" " * 6) and stripped:
            descriptions.append(stripped)
    return descriptions
