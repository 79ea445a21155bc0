"""
Tests for L{sshfinger.ops.reload}: SIGHUP reload and the JSON event log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ops.notify import notify
from sshfinger.ops.reload import ReloadService
from sshfinger.ssh.checkers import review_passwd_file


class ImmediateReactor:
    """
    Runs C{callFromThread} calls at once (the signal handler's only use of the reactor).
    """

    def callFromThread(self, function: Callable[..., Any], *args: Any) -> None:
        """
        Call now.
        """
        function(*args)


class ReloadTests(SynchronousTestCase):
    """
    L{ReloadService}.
    """

    def setUp(self) -> None:
        """
        A passwd file, a JSON and a text log path; the service is started, and stopped at the end.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.passwd = os.path.join(self.directory, "passwd")
        with open(self.passwd, "w") as f:
            f.write("admin:$2b$04$" + "a" * 53 + "\n")
        os.chmod(self.passwd, 0o600)
        self.json_path = os.path.join(self.directory, "events.json")
        self.text_path = os.path.join(self.directory, "events.log")
        self.service = ReloadService(
            ImmediateReactor(), [self.passwd], self.json_path, self.text_path, review_passwd=review_passwd_file
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def json_events(self, path: str) -> list[dict[str, Any]]:
        """
        The JSON events written to C{path}: JSON Lines, each line one object C{json.loads} reads.
        """
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def test_json_log_fields(self) -> None:
        """
        Events reach the JSON log with their fields and the text log as lines; debug events reach neither, and
        Conch's info events only the JSON log.
        """
        log = Logger(namespace="test")
        log.info("finger {peer} -> {outcome}", peer="127.0.0.1:1", outcome="user")
        log.debug("noise {x}", x=1)
        Logger(namespace="twisted.conch.ssh.session").info("channel {x}", x=2)
        written = self.json_events(self.json_path)
        self.assertEqual([(e["peer"], e["outcome"]) for e in written if "peer" in e], [("127.0.0.1:1", "user")])
        self.assertFalse([e for e in written if e.get("x") == 1])
        self.assertTrue([e for e in written if e.get("x") == 2])
        with open(self.text_path) as f:
            text = f.read()
        self.assertIn("finger 127.0.0.1:1 -> user", text)
        self.assertNotIn("noise", text)
        self.assertNotIn("channel", text)

    def test_json_lines(self) -> None:
        """
        C{--json-log} writes JSON Lines (issue 18 #16): no RFC 7464 record separator; each line one object with
        the ISO time, the level's name, the namespace, the rendered message and the event's own fields as plain
        values (an object as its text, bytes decoded), never Twisted's C{__class_uuid__} or
        C{{"unpersistable": true}}.
        """

        class Opaque:
            def __str__(self) -> str:
                return "opaque thing"

        Logger(namespace="sshfinger.test").warn(
            "login {login} from {peer}: {thing}", login="bob\nforged", peer="[::1]:22", thing=Opaque(), raw=b"\xff"
        )
        with open(self.json_path, encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn("\x1e", text)
        self.assertNotIn("__class_uuid__", text)
        self.assertNotIn("unpersistable", text)
        lines = text.splitlines()
        self.assertTrue(lines)
        records = [json.loads(line) for line in lines]
        self.assertTrue(all(isinstance(record, dict) for record in records))
        [record] = [r for r in records if r.get("namespace") == "sshfinger.test"]
        self.assertEqual(record["level"], "warn")
        self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
        self.assertEqual(record["message"], "login bob\nforged from [::1]:22: opaque thing")
        self.assertEqual(
            (record["login"], record["peer"], record["thing"], record["raw"]),
            ("bob\nforged", "[::1]:22", "opaque thing", "\\xff"),
        )
        self.assertFalse([key for key in record if key.startswith("log_")])

    def test_json_lines_failure(self) -> None:
        """
        An event with a failure carries its traceback as text, on one line like any other.
        """
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            Logger(namespace="sshfinger.test").failure("it broke")
        self.flushLoggedErrors(ZeroDivisionError)
        [record] = [r for r in self.json_events(self.json_path) if r.get("namespace") == "sshfinger.test"]
        self.assertEqual((record["level"], record["message"]), ("critical", "it broke"))
        self.assertIn("ZeroDivisionError", record["traceback"])

    def test_sighup_after_log_directory_removed(self) -> None:
        """
        SIGHUP after the log files' directory was removed (issue 18 #12): no exception, one warning per file
        saying so, and the logs keep going to the files already open.
        """
        directory = os.path.join(self.directory, "logs")
        os.makedirs(directory)
        text_path = os.path.join(directory, "events.log")
        service = ReloadService(ImmediateReactor(), [], None, text_path)
        service.startService()
        self.addCleanup(service.stopService)
        reader = open(text_path, encoding="utf-8")
        self.addCleanup(reader.close)
        os.remove(text_path)
        os.rmdir(directory)
        os.kill(os.getpid(), signal.SIGHUP)
        warnings = [e for e in self.events if e.get("path") == text_path and "cannot reopen" in e["log_format"]]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["log_level"].name, "warn")
        Logger(namespace="test").info("still {going}", going="here")
        self.assertIn("still here", reader.read())

    def test_unopenable_log_file_is_one_line(self) -> None:
        """
        A log file that cannot be opened at start (C{--log-file /proc/x}) stops start-up with one line.
        """
        service = ReloadService(ImmediateReactor(), [], None, "/proc/x")
        error = self.assertRaises(SystemExit, service.startService)
        self.assertEqual(str(error), "sshfinger: cannot open the log file /proc/x: No such file or directory")

    def test_sighup_reopens_and_rechecks(self) -> None:
        """
        After logrotate moves the JSON log, SIGHUP makes a new file; a plaintext entry added meanwhile is
        warned about; a removed passwd file is an error event, and the process keeps running.
        """
        os.rename(self.json_path, self.json_path + ".1")
        os.rename(self.text_path, self.text_path + ".1")
        with open(self.passwd, "a") as f:
            f.write("bob:plain\n")
        os.kill(os.getpid(), signal.SIGHUP)
        reloads = [e for e in self.json_events(self.json_path) if e.get("event_type") == "reload"]
        self.assertEqual(len(reloads), 1)
        with open(self.text_path) as f:
            self.assertIn("Reloaded on SIGHUP: 2 log file(s) reopened, 1 passwd file(s) checked, 1 problem(s)", f.read())
        self.assertTrue([e for e in self.events if "plaintext password for 'bob'" in str(e.get("problem"))])
        os.remove(self.passwd)
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertTrue([e for e in self.events if e.get("path") == self.passwd and "error" in e])
        self.assertEqual(len([e for e in self.events if e.get("event_type") == "reload"]), 2)

    def test_sighup_reopens_access_log(self) -> None:
        """
        SIGHUP also reopens the finger access log; an access log that cannot be reopened is an error event and
        the old file stays in use.
        """
        from twisted.internet.task import Clock

        from sshfinger.finger.accesslog import AccessLog

        path = os.path.join(self.directory, "finger.log")
        access = AccessLog(path, Clock())
        access.startService()
        self.addCleanup(access.stopService)
        service = ReloadService(ImmediateReactor(), [], access_log=access)
        service.startService()
        self.addCleanup(service.stopService)
        os.rename(path, path + ".1")
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertTrue(os.path.exists(path))
        access.path = os.path.join(self.directory, "missing", "finger.log")
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertTrue([e for e in self.events if e.get("path") == access.path and "error" in e])

    def test_stop_restores_handler(self) -> None:
        """
        Stopping gives SIGHUP back to its previous handler.
        """
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)
        self.service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)
        self.service.startService()


