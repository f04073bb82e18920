# -*- test-case-name: tests.test_channel_timers -*-
"""
The deadlines of an open channel: idle, keep-alive and partial frame, on one lazy timer.

Every packet moves these deadlines, but they rarely expire: moving one is an attribute write,
and a single L{IDelayedCall} per channel wakes up at the earliest of them to see whether it
really passed.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from p2pnet_tx.channel.limits import ChannelLimits


class LazyTimer:
    """
    A deadline that moves often but fires rarely: C{check()} is called when the timer expires
    and returns the delay to wait again, or None to stop.  Moving the deadline costs nothing.

    @param clock: the clock the timer runs on.
    @param check: called on expiry; returns the next delay, or None.
    """

    __slots__ = ("_clock", "_check", "_call", "_stopped")

    def __init__(self, clock: IReactorTime, check: Callable[[], float | None]) -> None:
        self._clock = clock
        self._check = check
        self._call: IDelayedCall | None = None
        self._stopped = False

    @property
    def active(self) -> bool:
        """Whether a call is scheduled."""
        return self._call is not None

    def start(self, delay: float) -> None:
        """Wake up in C{delay} seconds, unless already scheduled or stopped."""
        if self._call is None and not self._stopped:
            self._call = self._clock.callLater(delay, self._expired)

    def _expired(self) -> None:
        self._call = None
        delay = self._check()
        if delay is not None:
            self.start(max(delay, 0.0))

    def stop(self) -> None:
        """Cancel the timer for good: a check that stopped it cannot start it again."""
        self._stopped = True
        if self._call is not None:
            self._call.cancel()
            self._call = None


class ChannelTimers:
    """
    The idle, keep-alive and partial-frame deadlines of one open channel.

    The channel reports what happens (L{received}, L{sent}, L{partial_frame}); the timers call
    back when a deadline passes.  Each deadline set to None in the limits is never checked.

    @param clock: the clock the deadlines run on.
    @param limits: C{idle_timeout}, C{keepalive_interval} and C{partial_frame_timeout}.
    @param idle: called once, when nothing was received for C{idle_timeout}.
    @param keepalive: called when nothing was sent for C{keepalive_interval}.
    @param partial_frame_expired: called once, when a frame stayed incomplete for
        C{partial_frame_timeout}.

    @ivar last_received: when bytes last arrived.
    @ivar last_sent: when a packet was last sent.
    """

    __slots__ = (
        "_clock", "_limits", "_idle", "_keepalive", "_partial_expired", "_timer",
        "last_received", "last_sent", "_partial_since",
    )

    def __init__(
        self,
        clock: IReactorTime,
        limits: ChannelLimits,
        idle: Callable[[], None],
        keepalive: Callable[[], None],
        partial_frame_expired: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._limits = limits
        self._idle = idle
        self._keepalive = keepalive
        self._partial_expired = partial_frame_expired
        self._timer = LazyTimer(clock, self._check)
        self.last_received = self.last_sent = clock.seconds()
        self._partial_since: float | None = None

    def start(self) -> None:
        """Start the deadlines, counted from now."""
        self.last_received = self.last_sent = self._clock.seconds()
        self._schedule()

    def stop(self) -> None:
        """Stop every deadline for good."""
        self._timer.stop()

    def received(self, now: float) -> None:
        """Bytes arrived at C{now}."""
        self.last_received = now

    def sent(self, now: float) -> None:
        """A packet was sent at C{now}."""
        self.last_sent = now

    def partial_frame(self, now: float | None) -> None:
        """
        A frame is incomplete since C{now} (None: no frame is incomplete).  A frame that stays
        incomplete keeps the time it started at: call this with a new time only when a frame
        completed and another one started.
        """
        self._partial_since = now
        if now is not None:
            self._schedule()

    @property
    def partial_since(self) -> float | None:
        """Since when a frame is incomplete, or None."""
        return self._partial_since

    def _schedule(self) -> None:
        delay = self._next_delay(self._clock.seconds())
        if delay is not None:
            self._timer.start(delay)

    def _next_delay(self, now: float) -> float | None:
        limits = self._limits
        delays = []
        if limits.idle_timeout is not None:
            delays.append(self.last_received + limits.idle_timeout - now)
        if limits.keepalive_interval is not None:
            delays.append(self.last_sent + limits.keepalive_interval - now)
        if limits.partial_frame_timeout is not None and self._partial_since is not None:
            delays.append(self._partial_since + limits.partial_frame_timeout - now)
        return max(min(delays), 0.0) if delays else None

    def _check(self) -> float | None:
        limits = self._limits
        now = self._clock.seconds()
        if limits.idle_timeout is not None and now - self.last_received >= limits.idle_timeout:
            self.stop()
            self._idle()
            return None
        if (
            limits.partial_frame_timeout is not None
            and self._partial_since is not None
            and now - self._partial_since >= limits.partial_frame_timeout
        ):
            self.stop()
            self._partial_expired()
            return None
        if (
            limits.keepalive_interval is not None
            and now - self.last_sent >= limits.keepalive_interval
        ):
            self.last_sent = now
            self._keepalive()
        return self._next_delay(now)
