"""
Tests for SSH admission (L{sshfinger.ssh.admission}), the escaping of peer text in logs, and the SSH options of
C{twistd sshfinger} (C{--max-startups}, C{--max-ssh-per-peer}, C{--ipv6-prefix}, C{--min-password-length},
C{--help-auth}, C{--help}).
"""

from __future__ import annotations

import io
import re

from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ops.logs import escape_peer_text
from sshfinger.ssh.admission import Admission, Startups
from sshfinger.tap import Options
from tests.unit.test_tap import help_descriptions


class StartupsTests(SynchronousTestCase):
    """
    L{Startups}: OpenSSH's C{MaxStartups start:rate:full}.
    """

    def test_parse(self) -> None:
        """
        C{N} scales OpenSSH's default 10:30:100; C{start:rate:full} is taken as given; anything else is one line.
        """
        self.assertEqual(Startups.parse("100"), Startups(10, 30, 100))
        self.assertEqual(Startups.parse("5"), Startups(1, 30, 5))
        self.assertEqual(Startups.parse("6:50:9"), Startups(6, 50, 9))
        for bad in ("x", "1:2", "0:30:10", "10:30:5", "1:101:5", ""):
            self.assertRaises(ValueError, Startups.parse, bad)

    def test_drop(self) -> None:
        """
        Below C{start} nothing is dropped, from C{full} on everything; between, with the probability rising
        linearly from C{rate} %.
        """
        startups = Startups(10, 30, 100)
        self.assertFalse(startups.drop(9, lambda: 0.0))
        self.assertTrue(startups.drop(10, lambda: 0.29))
        self.assertFalse(startups.drop(10, lambda: 0.30))
        self.assertTrue(startups.drop(55, lambda: 0.64))
        self.assertFalse(startups.drop(55, lambda: 0.66))
        self.assertTrue(startups.drop(100, lambda: 0.999))


class AdmissionTests(SynchronousTestCase):
    """
    L{Admission}: the counts, and the rate-limited refusal log.
    """

    def setUp(self) -> None:
        """
        At most 3 unauthenticated connections, 2 per address; refusals captured.
        """
        self.clock = Clock()
        self.admission = Admission(self.clock, Startups(3, 30, 3), per_peer=2)
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_per_peer(self) -> None:
        """
        The third connection from one address is refused, another address's is not; a closed one frees its
        slot.
        """
        self.assertTrue(self.admission.admit("192.0.2.1", "192.0.2.1:1"))
        self.assertTrue(self.admission.admit("192.0.2.1", "192.0.2.1:2"))
        self.assertFalse(self.admission.admit("192.0.2.1", "192.0.2.1:3"))
        self.assertTrue(self.admission.admit("192.0.2.2", "192.0.2.2:1"))
        self.admission.release("192.0.2.1", authenticated=False)
        self.assertTrue(self.admission.admit("192.0.2.1", "192.0.2.1:4"))

    def test_unauthenticated(self) -> None:
        """
        The fourth unauthenticated connection is refused; one that logs in no longer counts.
        """
        for number in range(3):
            self.assertTrue(self.admission.admit(f"192.0.2.{number}", "x"))
        self.assertFalse(self.admission.admit("192.0.2.9", "x"))
        self.admission.authenticated()
        self.assertTrue(self.admission.admit("192.0.2.9", "x"))
        self.assertEqual(self.admission.pending, 3)
        self.admission.release("192.0.2.0", authenticated=True)
        self.assertEqual(self.admission.pending, 3)

    def test_log_rate_limited(self) -> None:
        """
        Refusals are logged at most once a second, the next line counting those left out.
        """
        for _ in range(2):
            self.admission.admit("192.0.2.1", "192.0.2.1:1")
        for _ in range(5):
            self.admission.admit("192.0.2.1", "192.0.2.1:9")
        self.clock.advance(1.0)
        self.admission.admit("192.0.2.1", "192.0.2.1:10")
        self.assertEqual(
            [formatEvent(event) for event in self.events],
            [
                "SSH connection from 192.0.2.1:9 refused: 2 connections from 192.0.2.1 already (0 more refused "
                "since the last line)",
                "SSH connection from 192.0.2.1:10 refused: 2 connections from 192.0.2.1 already (4 more refused "
                "since the last line)",
            ],
        )


class EscapeTests(SynchronousTestCase):
    """
    L{escape_peer_text}.
    """

    def test_one_visible_line(self) -> None:
        """
        Newlines, carriage returns, escape sequences, invalid UTF-8, bidirectional overrides and backslashes
        become visible escapes; other text (accents included) is kept; long text is cut.
        """
        self.assertEqual(
            escape_peer_text(b"admin\nSSH login accepted\r\x1b[2J\xff \\ caf\xc3\xa9 \xe2\x80\xae"),
            "admin\\nSSH login accepted\\r\\x1b[2J\\xff \\\\ caf\u00e9 \\u202e",
        )
        self.assertEqual(escape_peer_text("x" * 300), "x" * 197 + "...")


class OptionTests(SynchronousTestCase):
    """
    The SSH options of C{twistd sshfinger}.
    """

    def parse(self, *args: str) -> Options:
        """
        Parse C{args} (SSH off, so no host keys are made).
        """
        options = Options()
        options.parseOptions(["--no-ssh", "--store", "memory", *args])
        return options

    def test_defaults(self) -> None:
        """
        OpenSSH's MaxStartups 10:30:100, 10 connections per address, IPv6 by /64, passwords of 10 characters.
        """
        options = self.parse()
        self.assertEqual(
            [options[name] for name in ("max-startups", "max-ssh-per-peer", "ipv6-prefix", "min-password-length")],
            ["10:30:100", 10, 64, 10],
        )

    def test_bad_values(self) -> None:
        """
        A bad value is a usage error of one line naming the option.
        """
        for args, text in [
            (("--max-startups", "10:x:100"), "--max-startups"),
            (("--max-ssh-per-peer", "0"), "--max-ssh-per-peer"),
            (("--ipv6-prefix", "129"), "--ipv6-prefix"),
            (("--min-password-length", "-1"), "--min-password-length"),
        ]:
            error = self.assertRaises(usage.UsageError, self.parse, *args)
            self.assertIn(text, str(error))
            self.assertNotIn("\n", str(error))

    def test_help_auth(self) -> None:
        """
        C{--help-auth} lists what --auth accepts: C{file:} as a bcrypt passwd file, not C{unix} (refused).
        """
        options = Options()
        options.authOutput = io.StringIO()
        self.assertRaises(SystemExit, options.parseOptions, ["--help-auth"])
        text = options.authOutput.getvalue()
        self.assertIn("bcrypt passwd file", text)
        self.assertNotIn("unix", text)
        self.assertNotIn("FilePasswordDB", text)

    def test_help_has_no_runs_of_spaces(self) -> None:
        """
        No option's description in C{--help} holds a run of spaces (a docstring's line break and indentation).
        """
        descriptions = help_descriptions(str(Options()))
        self.assertEqual([text for text in descriptions if re.search(r"\S {2,}\S", text)], [])
        self.assertIn("users' ~/.ssh/authorized_keys", " ".join(str(Options()).split()))
