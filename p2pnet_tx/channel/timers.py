# -*- test-case-name: tests.test_channel_timers -*-
"""
The deadlines of open channels: idle, keep-alive and partial frame.

Every packet moves these deadlines, but they rarely expire.  Moving one is an attribute write;
a L{DeadlineQueue} wakes each channel's L{ChannelTimers} at the earliest time one of its
deadlines could pass, and the timers check then whether it really did.  One queue serves every
channel of a network with a single L{IDelayedCall}: a DelayedCall costs about 400 bytes, as
much as the rest of an idle channel's timers together.
"""

from __future__ import annotations

import heapq
import math
from itertools import count
from typing import TYPE_CHECKING, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from p2pnet_tx.channel.limits import ChannelLimits
from p2pnet_tx.errors import MalformedPacket

if TYPE_CHECKING:
    from collections.abc import Iterator

    from p2pnet_tx.channel.protocol import PeerChannel

_log = Logger(namespace="p2pnet_tx.channel.timers")

COMPACT_AFTER = 1024
"""Stale entries tolerated in a queue before it is rebuilt (when they are half of it)."""


class Sleeper(Protocol):
    """What a L{DeadlineQueue} wakes."""

    _wake_at: float | None

    def _woken(self, now: float) -> float | None:
        """Do what is due at C{now}; return when to be woken next, or None."""


class DeadlineQueue:
    """
    Wakes many sleepers, each at its own time, with one
    L{IDelayedCall <twisted.internet.interfaces.IDelayedCall>}.

    A sleeper has one pending wake-up at a time (its C{_wake_at}); asking for an earlier one
    replaces it, and the replaced entry, left in the heap, is skipped when it comes up.

    @param clock: the clock of every deadline in the queue.
    """

    __slots__ = ("_clock", "_heap", "_call", "_order", "_stale", "_waking")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Sleeper]] = []
        self._call: IDelayedCall | None = None
        self._order: Iterator[int] = count()
        self._stale = 0
        self._waking = False

    def __len__(self) -> int:
        """The sleepers waiting."""
        return len(self._heap) - self._stale

    def wake(self, sleeper: Sleeper, when: float) -> None:
        """Wake C{sleeper} at C{when} (or at its earlier wake-up, if it has one)."""
        if sleeper._wake_at is not None:
            if sleeper._wake_at <= when:
                return
            self._stale += 1
        sleeper._wake_at = when
        heapq.heappush(self._heap, (when, next(self._order), sleeper))
        if not self._waking:
            self._reschedule()

    def forget(self, sleeper: Sleeper) -> None:
        """Never wake C{sleeper} again (unless it asks anew)."""
        if sleeper._wake_at is not None:
            sleeper._wake_at = None
            self._stale += 1
            if self._waking:
                return  # _fire is walking the heap: tidy it afterwards, not now
            if self._stale == len(self._heap):
                # Nobody left to wake: no call either.
                self._heap.clear()
                self._stale = 0
                self._reschedule()
            elif self._stale > COMPACT_AFTER and self._stale * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2]._wake_at == entry[0]]
                heapq.heapify(self._heap)
                self._stale = 0
                self._reschedule()

    def _reschedule(self) -> None:
        if not self._heap:
            if self._call is not None and self._call.active():
                self._call.cancel()
            self._call = None
            return
        delay = max(self._heap[0][0] - self._clock.seconds(), 0.0)
        if self._call is None or not self._call.active():
            self._call = self._clock.callLater(delay, self._fire)
        elif self._heap[0][0] < self._call.getTime():
            self._call.reset(delay)

    def _fire(self) -> None:
        self._call = None
        now = self._clock.seconds()
        again: list[tuple[Sleeper, float]] = []
        self._waking = True
        try:
            while self._heap and self._heap[0][0] <= now:
                when, _, sleeper = heapq.heappop(self._heap)
                if sleeper._wake_at != when:
                    self._stale -= 1
                    continue
                sleeper._wake_at = None
                later = sleeper._woken(now)
                if later is not None:
                    again.append((sleeper, later))
        finally:
            self._waking = False
            # Pushed after the loop: a sleeper asking for "now" again waits for the next call
            # instead of spinning this one.
            for sleeper, later in again:
                self.wake(sleeper, max(later, math.nextafter(now, math.inf)))
            self._reschedule()


