"""
Announcer: the announce schedule on a clock: soon after start, faster at first, jittered,
stopped without a timer left behind; a failing send is counted and said once.
"""

from __future__ import annotations

import errno
import random
from itertools import pairwise
from collections import Counter

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.discovery.sender import FIRST_DELAY, Announcer

DESTINATIONS = [("255.255.255.255", 8004), ("239.255.80.80", 8004)]


class AnnouncerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters: Counter[str] = Counter()
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.rounds = 0
        self.error: OSError | None = None

    def datagrams(self) -> list[tuple[bytes, tuple[str, int]]]:
        self.rounds += 1
        return [(b"round %d" % self.rounds, d) for d in DESTINATIONS]

    def write(self, data: bytes, destination: tuple[str, int]) -> None:
        if self.error is not None:
            raise self.error
        self.written.append((data, destination))

    def announcer(self, interval: float = 10.0, seed: int = 1) -> Announcer:
        return Announcer(self.clock, self.datagrams, self.write, self.counters, interval,
                         random.Random(seed))

    def send_times(self, announcer: Announcer, until: float) -> list[float]:
        times = []
        while self.clock.seconds() < until:
            before = self.rounds
            self.clock.advance(0.01)
            if self.rounds != before:
                times.append(self.clock.seconds())
        return times

    def test_schedule(self) -> None:
        """The first round within FIRST_DELAY of start; then waits of about 1, 2, 4, 8 s,
        then the interval, each within 10% plus 100-300 ms."""
        announcer = self.announcer(interval=10.0)
        announcer.start()
        times = self.send_times(announcer, 60)
        self.assertLessEqual(times[0], FIRST_DELAY + 0.01)
        waits = [b - a for a, b in pairwise(times)]
        for wait, nominal in zip(waits, [1, 2, 4, 8, 10, 10, 10]):
            self.assertGreaterEqual(wait, nominal * 0.9 + 0.1 - 0.011)
            self.assertLessEqual(wait, nominal * 1.1 + 0.3 + 0.011)
        self.assertEqual(self.counters["sent"], 2 * len(times))
        self.assertEqual({d for _, d in self.written}, set(DESTINATIONS))

    def test_jitter_differs_between_nodes(self) -> None:
        """Two nodes started together do not announce in step."""
        first = self.announcer(seed=1)
        second = Announcer(self.clock, self.datagrams, self.write, Counter(), 10.0,
                           random.Random(2))
        first.start()
        second.start()
        calls = sorted(call.getTime() for call in self.clock.getDelayedCalls())
        self.assertNotEqual(calls[0], calls[1])

    def test_short_interval_caps_the_fast_start(self) -> None:
        """With an interval under the fast start's waits, every wait is about the interval."""
        announcer = self.announcer(interval=0.5)
        announcer.start()
        times = self.send_times(announcer, 10)
        waits = [b - a for a, b in pairwise(times)]
        self.assertTrue(all(0.5 * 0.9 + 0.1 - 0.011 <= w <= 0.5 * 1.1 + 0.3 + 0.011
                            for w in waits), waits)

    def test_stop_leaves_no_timer(self) -> None:
        """Stopping cancels the next round; a second start does nothing more than one."""
        announcer = self.announcer()
        announcer.start()
        announcer.start()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.pump([0.1] * 50)
        self.assertGreater(self.counters["sent"], 0)
        announcer.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(announcer.running)
        sent = self.counters["sent"]
        self.clock.advance(100)
        self.assertEqual(self.counters["sent"], sent)

    def test_nothing_to_announce(self) -> None:
        """A round with no datagrams (no listening port yet) sends nothing, and the schedule
        goes on."""
        announcer = Announcer(self.clock, list, self.write, self.counters, 10.0)
        announcer.start()
        self.clock.pump([0.1] * 300)
        self.assertEqual(self.written, [])
        self.assertTrue(announcer.running)

    def test_send_failure_counted_and_said_once(self) -> None:
        """A send that fails (no route) is counted each time, warned about once per kind of
        error, and the schedule goes on."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.error = OSError(errno.ENETUNREACH, "Network is unreachable")
        announcer = self.announcer()
        announcer.start()
        self.clock.pump([0.1] * 40)
        self.assertGreaterEqual(self.counters["send_failed"], 4)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["why"], "Network is unreachable")
        self.error = None
        self.clock.pump([0.1] * 100)
        self.assertGreater(self.counters["sent"], 0)
        self.assertTrue(announcer.running)

    def test_interval_must_be_positive(self) -> None:
        """An interval of 0 (a busy loop) is refused."""
        self.assertRaises(ValueError, self.announcer, interval=0)
