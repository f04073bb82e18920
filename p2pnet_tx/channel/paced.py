# -*- test-case-name: tests.test_channel_paced -*-
"""
L{PacedWriter}: a L{ChannelWriter} that leaves a pause after every frame, for a peer that
cannot tell two frames apart when they arrive together (.NET P2PNet: see docs/dotnet.md).

.NET reads at most 4096 bytes, sleeps 250 ms, and takes whatever one read completed as one
packet: two frames in one read are both lost.  So a frame is written alone, and the next only
once the peer has read the whole of it: C{interval} after a frame of one read, plus
C{read_pause} for every further C{read_size} bytes.  The queue keeps order and is bounded by
the writer's C{max_queued_bytes}, as L{ChannelWriter}'s is.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport

from p2pnet_tx.channel.writer import ChannelWriter
from p2pnet_tx.errors import SendBufferFull

DOTNET_FRAME_INTERVAL = 0.3
"""Seconds between two frames to a .NET peer: more than its reader's 250 ms sleep."""
DOTNET_READ_SIZE = 4096
DOTNET_READ_PAUSE = 0.25


class PacedWriter(ChannelWriter):
    """
    Writes one frame at a time, C{interval} (and more for long frames) apart.

    @param interval: the least pause after a frame.
    @param read_size: the bytes the peer takes in one read.
    @param read_pause: the peer's pause between two reads.
    """

    __slots__ = ("_interval", "_next_at", "_pump_call", "_read_pause", "_read_size")

    def __init__(
        self,
        transport: ITransport,
        clock: IReactorTime,
        max_queued_bytes: int,
        stall_timeout: float,
        stalled: Callable[[], None],
        interval: float = DOTNET_FRAME_INTERVAL,
        read_size: int = DOTNET_READ_SIZE,
        read_pause: float = DOTNET_READ_PAUSE,
    ) -> None:
        super().__init__(transport, clock, max_queued_bytes, stall_timeout, stalled)
        self._interval = interval
        self._read_size = read_size
        self._read_pause = read_pause
        self._next_at = 0.0
        self._pump_call: IDelayedCall | None = None

    @property
    def is_writable(self) -> bool:
        """Whether a frame written now goes straight to the transport."""
        return super().is_writable and self._clock.seconds() >= self._next_at

    def write(self, frame: bytes) -> None:
        """Send C{frame} now if its turn has come, else queue it (see L{ChannelWriter.write})."""
        if self.is_writable:
            self._send(frame)
            return
        queued = self.queued
        if queued and queued + len(frame) > self._max_queued:
            raise SendBufferFull(queued, self._max_queued)
        self._enqueue(frame)
        self._schedule()

    def write_control(self, frame: bytes) -> None:
        """A keep-alive: paced like any frame, past the cap."""
        if self.is_writable:
            self._send(frame)
        else:
            self._enqueue(frame)
            self._schedule()

    def _send(self, frame: bytes) -> None:
        self._transport.write(frame)
        reads = -(-len(frame) // self._read_size)
        self._next_at = self._clock.seconds() + self._interval + self._read_pause * (reads - 1)

    def _schedule(self) -> None:
        if self._pump_call is None and not self._paused and self._closed_reason is None:
            delay = max(self._next_at - self._clock.seconds(), 0.0)
            self._pump_call = self._clock.callLater(delay, self._pump)

    def _pump(self) -> None:
        self._pump_call = None
        queue = self._queue
        if not queue or self._paused or self._closed_reason is not None:
            return
        frame = queue.popleft()
        self.queued -= len(frame)
        self._send(frame)
        if queue:
            self._schedule()
        elif not self._paused and self._waiters:
            waiters, self._waiters = self._waiters, None
            for waiter in waiters:
                waiter.callback(None)

    def resumeProducing(self) -> None:
        """The transport drained: go on pacing what waits."""
        if not self._paused:
            return
        self._paused = False
        self._cancel_stall()
        if self._queue:
            self._schedule()
        elif self._waiters:
            waiters, self._waiters = self._waiters, None
            for waiter in waiters:
                waiter.callback(None)

    def flush(self) -> None:
        """Hand the whole queue over at once (the channel is closing)."""
        self._cancel_pump()
        super().flush()

    def stop(self, reason: str) -> None:
        """Stop pacing, then as L{ChannelWriter.stop}."""
        self._cancel_pump()
        super().stop(reason)

    def _cancel_pump(self) -> None:
        if self._pump_call is not None:
            if self._pump_call.active():
                self._pump_call.cancel()
            self._pump_call = None


__all__ = ["DOTNET_FRAME_INTERVAL", "PacedWriter"]