class ChannelTimers:
    """
    The idle, keep-alive and partial-frame deadlines of one open channel.

    The channel reports what happens (L{received}, L{sent}, L{partial_frame}); when a deadline
    passes the timers act on it: an idle channel is closed, a peer whose frame stays incomplete
    is dropped as misbehaving, and the channel is asked for a keep-alive when it has sent
    nothing for a while.  A deadline set to None in the limits is never checked.

    @param channel: the channel the deadlines are of.
    @param limits: C{idle_timeout}, C{keepalive_interval} and C{partial_frame_timeout}.
    @param queue: the queue that wakes these timers; one per network, or the channel's own.

    @ivar last_received: when bytes last arrived: when the peer was last seen.
    @ivar last_sent: when a packet was last sent (a keep-alive included: on a channel that
        echoes keep-alives, the time of the last one is what tells its echo apart).
    @ivar rtt: the round-trip time, in seconds, of the last keep-alive that the peer echoed;
        C{None} until one is (see L{PeerChannel.rtt <p2pnet_tx.channel.PeerChannel.rtt>}).
    """

    __slots__ = (
        "_channel", "_limits", "_queue", "_stopped", "_wake_at", "last_received",
        "last_sent", "_partial_since", "rtt",
    )

    def __init__(self, channel: PeerChannel, limits: ChannelLimits, queue: DeadlineQueue) -> None:
        self._channel = channel
        self._limits = limits
        self._queue = queue
        self._stopped = False
        self._wake_at: float | None = None
        self.last_received = self.last_sent = 0.0
        self._partial_since: float | None = None
        self.rtt: float | None = None

    def start(self, now: float) -> None:
        """Start the deadlines, counted from C{now}."""
        self.last_received = self.last_sent = now
        self._schedule(now)

    def stop(self) -> None:
        """Stop every deadline for good."""
        self._stopped = True
        self._queue.forget(self)

    def received(self, now: float) -> None:
        """Bytes arrived at C{now}."""
        self.last_received = now

    def sent(self, now: float) -> None:
        """A packet was sent at C{now}."""
        self.last_sent = now

    def echo_received(self, now: float) -> None:
        """
        The peer echoed, at C{now}, the keep-alive sent at L{last_sent}: its round trip is
        the new L{rtt}.  (The channel checks that the echo is of that keep-alive.)
        """
        self.rtt = max(now - self.last_sent, 0.0)

    def partial_frame(self, now: float | None) -> None:
        """
        A frame is incomplete since C{now} (None: no frame is incomplete).  A frame that stays
        incomplete keeps the time it started at: call this with a new time only when a frame
        completed and another one started.
        """
        self._partial_since = now
        if now is not None:
            self._schedule(now)

    @property
    def partial_since(self) -> float | None:
        """Since when a frame is incomplete, or None."""
        return self._partial_since

    def _schedule(self, now: float) -> None:
        when = self._next_check()
        if when is not None and not self._stopped:
            self._queue.wake(self, when)

    def _next_check(self) -> float | None:
        limits = self._limits
        times = []
        if limits.idle_timeout is not None:
            times.append(self.last_received + limits.idle_timeout)
        if limits.keepalive_interval is not None:
            times.append(self.last_sent + limits.keepalive_interval)
        if limits.partial_frame_timeout is not None and self._partial_since is not None:
            times.append(self._partial_since + limits.partial_frame_timeout)
        return min(times) if times else None

    def _woken(self, now: float) -> float | None:
        if self._stopped:
            return None
        limits = self._limits
        channel = self._channel
        # Each deadline is compared exactly as _next_check computes it: "now - last >= timeout"
        # can be false in floating point when "now >= last + timeout" is true, and the queue
        # would then wake this sleeper again and again at the same time.
        if limits.idle_timeout is not None and now >= self.last_received + limits.idle_timeout:
            self._stopped = True
            _log.info("peer {peer} idle for {timeout} s", peer=channel.peer,
                      timeout=limits.idle_timeout)
            channel.close("idle timeout")
            return None
        if (
            limits.partial_frame_timeout is not None
            and self._partial_since is not None
            and now >= self._partial_since + limits.partial_frame_timeout
        ):
            self._stopped = True
            channel.counters["partial_frame_timeouts"] += 1
            channel._misbehaved(
                MalformedPacket(f"frame incomplete after {limits.partial_frame_timeout} s")
            )
            return None
        if (
            limits.keepalive_interval is not None
            and now >= self.last_sent + limits.keepalive_interval
        ):
            self.last_sent = now
            channel._keepalive_due()
        return None if self._stopped else self._next_check()
