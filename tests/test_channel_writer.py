# -*- test-case-name: tests.test_channel_writer -*-
"""
Tests for L{p2pnet_tx.channel.writer.ChannelWriter}, alone against a StringTransport: frames
go straight through while the transport takes them, queue in order while it is full, and only a
peer that drains nothing is reported.
"""

from __future__ import annotations

from twisted.internet.interfaces import INegotiated, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from p2pnet_tx.channel.writer import BATCH_BYTES, ChannelWriter
from p2pnet_tx.errors import ChannelClosed, SendBufferFull


class RecordingTransport(StringTransport):
    """Records each write call, to see how frames were batched."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[bytes]] = []

    def write(self, data: bytes) -> None:
        self.calls.append([data])
        super().write(data)

    def writeSequence(self, data: list[bytes]) -> None:  # type: ignore[override]
        self.calls.append(list(data))
        StringTransport.write(self, b"".join(data))


class ChannelWriterTests(SynchronousTestCase):
    """The writer alone."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = RecordingTransport()
        self.stalls: list[None] = []
        self.writer = ChannelWriter(self.transport, self.clock, max_queued_bytes=100,
                                    stall_timeout=20.0, stalled=lambda: self.stalls.append(None))

    def test_registers_as_streaming_producer(self) -> None:
        """The writer is the transport's streaming producer."""
        self.assertTrue(verifyObject(IPushProducer, self.writer))
        self.assertIs(self.transport.producer, self.writer)
        self.assertTrue(self.transport.streaming)

    def test_writes_through_while_writable(self) -> None:
        """While the transport takes writes, each frame goes straight to it."""
        self.writer.write(b"one")
        self.writer.write(b"two")
        self.assertEqual(self.transport.calls, [[b"one"], [b"two"]])
        self.assertEqual(self.writer.queued, 0)
        self.assertTrue(self.writer.is_writable)

    def test_queues_in_order_while_paused(self) -> None:
        """While paused, frames queue; on resume they go out in order, batched."""
        self.writer.pauseProducing()
        for frame in (b"a" * 30, b"b" * 30, b"c" * 30):
            self.writer.write(frame)
        self.assertEqual(self.transport.calls, [])
        self.assertEqual(self.writer.queued, 90)
        self.writer.resumeProducing()
        self.assertEqual(self.transport.calls, [[b"a" * 30, b"b" * 30, b"c" * 30]])
        self.assertEqual(self.writer.queued, 0)

    def test_resume_batches_are_bounded(self) -> None:
        """A long queue is handed over in batches of about BATCH_BYTES."""
        self.transport.unregisterProducer()
        writer = ChannelWriter(self.transport, self.clock, 10 * BATCH_BYTES, 20.0, lambda: None)
        writer.pauseProducing()
        for _ in range(8):
            writer.write(b"x" * (BATCH_BYTES // 2))
        writer.resumeProducing()
        self.assertEqual([len(call) for call in self.transport.calls], [2, 2, 2, 2])

    def test_repaused_mid_resume_keeps_the_rest(self) -> None:
        """If the transport pauses again while taking a batch, the rest stays queued."""
        self.transport.unregisterProducer()
        writer = ChannelWriter(self.transport, self.clock, 10 * BATCH_BYTES, 20.0, lambda: None)
        writer.pauseProducing()
        for _ in range(4):
            writer.write(b"x" * BATCH_BYTES)
        original = self.transport.writeSequence

        def full_after_one(data: list[bytes]) -> None:
            original(data)
            writer.pauseProducing()

        self.transport.writeSequence = full_after_one  # type: ignore[method-assign]
        writer.resumeProducing()
        self.assertEqual(len(self.transport.calls), 1)
        self.assertEqual(writer.queued, 3 * BATCH_BYTES)

    def test_cap_is_loud_and_keeps_the_queue(self) -> None:
        """Past the cap a write raises SendBufferFull and queues nothing; the queue is intact."""
        self.writer.pauseProducing()
        self.writer.write(b"a" * 60)
        error = self.assertRaises(SendBufferFull, self.writer.write, b"b" * 60)
        self.assertEqual((error.queued, error.limit), (60, 100))
        self.assertEqual(self.writer.queued, 60)
        self.writer.write(b"c" * 40)  # exactly at the cap is fine
        self.writer.resumeProducing()
        self.assertEqual(self.transport.value(), b"a" * 60 + b"c" * 40)

    def test_control_frames_pass_the_cap(self) -> None:
        """The channel's own small frames queue past the cap, in order."""
        self.writer.pauseProducing()
        self.writer.write(b"a" * 100)
        self.writer.write_control(b"ping")
        self.writer.resumeProducing()
        self.assertEqual(self.transport.value(), b"a" * 100 + b"ping")

    def test_stall(self) -> None:
        """Paused for stall_timeout with no drain: stalled is called, once."""
        self.writer.pauseProducing()
        self.clock.advance(19.9)
        self.assertEqual(self.stalls, [])
        self.clock.advance(0.1)
        self.assertEqual(self.stalls, [None])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_each_drain_restarts_the_stall_clock(self) -> None:
        """A slow peer that keeps draining is never reported."""
        for _ in range(5):
            self.writer.pauseProducing()
            self.clock.advance(15)
            self.writer.resumeProducing()
        self.assertEqual(self.stalls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_drain(self) -> None:
        """drain() fires at once when writable, else when the queue has gone out."""
        self.assertIsNone(self.successResultOf(self.writer.drain()))
        self.writer.pauseProducing()
        self.writer.write(b"x")
        waiting = self.writer.drain()
        self.assertNoResult(waiting)
        self.writer.resumeProducing()
        self.assertIsNone(self.successResultOf(waiting))

    def test_flush_and_stop(self) -> None:
        """flush() hands the whole queue over even while paused; stop() fails the waiters and
        cancels the stall timer."""
        self.writer.pauseProducing()
        self.writer.write(b"queued")
        waiting = self.writer.drain()
        self.writer.flush()
        self.assertEqual(self.transport.value(), b"queued")
        self.writer.stop("closing")
        self.failureResultOf(waiting, ChannelClosed)
        self.failureResultOf(self.writer.drain(), ChannelClosed)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.writer.is_writable)

    def test_stop_drops_the_queue(self) -> None:
        """stop() without flush() drops what is queued (an abort)."""
        self.writer.pauseProducing()
        self.writer.write(b"dropped")
        self.writer.stop("abort")
        self.writer.resumeProducing()
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.writer.queued, 0)


class HalfClosingTransport(RecordingTransport):
    """A transport that can close its writing side alone, as TCP can."""

    def __init__(self) -> None:
        super().__init__()
        self.write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


@implementer(INegotiated)
class TLSLikeTransport(HalfClosingTransport):
    """
    A TLS transport, as Twisted's is: it answers C{loseWriteConnection} (its wrapper hands
    unknown attributes to the TCP socket beneath), which must not be used.
    """

    negotiatedProtocol = None


class ChannelWriterFinishTests(SynchronousTestCase):
    """finish() writes the last frame, then ends the connection the chosen way."""

    def make(self, transport: RecordingTransport) -> ChannelWriter:
        return ChannelWriter(transport, Clock(), 1000, 20.0, lambda: None)

    def test_graceful_half_closes_after_the_queue(self) -> None:
        """Gracefully: the queue, then the last frame, then a half-close (reading goes on)."""
        transport = HalfClosingTransport()
        writer = self.make(transport)
        writer.pauseProducing()
        writer.write(b"queued")
        writer.finish(b"bye", graceful=True)
        self.assertEqual(transport.value(), b"queuedbye")
        self.assertTrue(transport.write_closed)
        self.assertFalse(transport.disconnecting)

    def test_graceful_over_tls_closes_the_tls_way(self) -> None:
        """
        Over TLS a graceful end is TLS's own loseConnection (the pending records, then the
        close alert, reading on until the peer's), never a half-close of the socket beneath.
        """
        transport = TLSLikeTransport()
        self.make(transport).finish(b"bye", graceful=True)
        self.assertEqual(transport.value(), b"bye")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.write_closed)

    def test_graceful_without_half_close(self) -> None:
        """A transport that cannot half-close loses its connection once written."""
        transport = RecordingTransport()
        self.make(transport).finish(b"bye", graceful=True)
        self.assertTrue(transport.disconnecting)

    def test_graceful_through_a_wrapper_closes_the_wrapper(self) -> None:
        """
        A wrapping transport (TLS is a ProtocolWrapper) that only passes loseWriteConnection on
        to the transport under it is closed with its own loseConnection: half-closing the TCP
        connection under TLS made Twisted's TLS fail when the peer's close_notify came.
        """
        inner = HalfClosingTransport()
        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Protocol())
        wrapper.makeConnection(inner)
        self.assertTrue(hasattr(wrapper, "loseWriteConnection"), "passed on by __getattr__")
        self.make(wrapper).finish(b"bye", graceful=True)
        self.assertEqual(inner.value(), b"bye")
        self.assertFalse(inner.write_closed)
        self.assertTrue(wrapper.disconnecting and inner.disconnecting)

    def test_abort_drops_the_queue(self) -> None:
        """Not gracefully: the last frame is written and the connection aborted at once."""
        transport = HalfClosingTransport()
        writer = self.make(transport)
        writer.pauseProducing()
        writer.write(b"queued")
        aborted: list[bool] = []
        transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        writer.finish(b"bye", graceful=False)
        self.assertEqual(transport.value(), b"bye")
        self.assertEqual(aborted, [True])
