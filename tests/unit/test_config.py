"""
Tests for C{--config FILE} (L{sshfinger.ops.config} through L{sshfinger.options.Options}) and
C{sshfinger config check FILE}.
"""

from __future__ import annotations

import io
import os

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.cli.main import main
from sshfinger.ops.config import option_kinds
from sshfinger.tap import Options, TwistdOptions, makeService


class ConfigFileTests(SynchronousTestCase):
    """
    C{twistd sshfinger --config FILE}.
    """

    def setUp(self) -> None:
        """
        A directory with a passwd file and a host keys directory.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.passwd = os.path.join(self.directory, "passwd")
        with open(self.passwd, "w") as f:
            f.write("admin:$2b$04$" + "a" * 53 + "\n")
        self.keys = os.path.join(self.directory, "keys")

    def write(self, text: str, name: str = "sshfinger.toml") -> str:
        """
        Write a configuration file and return its path.
        """
        path = os.path.join(self.directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def parse(self, *args: str) -> Options:
        """
        Parse C{args} with L{Options}.
        """
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_file_equals_command_line(self) -> None:
        """
        A TOML file equivalent to a command line gives the same options and the same service (the same children,
        listening on the same ports).
        """
        path = self.write(
            f'finger = "tcp:1079:interface=127.0.0.1"\n'
            f'ssh = "tcp:2022:interface=127.0.0.1"\n'
            f'store = "memory"\n'
            f'keys = "{self.keys}"\n'
            f'admin = ["root", "alice"]\n'
            f'auth = ["file:{self.passwd}"]\n'
            f"finger-timeout = 5\n"
            f"max-per-peer = 3\n"
            f"no-list = true\n"
            f"ascii = true\n"
            f'hostname = "finger.example"\n'
            f'access-log = "{self.directory}/finger.log"\n'
        )
        from_file = self.parse("--config", path)
        from_args = self.parse(
            "--finger", "tcp:1079:interface=127.0.0.1", "--ssh", "tcp:2022:interface=127.0.0.1", "--store", "memory",
            "--keys", self.keys, "--admin", "root", "--admin", "alice", "--auth", f"file:{self.passwd}",
            "--finger-timeout", "5", "--max-per-peer", "3", "--no-list", "--ascii", "--hostname", "finger.example",
            "--access-log", f"{self.directory}/finger.log",
        )  # fmt: skip
        names = [name for name in option_kinds(from_args) if name in from_args]
        self.assertGreater(len(names), 15)
        for name in [*names, "passwd_files"]:
            self.assertEqual(from_file[name], from_args[name], name)
        self.assertEqual(from_file.get("credCheckers"), from_args.get("credCheckers"))
        self.assertEqual(sorted(from_file["host_keys"]), sorted(from_args["host_keys"]))
        services = []
        for options in (from_file, from_args):
            reactor = MemoryReactorClock()
            top = makeService(options, reactor)
            top.privilegedStartService()
            services.append(([s.name for s in top], sorted((port, interface) for port, _, _, interface in reactor.tcpServers)))
        self.assertEqual(services[0], services[1])
        self.assertEqual(services[0][1], [(1079, "127.0.0.1"), (2022, "127.0.0.1")])

    def test_command_line_overrides(self) -> None:
        """
        An option on the command line wins over the file; a list given on the command line replaces the file's.
        """
        path = self.write('store = "memory"\nno-ssh = true\nmax-per-peer = 3\nadmin = ["root", "alice"]\n')
        options = self.parse("--config", path, "--max-per-peer", "9", "--admin", "bob")
        self.assertEqual((options["max-per-peer"], options["admin"], options["store"]), (9, ["bob"], "memory"))
        options = self.parse("--max-per-peer=8", "--config=" + path)
        self.assertEqual((options["max-per-peer"], options["admin"]), (8, ["root", "alice"]))

    def test_bad_files(self) -> None:
        """
        An unknown key, a wrong type, a bad value, a file that is not TOML or cannot be read: one line naming the
        file, the key and the problem (and, from twistd, the pointer to --help).
        """
        for text, expected in [
            ('colour = "red"\n', "colour: unknown key"),
            ("finger-timout = 3\n", "finger-timout: unknown key (did you mean finger-timeout?)"),
            ("finger = 79\n", "finger: expected a string, not an integer"),
            ("hostname = true\n", "hostname: expected a string or a number, not a boolean"),
            ('max-per-peer = "3"\n', "max-per-peer: expected an integer, not a string"),
            ("max-per-peer = 2.5\n", "max-per-peer: expected an integer, not a number"),
            ('no-list = "yes"\n', "no-list: expected true or false, not a string"),
            ("admin = [1]\n", "admin: expected a string or a list of strings, not a list"),
            ("max-per-peer = 0\n", "max-per-peer: must be greater than zero"),
            ('admin = ["Not Valid"]\n', "admin: a login is"),
            ('auth = ["unix"]\n', "auth: unix: system passwords are not supported"),
            ('finger = "tcp:99999"\n', "finger: invalid endpoint 'tcp:99999': port 99999 is out of range"),
            ('store = "/no/such/dir/x.db"\n', "store: directory '/no/such/dir' does not exist"),
            ('config = "other.toml"\n', "config: not allowed in a configuration file"),
            ("finger = [\n", "not valid TOML"),
        ]:
            prefix = "no-ssh = true\n" + ('store = "memory"\n' if not text.startswith("store") else "")
            path = self.write(prefix + text)
            error = self.assertRaises(usage.UsageError, self.parse, "--config", path)
            self.assertEqual(str(error).splitlines(), [str(error)])
            self.assertTrue(str(error).startswith(f"{path}: {expected}"), (str(error), expected))
            exit = self.assertRaises(SystemExit, TwistdOptions().parseOptions, ["--config", path])
            self.assertEqual(str(exit.code), f"twistd sshfinger: {error}\nsee twistd sshfinger --help")
        missing = os.path.join(self.directory, "missing.toml")
        error = self.assertRaises(usage.UsageError, self.parse, "--config", missing)
        self.assertEqual(str(error), f"{missing}: cannot read it: No such file or directory")

    def test_config_check(self) -> None:
        """
        C{sshfinger config check FILE} says a good file is fine (and creates nothing: no host keys), and prints a
        bad file's one line with exit status 1.
        """
        good = self.write(f'store = "memory"\nkeys = "{self.keys}"\nauth = ["file:{self.passwd}"]\n')
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["config", "check", good], out, err), 0, err.getvalue())
        self.assertIn(f"{good}: ok", out.getvalue())
        self.assertFalse(os.path.exists(self.keys))
        bad = self.write("max-per-peer = -1\n", "bad.toml")
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["config", "check", bad], out, err), 1)
        self.assertEqual(err.getvalue(), f"sshfinger: error: {bad}: max-per-peer: must be greater than zero\n")
