# -*- test-case-name: tests.test_channel_timers -*-
"""
Tests for L{p2pnet_tx.channel.timers}: the deadline queue that wakes many channels with one
DelayedCall, and the idle, keep-alive and partial-frame deadlines of one channel.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits
from p2pnet_tx.channel.timers import COMPACT_AFTER, ChannelTimers, DeadlineQueue
from p2pnet_tx.errors import MalformedPacket


class Sleeper:
    """Records when it is woken, and asks for the next wake-ups it is given."""

    def __init__(self, clock: Clock, again: list[float | None] | None = None) -> None:
        self._wake_at: float | None = None
        self.clock = clock
        self.woken: list[float] = []
        self.again = list(again or [])

    def _woken(self, now: float) -> float | None:
        self.woken.append(now)
        return self.again.pop(0) if self.again else None


class DeadlineQueueTests(SynchronousTestCase):
    """One DelayedCall wakes every sleeper at its time, in order."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.queue = DeadlineQueue(self.clock)

    def test_one_delayed_call_for_many(self) -> None:
        """However many sleepers wait, the clock holds one call, for the earliest."""
        sleepers = [Sleeper(self.clock) for _ in range(100)]
        for number, sleeper in enumerate(sleepers):
            self.queue.wake(sleeper, 100.0 - number)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 1.0)
        self.clock.pump([1.0] * 100)
        self.assertEqual([s.woken for s in sleepers], [[100.0 - n] for n in range(100)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wakes_in_time_order(self) -> None:
        """Sleepers wake at their own times, not before."""
        late, early = Sleeper(self.clock), Sleeper(self.clock)
        self.queue.wake(late, 20.0)
        self.queue.wake(early, 5.0)
        self.clock.advance(4.9)
        self.assertEqual((early.woken, late.woken), ([], []))
        self.clock.advance(0.1)
        self.assertEqual((early.woken, late.woken), ([5.0], []))
        self.clock.advance(15.0)
        self.assertEqual(late.woken, [20.0])

    def test_rewake_from_woken(self) -> None:
        """A sleeper that asks for a later wake-up when woken gets it."""
        sleeper = Sleeper(self.clock, again=[30.0, 60.0, None])
        self.queue.wake(sleeper, 10.0)
        self.clock.pump([10.0] * 10)
        self.assertEqual(sleeper.woken, [10.0, 30.0, 60.0])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_earlier_wake_replaces(self) -> None:
        """An earlier wake-up replaces a later one; a later one keeps the earlier."""
        sleeper = Sleeper(self.clock)
        self.queue.wake(sleeper, 50.0)
        self.queue.wake(sleeper, 10.0)
        self.queue.wake(sleeper, 70.0)
        self.clock.advance(10.0)
        self.clock.advance(90.0)
        self.assertEqual(sleeper.woken, [10.0])

    def test_forget(self) -> None:
        """A forgotten sleeper is not woken, and an empty queue holds no call."""
        sleeper = Sleeper(self.clock)
        self.queue.wake(sleeper, 10.0)
        self.queue.forget(sleeper)
        self.clock.advance(20.0)
        self.assertEqual(sleeper.woken, [])
        self.assertEqual(len(self.queue), 0)

    def test_stale_entries_are_compacted(self) -> None:
        """Sleepers forgotten in numbers (a churn of connections) do not pile up."""
        sleepers = [Sleeper(self.clock) for _ in range(3 * COMPACT_AFTER)]
        for sleeper in sleepers:
            self.queue.wake(sleeper, 90.0)
        for sleeper in sleepers[1:]:
            self.queue.forget(sleeper)
        self.assertLess(len(self.queue._heap), COMPACT_AFTER + 2)
        self.assertEqual(len(self.queue), 1)
        self.clock.advance(90.0)
        self.assertEqual(sleepers[0].woken, [90.0])


class RecordingChannel:
    """What the timers do to a channel, recorded with the time."""

    peer = "peer"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[tuple[str, float]] = []
        self.counters: Counter[str] = Counter()

    def close(self, reason: str) -> None:
        self.events.append(("idle" if reason == "idle timeout" else reason,
                            self.clock.seconds()))

    def _keepalive_due(self) -> None:
        self.events.append(("keepalive", self.clock.seconds()))

    def _misbehaved(self, error: Exception) -> None:
        assert isinstance(error, MalformedPacket) and "incomplete" in str(error)
        self.events.append(("partial", self.clock.seconds()))


class ChannelTimersTests(SynchronousTestCase):
    """The three deadlines of one channel fire at the right times."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.channel = RecordingChannel(self.clock)
        self.events = self.channel.events
        self.timers = ChannelTimers(
            self.channel, ChannelLimits(idle_timeout=90.0, keepalive_interval=30.0,
                                        partial_frame_timeout=30.0),
            DeadlineQueue(self.clock),
        )
        self.timers.start(0.0)

    def test_one_delayed_call(self) -> None:
        """However many deadlines run, the channel's queue holds one DelayedCall."""
        self.timers.partial_frame(0.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_keepalive_then_idle(self) -> None:
        """With nothing received, keep-alives go out every 30 s until idle closes at 90 s."""
        self.clock.pump([10.0] * 10)
        self.assertEqual(self.events, [("keepalive", 30.0), ("keepalive", 60.0), ("idle", 90.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_traffic_moves_the_deadlines(self) -> None:
        """Received bytes push idle back; sent packets push the keep-alive back."""
        for _ in range(200):
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
        self.assertEqual(self.channel.counters["partial_frame_timeouts"], 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_completed_frame_clears(self) -> None:
        """partial_frame(None): no frame is incomplete, nothing expires."""
        self.timers.partial_frame(0.0)
        self.timers.partial_frame(None)
        for _ in range(40):
            self.clock.advance(1.0)
            self.timers.received(self.clock.seconds())
        self.assertNotIn("partial", [name for name, _ in self.events])

    def test_stop(self) -> None:
        """Stopped timers never fire, and leave no call behind."""
        self.timers.stop()
        self.clock.advance(200.0)
        self.assertEqual(self.events, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_disabled_deadlines(self) -> None:
        """With every deadline None, nothing is scheduled."""
        clock = Clock()
        timers = ChannelTimers(RecordingChannel(clock),
                               ChannelLimits(idle_timeout=None, keepalive_interval=None,
                                             partial_frame_timeout=None),
                               DeadlineQueue(clock))
        timers.start(0.0)
        timers.partial_frame(0.0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_deadline_on_a_rounding_boundary(self) -> None:
        """
        At a time t where (t + 90) - t < 90 in floating point, the idle deadline still fires
        once at t + 90 (the check used to disagree with the schedule, and the queue woke the
        timers at the same time forever).
        """
        clock = Clock()
        clock.rightNow = 78.19673047987364
        channel = RecordingChannel(clock)
        timers = ChannelTimers(channel, ChannelLimits(keepalive_interval=None),
                               DeadlineQueue(clock))
        timers.start(clock.seconds())
        clock.advance(90)
        self.assertEqual([name for name, _ in channel.events], ["idle"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_channels_share_a_queue(self) -> None:
        """Two channels' timers on one queue: one DelayedCall, each fires at its own time."""
        clock = Clock()
        queue = DeadlineQueue(clock)
        limits = ChannelLimits(idle_timeout=90.0, keepalive_interval=None,
                               partial_frame_timeout=None)
        first, second = RecordingChannel(clock), RecordingChannel(clock)
        ChannelTimers(first, limits, queue).start(0.0)
        clock.advance(10.0)
        ChannelTimers(second, limits, queue).start(10.0)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(80.0)
        self.assertEqual((first.events, second.events), ([("idle", 90.0)], []))
        clock.advance(10.0)
        self.assertEqual(second.events, [("idle", 100.0)])
