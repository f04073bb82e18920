# -*- test-case-name: tests.test_channel_timers -*-
"""
Tests for L{p2pnet_tx.channel.timers}: the idle, keep-alive and partial-frame deadlines on one
lazy timer.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits
from p2pnet_tx.channel.timers import ChannelTimers, LazyTimer


class LazyTimerTests(SynchronousTestCase):
    """A lazy timer asks its check when to fire again, and stops for good."""

    def test_rearms_from_check(self) -> None:
        """The check's answer is the next delay; None stops the timer."""
        clock = Clock()
        answers = [5.0, None]
        fired: list[float] = []

        def check() -> float | None:
            fired.append(clock.seconds())
            return answers.pop(0)

        timer = LazyTimer(clock, check)
        timer.start(1.0)
        clock.advance(1.0)
        clock.advance(5.0)
        self.assertEqual(fired, [1.0, 6.0])
        self.assertFalse(timer.active)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_is_final(self) -> None:
        """A stopped timer cannot be started again."""
        clock = Clock()
        timer = LazyTimer(clock, lambda: 1.0)
        timer.start(1.0)
        timer.stop()
        timer.start(1.0)
        self.assertEqual(clock.getDelayedCalls(), [])


class ChannelTimersTests(SynchronousTestCase):
    """The three deadlines share one DelayedCall and fire at the right times."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[tuple[str, float]] = []
        self.timers = ChannelTimers(
            self.clock, ChannelLimits(idle_timeout=90.0, keepalive_interval=30.0,
                                      partial_frame_timeout=30.0),
            idle=lambda: self.events.append(("idle", self.clock.seconds())),
            keepalive=lambda: self.events.append(("keepalive", self.clock.seconds())),
            partial_frame_expired=lambda: self.events.append(("partial", self.clock.seconds())),
        )
        self.timers.start()

    def test_one_delayed_call(self) -> None:
        """However many deadlines run, the channel holds one DelayedCall."""
        self.timers.partial_frame(0.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_keepalive_then_idle(self) -> None:
        """With nothing received, keep-alives go out every 30 s until idle closes at 90 s."""
        self.clock.pump([10.0] * 10)
        self.assertEqual(self.events, [("keepalive", 30.0), ("keepalive", 60.0), ("idle", 90.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_traffic_moves_the_deadlines(self) -> None:
        """Received bytes push idle back; sent packets push the keep-alive back."""
        for second in range(1, 200):
            self.clock.advance(1.0)
            self.timers.received(self.clock.seconds())
            self.timers.sent(self.clock.seconds())
        self.assertEqual(self.events, [])

    def test_partial_frame(self) -> None:
        """A frame incomplete for 30 s expires once, and nothing is left running."""
        self.clock.advance(5.0)
        self.timers.partial_frame(5.0)
        self.timers.received(6.0)
        self.timers.sent(6.0)
        self.clock.advance(29.9)
        self.assertEqual(self.events, [])
        self.clock.advance(0.1)
        self.assertEqual(self.events, [("partial", 35.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_completed_frame_clears(self) -> None:
        """partial_frame(None): no frame is incomplete, nothing expires."""
        self.timers.partial_frame(0.0)
        self.timers.partial_frame(None)
        for _ in range(40):
            self.clock.advance(1.0)
            self.timers.received(self.clock.seconds())
        self.assertNotIn("partial", [name for name, _ in self.events])

    def test_disabled_deadlines(self) -> None:
        """With every deadline None, nothing is scheduled."""
        clock = Clock()
        timers = ChannelTimers(clock, ChannelLimits(idle_timeout=None, keepalive_interval=None,
                                                    partial_frame_timeout=None),
                               lambda: None, lambda: None, lambda: None)
        timers.start()
        timers.partial_frame(0.0)
        self.assertEqual(clock.getDelayedCalls(), [])
