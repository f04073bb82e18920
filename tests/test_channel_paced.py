"""
L{PacedWriter} alone, on a clock: one frame at a time, far enough apart that a .NET peer reads
each alone (issue 9, finding 5), in order, bounded, and closing as a L{ChannelWriter} does.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel.paced import DOTNET_FRAME_INTERVAL, PacedWriter
from p2pnet_tx.channel.writer import ChannelWriter
from p2pnet_tx.errors import ChannelClosed, SendBufferFull


class RecordingTransport(StringTransport):
    """A StringTransport that keeps each write apart, with the time it was made."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.writes: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock.seconds(), data))
        super().write(data)

    def writeSequence(self, seq: list[bytes]) -> None:
        for data in seq:
            self.write(data)


class PacedWriterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = RecordingTransport(self.clock)
        self.stalls: list[None] = []
        self.writer = PacedWriter(self.transport, self.clock, max_queued_bytes=100,
                                  stall_timeout=20.0, stalled=lambda: self.stalls.append(None))

    def frames(self) -> list[bytes]:
        return [data for _, data in self.transport.writes]

    def times(self) -> list[float]:
        return [round(when, 6) for when, _ in self.transport.writes]

    def test_is_a_channel_writer_and_registered(self) -> None:
        """It is a ChannelWriter, the transport's streaming producer."""
        self.assertIsInstance(self.writer, ChannelWriter)
        self.assertIs(self.transport.producer, self.writer)
        self.assertTrue(self.transport.streaming)

    def test_order_and_pacing(self) -> None:
        """Frames written at once go out in order, one per interval (300 ms)."""
        for name in (b"a", b"b", b"c"):
            self.writer.write(name)
        self.assertEqual(self.frames(), [b"a"])
        self.assertFalse(self.writer.is_writable)
        self.clock.advance(DOTNET_FRAME_INTERVAL - 0.001)
        self.assertEqual(self.frames(), [b"a"])
        self.clock.pump([0.001, 0.3, 0.3])
        self.assertEqual(self.frames(), [b"a", b"b", b"c"])
        self.assertEqual(self.times(), [0.0, 0.3, 0.6])
        self.assertEqual(self.writer.queued, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_after_a_pause_a_frame_goes_at_once(self) -> None:
        """A frame written once the interval has passed goes straight to the transport."""
        self.writer.write(b"a")
        self.clock.advance(1.0)
        self.assertTrue(self.writer.is_writable)
        self.writer.write(b"b")
        self.assertEqual(self.times(), [0.0, 1.0])

    def test_long_frame_leaves_time_for_every_read(self) -> None:
        """A frame of three 4096-byte reads is followed by 300 ms plus 250 ms per extra read."""
        self.writer.stop("replaced")
        writer = PacedWriter(self.transport, self.clock, max_queued_bytes=1 << 20,
                             stall_timeout=20.0, stalled=lambda: None)
        writer.write(b"x" * 9000)
        writer.write(b"next")
        self.clock.advance(0.799)
        self.assertEqual(len(self.transport.writes), 1)
        self.clock.advance(0.001)
        self.assertEqual(self.frames()[1], b"next")

    def test_bounded(self) -> None:
        """The queue is bounded by max_queued_bytes: a write past it raises SendBufferFull and
        is not queued; an empty queue takes any one frame; control frames pass the cap."""
        self.writer.write(b"sent")  # straight to the transport
        self.writer.write(b"q" * 150)  # an empty queue takes one frame, however large
        with self.assertRaises(SendBufferFull):
            self.writer.write(b"r")
        self.writer.write_control(b"keepalive")
        self.assertEqual(self.writer.queued, 150 + len(b"keepalive"))
        self.clock.pump([0.3] * 3)
        self.assertEqual(self.frames(), [b"sent", b"q" * 150, b"keepalive"])
        self.writer.write(b"r")  # room again
        self.assertEqual(self.frames()[-1], b"r")

    def test_drain(self) -> None:
        """drain() fires once the paced queue is empty, not before."""
        self.writer.write(b"a")
        self.successResultOf(self.writer.drain())  # nothing queued
        self.writer.write(b"b")
        self.writer.write(b"c")
        drained = self.writer.drain()
        self.clock.advance(0.3)
        self.assertNoResult(drained)
        self.clock.advance(0.3)
        self.assertIsNone(self.successResultOf(drained))

    def test_close_flushes_the_queue(self) -> None:
        """A graceful finish hands every queued frame over at once, stops pacing, and closes
        the socket (no goodbye frame: the dotnet wire sends none)."""
        for name in (b"a", b"b", b"c"):
            self.writer.write(name)
        self.writer.finish(b"", graceful=True)
        self.assertEqual(self.frames(), [b"a", b"b", b"c"])
        self.assertTrue(self.transport.disconnecting)
        self.writer.stop("closed")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_drops_the_queue_and_fails_drain(self) -> None:
        """stop() drops what is queued, fails drain() waiters and leaves no timer."""
        self.writer.write(b"a")
        self.writer.write(b"b")
        drained = self.writer.drain()
        self.writer.stop("gone")
        self.failureResultOf(drained, ChannelClosed)
        self.clock.advance(10)
        self.assertEqual(self.frames(), [b"a"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(self.writer.drain(), ChannelClosed)

    def test_stall(self) -> None:
        """While the transport is full, nothing is paced out; a transport that stays full for
        stall_timeout calls stalled once; one that drains in time resumes the pacing."""
        self.writer.write(b"a")
        self.writer.pauseProducing()
        self.writer.write(b"b")
        self.clock.advance(19)
        self.assertEqual(self.frames(), [b"a"])
        self.writer.resumeProducing()
        self.clock.advance(0)
        self.assertEqual(self.frames(), [b"a", b"b"])
        self.writer.pauseProducing()
        self.writer.write(b"c")
        self.clock.advance(20)
        self.assertEqual(self.stalls, [None])
        self.assertEqual(self.frames(), [b"a", b"b"])
        self.clock.advance(100)
        self.assertEqual(self.stalls, [None])
