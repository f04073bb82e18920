"""
Tests for L{p2pnet_tx.channel.loglimit}: the token bucket over the lines logged about a peer.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel.loglimit import LogLimiter


class LogLimiterTests(SynchronousTestCase):
    """A burst of lines, then a steady rate; what is over it is counted."""

    def test_burst_then_refused(self) -> None:
        """The first C{burst} lines pass at once; the next ones are refused and counted."""
        limiter = LogLimiter(3, 60.0, now=100.0)
        self.assertEqual([limiter.admit(100.0) for _ in range(5)],
                         [True, True, True, False, False])
        self.assertEqual(limiter.suppressed, 2)
        self.assertEqual(limiter.take_suppressed(), 2)
        self.assertEqual(limiter.take_suppressed(), 0)

    def test_refills_at_the_rate(self) -> None:
        """A spent bucket gives one line per window/burst seconds, never more than a burst."""
        limiter = LogLimiter(3, 60.0, now=0.0)
        for _ in range(3):
            limiter.admit(0.0)
        self.assertFalse(limiter.admit(19.9))
        self.assertTrue(limiter.admit(20.1))
        self.assertFalse(limiter.admit(20.2))
        # A long silence fills the bucket to its burst, and no further.
        self.assertEqual([limiter.admit(10_000.0) for _ in range(4)], [True, True, True, False])

    def test_clock_set_back(self) -> None:
        """A clock that goes back neither fills the bucket nor breaks it."""
        limiter = LogLimiter(1, 10.0, now=50.0)
        self.assertTrue(limiter.admit(50.0))
        self.assertFalse(limiter.admit(0.0))
        self.assertFalse(limiter.admit(9.0))
        self.assertTrue(limiter.admit(10.0))

    def test_bounded_over_a_flood(self) -> None:
        """100,000 lines within 5 seconds: the burst passes, and 5 s refill less than a line."""
        limiter = LogLimiter(10, 60.0, now=0.0)
        passed = sum(limiter.admit(index * 0.00005) for index in range(100_000))
        self.assertEqual(passed, 10)
        self.assertEqual(limiter.suppressed, 100_000 - passed)

    def test_arguments_checked(self) -> None:
        """A burst under 1 or a window of 0 or less is a ValueError."""
        for burst, window in ((0, 60.0), (1, 0.0), (1, -1.0)):
            self.assertRaises(ValueError, LogLimiter, burst, window, 0.0)

    def test_small(self) -> None:
        """A limiter has no instance dict: a channel that logs pays a few dozen bytes."""
        self.assertFalse(hasattr(LogLimiter(1, 1.0, 0.0), "__dict__"))