class NotifyTests(SynchronousTestCase):
    """
    L{sshfinger.ops.notify.notify}: systemd's readiness datagram.
    """

    def receiver(self, address: str) -> socket.socket:
        """
        A datagram socket bound to C{address} (C{@name}: the abstract namespace), closed at the end.
        """
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.bind("\0" + address[1:] if address.startswith("@") else address)
        s.settimeout(5)
        return s

    def test_path_and_abstract(self) -> None:
        """
        The state reaches a socket named by a path, and one in the abstract namespace (C{@...}).
        """
        path = os.path.join(tempfile.mkdtemp(), "n")
        self.addCleanup(os.remove, path)
        s = self.receiver(path)
        self.assertTrue(notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": path}))
        self.assertEqual(s.recv(100), b"READY=1\nSTATUS=serving")
        abstract = f"@sshfinger-test-{os.getpid()}"
        s = self.receiver(abstract)
        self.assertTrue(notify("STOPPING=1", {"NOTIFY_SOCKET": abstract}))
        self.assertEqual(s.recv(100), b"STOPPING=1")

    def test_outside_systemd(self) -> None:
        """
        Without C{NOTIFY_SOCKET} nothing is sent; a socket that is not there is a warning, not an exception.
        """
        self.assertFalse(notify("READY=1", {}))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.assertFalse(notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"}))
        self.assertEqual([e["address"] for e in events if "address" in e], ["/nonexistent/notify"])
