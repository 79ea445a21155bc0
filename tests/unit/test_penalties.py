"""
Tests for L{sshfinger.ssh.penalties.SourcePenalties}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sshfinger.ssh.penalties import SourcePenalties


class PenaltyTests(SynchronousTestCase):
    """
    Counting failures and refusing sources.
    """

    def setUp(self) -> None:
        """
        Penalties after 3 failures within 60 s, 30 s at first.
        """
        self.clock = Clock()
        self.penalties = SourcePenalties(self.clock, threshold=3, window=60, penalty=30, max_penalty=100)

    def test_threshold(self) -> None:
        """
        The third failure within the window earns a penalty; the source is refused until it expires; other
        sources are not affected.
        """
        self.assertEqual([self.penalties.failed("10.0.0.1") for _ in range(3)], [0, 0, 30])
        self.assertEqual(self.penalties.blocked("10.0.0.1"), 30)
        self.assertEqual(self.penalties.blocked("10.0.0.2"), 0)
        self.clock.advance(30)
        self.assertEqual(self.penalties.blocked("10.0.0.1"), 0)

    def test_window(self) -> None:
        """
        Failures spread wider than the window earn nothing.
        """
        for _ in range(5):
            self.assertEqual(self.penalties.failed("10.0.0.1"), 0)
            self.clock.advance(31)

    def test_doubling(self) -> None:
        """
        Each further penalty doubles, up to the maximum.
        """
        earned = []
        for _ in range(4):
            earned.append([self.penalties.failed("10.0.0.1") for _ in range(3)][-1])
            self.clock.advance(200)
        self.assertEqual(earned, [30, 60, 100, 100])

    def test_attempts_in_flight_count(self) -> None:
        """
        Attempts started and not yet finished count toward the threshold: with 3 in flight a fourth is refused
        (no penalty yet: they may succeed), so parallel guessing gets no more checks than serial guessing; when
        the three fail, the third earns the penalty.
        """
        started = [self.penalties.begin("10.0.0.1") for _ in range(5)]
        self.assertEqual(started, [True, True, True, False, False])
        self.assertEqual(self.penalties.blocked("10.0.0.1"), 0)
        self.assertTrue(self.penalties.begin("10.0.0.2"))
        self.assertEqual([self.penalties.end("10.0.0.1", failed=True) for _ in range(3)], [0, 0, 30])
        self.assertFalse(self.penalties.begin("10.0.0.1"))

    def test_serial_attempts(self) -> None:
        """
        Serial attempts are counted once each: the third failure earns the penalty, as with L{failed}; a
        success is not a failure.
        """
        self.assertTrue(self.penalties.begin("10.0.0.1"))
        self.assertEqual(self.penalties.end("10.0.0.1", failed=False), 0)
        earned = []
        for _ in range(3):
            self.assertTrue(self.penalties.begin("10.0.0.1"))
            earned.append(self.penalties.end("10.0.0.1", failed=True))
        self.assertEqual(earned, [0, 0, 30])
        self.assertFalse(self.penalties.begin("10.0.0.1"))
