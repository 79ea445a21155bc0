"""
Tests for L{sshfinger.finger.accesslog}: where finger queries are recorded.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger, formatEventAsClassicLogText
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sshfinger.finger import constants
from sshfinger.finger.accesslog import (
    BUFFER_LIMIT,
    FLUSH_INTERVAL,
    AccessLog,
    BatchedEventLog,
    EventQueryLog,
    IQueryLog,
)


class EventQueryLogTests(SynchronousTestCase):
    """
    L{EventQueryLog}: each query is an info event with its fields.
    """

    def test_event_fields(self) -> None:
        """
        A query becomes one event of the given logger with C{peer}, C{query} and C{outcome}, formatted as
        C{"finger PEER QUERY -> OUTCOME"}.
        """
        events: list[dict[str, Any]] = []
        query_log = EventQueryLog(Logger(namespace="sshfinger.test", observer=events.append))
        verifyObject(IQueryLog, query_log)
        query_log.query("192.0.2.7:40000", "'alice'", "user")
        [event] = events
        self.assertEqual((event["peer"], event["query"], event["outcome"]), ("192.0.2.7:40000", "'alice'", "user"))
        self.assertEqual(event["log_namespace"], "sshfinger.test")
        self.assertEqual(event["log_format"], "finger {peer} {query} -> {outcome}")


class BatchedEventLogTests(SynchronousTestCase):
    """
    L{BatchedEventLog}: the default, queries in the main log, one event per batch.
    """

    def setUp(self) -> None:
        """
        A batched log over a captured logger and a clock.
        """
        self.events: list[dict[str, Any]] = []
        self.clock = Clock()
        self.log = BatchedEventLog(self.clock, Logger(namespace="sshfinger.test", observer=self.events.append))
        verifyObject(IQueryLog, self.log)

    def test_one_event_per_turn(self) -> None:
        """
        Queries within one reactor turn become one info event, its text one line per query, each line as the
        event-per-query log wrote it; the text observer writes the first on the event's line, the others indented.
        """
        self.log.query("192.0.2.7:40000", "'alice'", "user")
        self.log.query("192.0.2.8:40000", "'bob'", "no-such-user")
        self.assertEqual(self.events, [])
        self.clock.advance(0)
        [event] = self.events
        self.assertEqual(event["queries"], ["finger 192.0.2.7:40000 'alice' -> user",
                                            "finger 192.0.2.8:40000 'bob' -> no-such-user"])  # fmt: skip
        self.assertEqual(event["log_level"].name, "info")
        text = formatEventAsClassicLogText(event)
        self.assertIn("] finger 192.0.2.7:40000 'alice' -> user\n\tfinger 192.0.2.8:40000 'bob' -> no-such-user\n", text)
        self.clock.advance(10)
        self.assertEqual(len(self.events), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_full_batch_and_flush(self) -> None:
        """
        L{constants.BATCH_LINES} waiting queries are logged at once; L{BatchedEventLog.flush} logs the rest and
        cancels the timer.
        """
        self.patch(constants, "BATCH_LINES", 3)
        for n in range(4):
            self.log.query("local", f"'u{n}'", "user")
        self.assertEqual([len(e["queries"]) for e in self.events], [3])
        self.log.flush()
        self.assertEqual([len(e["queries"]) for e in self.events], [3, 1])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class AccessLogTests(SynchronousTestCase):
    """
    L{AccessLog}: one line per query, written in batches.
    """

    def setUp(self) -> None:
        """
        An access log in a temporary directory, started, with the clock at 1 800 000 000.5.
        """
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "finger.log")
        self.clock = Clock()
        self.clock.advance(1_800_000_000.5)
        self.access = AccessLog(self.path, self.clock)
        self.access.startService()
        self.addCleanup(self.access.stopService)

    def query(self, peer: str = "192.0.2.7:40000", query: str = "'alice'", outcome: str = "user") -> None:
        """
        Record one query, the way L{sshfinger.finger.protocol.FingerProtocol} does.
        """
        self.access.query(peer, query, outcome)

    def written(self) -> str:
        """
        What the file holds now.
        """
        with open(self.path, encoding="utf-8") as f:
            return f.read()

    def test_line_format(self) -> None:
        """
        A query becomes one line: the clock's local time as twistd writes it, C{[finger]}, peer, query and
        outcome.
        """
        verifyObject(IQueryLog, self.access)
        self.query()
        self.clock.advance(FLUSH_INTERVAL)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(1_800_000_000))
        self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")
        self.assertEqual(self.written(), f"{stamp} [finger] 192.0.2.7:40000 'alice' -> user\n")

    def test_batched_until_the_interval(self) -> None:
        """
        Lines wait in memory until L{FLUSH_INTERVAL} has passed since the first of them, then are written in order
        with one timed call for the whole batch.
        """
        self.query(query="'one'")
        self.query(query="'two'")
        self.assertEqual(self.written(), "")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(FLUSH_INTERVAL)
        self.assertEqual([line.split()[3] for line in self.written().splitlines()], ["'one'", "'two'"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_full_buffer_written_at_once(self) -> None:
        """
        Once L{BUFFER_LIMIT} characters wait, they are written without waiting for the timer.
        """
        long_query = "'" + "x" * 200 + "'"
        for _ in range(BUFFER_LIMIT // 200 + 1):
            self.query(query=long_query)
        self.assertGreaterEqual(len(self.written()), BUFFER_LIMIT)

    def test_stop_writes_everything(self) -> None:
        """
        Stopping writes the waiting lines and closes the file; nothing is lost on a clean stop.
        """
        for n in range(5):
            self.query(query=f"'q{n}'")
        self.access.stopService()
        self.assertEqual(len(self.written().splitlines()), 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lines_before_start_kept(self) -> None:
        """
        Queries logged before the service starts are written when it does.
        """
        early = AccessLog(os.path.join(self.directory, "early.log"), self.clock)
        early.query("p", "'q'", "user")
        early.startService()
        early.stopService()
        with open(early.path) as f:
            self.assertIn("p 'q' -> user", f.read())

    def test_reopen_after_rotation(self) -> None:
        """
        After the file is moved away, L{AccessLog.reopen} writes the waiting lines to the old file and later ones
        to a new file at the path.
        """
        self.query(query="'before'")
        os.rename(self.path, self.path + ".1")
        self.access.reopen()
        self.query(query="'after'")
        self.clock.advance(FLUSH_INTERVAL)
        with open(self.path + ".1") as f:
            self.assertIn("'before'", f.read())
        self.assertIn("'after'", self.written())
        self.assertNotIn("'before'", self.written())

    def test_failed_reopen_keeps_old_file(self) -> None:
        """
        A reopen that cannot open the path raises and keeps writing to the file already open.
        """
        os.rename(self.path, self.path + ".1")
        self.access.path = os.path.join(self.directory, "missing", "finger.log")
        self.assertRaises(OSError, self.access.reopen)
        self.query(query="'still'")
        self.clock.advance(FLUSH_INTERVAL)
        with open(self.path + ".1") as f:
            self.assertIn("'still'", f.read())

    def test_cannot_open_stops_with_one_line(self) -> None:
        """
        Starting with a path that cannot be opened raises L{SystemExit} with one line (twistd exits with it).
        """
        access = AccessLog(self.directory, self.clock)
        error = self.assertRaises(SystemExit, access.startService)
        self.assertEqual(str(error), f"sshfinger: cannot open the access log {self.directory}: Is a directory")
        self.assertFalse(access.running)

    def test_write_error_reported_once(self) -> None:
        """
        A full disk (C{/dev/full}) drops the lines and is reported once in the main log, not once per batch.
        """
        if not os.path.exists("/dev/full"):
            raise self.skipTest("no /dev/full")  # pragma: no cover
        full = AccessLog("/dev/full", self.clock)
        full.startService()
        errors: list[dict] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, errors.append)
        for _ in range(3):
            full.query("p", "'q'", "user")
            self.clock.advance(FLUSH_INTERVAL)
        full.stopService()
        reported = [e for e in errors if e.get("path") == "/dev/full"]
        self.assertEqual(len(reported), 1)
        self.assertIn("No space left", reported[0]["error"])
