# -*- test-case-name: tests.test_channel_writer -*-
"""
L{ChannelWriter}: how a channel's frames reach its transport, and what happens when the peer
reads more slowly than the application writes.

The writer is the transport's streaming producer.  While the transport takes writes, a frame
goes straight to it.  Once the transport's buffer is full (it calls L{pauseProducing}), frames
wait in the writer's own queue, and L{resumeProducing} hands them over in large batches: a
plain loop of sends to a peer that reads is delivered whole and in order, however long.

Two things are bounded, and they are told apart:
  - B{memory}: the queue holds at most C{max_queued_bytes}; a send past it raises
    L{SendBufferFull} and the channel stays open (the application decides: wait for
    L{drain <p2pnet_tx.channel.PeerChannel.drain>} and send again, or give up);
  - B{a peer that does not read}: if nothing drains for C{stall_timeout} seconds, the writer
    calls C{stalled} and the channel drops the peer.  Twisted resumes a producer only when its
    transport's buffer is empty, so "drains" means about 128 KiB taken in that time; a peer
    slower than that is treated as one that does not read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    INegotiated,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pnet_tx.errors import ChannelClosed, SendBufferFull

BATCH_BYTES = 64 * 1024
"""Queued bytes handed to the transport in one C{writeSequence} call."""


@implementer(IPushProducer)
class ChannelWriter:
    """
    Writes frames to a transport, queueing them while the transport is full.

    @param transport: where frames go; the writer registers itself as its streaming producer.
    @param clock: the stall timer runs on it.
    @param max_queued_bytes: the cap of the writer's own queue.
    @param stall_timeout: seconds without any drain before C{stalled} is called.
    @param stalled: called once when the peer has drained nothing for C{stall_timeout}.

    @ivar queued: bytes waiting in the writer's queue (not yet given to the transport).
    """

    __slots__ = (
        "_transport", "_clock", "_max_queued", "_stall_timeout", "_stalled", "_paused",
        "_queue", "queued", "_stall_call", "_waiters", "_closed_reason",
    )

    def __init__(
        self,
        transport: ITransport,
        clock: IReactorTime,
        max_queued_bytes: int,
        stall_timeout: float,
        stalled: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._max_queued = max_queued_bytes
        self._stall_timeout = stall_timeout
        self._stalled = stalled
        self._paused = False
        self._queue: deque[bytes] | None = None
        self.queued = 0
        self._stall_call: IDelayedCall | None = None
        self._waiters: list[Deferred[None]] | None = None
        self._closed_reason: str | None = None
        transport.registerProducer(self, True)  # type: ignore[attr-defined]

    @property
    def is_writable(self) -> bool:
        """Whether a frame written now goes straight to the transport."""
        return not self._paused and not self.queued and self._closed_reason is None

    def write(self, frame: bytes) -> None:
        """
        Send C{frame}, or queue it while the transport is full.

        @raise SendBufferFull: if the queue holds data and C{frame} would take it past the
            cap; C{frame} is then not queued.  (An empty queue takes any one frame, so that a
            frame larger than the cap can still be sent.)
        """
        if not self._paused and not self.queued:
            self._transport.write(frame)
            return
        queued = self.queued
        if queued and queued + len(frame) > self._max_queued:
            raise SendBufferFull(queued, self._max_queued)
        if self._queue is None:
            self._queue = deque()
        self._queue.append(frame)
        self.queued = queued + len(frame)

    def write_control(self, frame: bytes) -> None:
        """Send or queue a small frame of the channel's own (a keep-alive), past the cap."""
        if not self._paused and not self.queued:
            self._transport.write(frame)
        else:
            self._enqueue(frame)

    def _enqueue(self, frame: bytes) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(frame)
        self.queued += len(frame)

    def drain(self) -> Deferred[None]:
        """
        Return a new Deferred that fires once everything written so far is in the transport
        and the transport takes writes again; at once if it does.  It fails with
        L{ChannelClosed} if the channel closes first.
        """
        if self._closed_reason is not None:
            return fail(ChannelClosed(self._closed_reason))
        if not self._paused and not self.queued:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        """Hand the whole queue to the transport, full or not (the channel is closing)."""
        if self._queue:
            self._transport.writeSequence(list(self._queue))
            self._queue.clear()
        self.queued = 0

    def finish(self, last_frame: bytes, graceful: bool) -> None:
        """
        End the connection after C{last_frame} (a Disconnect; C{b""}: none, and a graceful end
        then closes the socket outright, since no peer will answer a goodbye): gracefully, after everything
        queued, or at once, dropping the queue.  A graceful end half-closes and goes on reading
        until the peer closes (it does on a Disconnect; the channel's close timer aborts
        otherwise): closing a socket with unread data sends an RST, and the peer's kernel then
        drops what it had not yet read of ours.
        """
        transport = self._transport
        if graceful:
            self.flush()
        if last_frame:
            transport.write(last_frame)
        if not graceful:
            transport.abortConnection()  # type: ignore[attr-defined]
        elif not last_frame or INegotiated.providedBy(transport) or not callable(
            getattr(type(transport), "loseWriteConnection", None)
        ):
            # TLS closes its own way: its loseConnection sends what it holds, then its close
            # alert, and reads on until the peer's.  Twisted's TLS transport (or any wrapper
            # that passes unknown attributes on, as ProtocolWrapper's __getattr__ does) would
            # hand loseWriteConnection to the TCP socket beneath it, behind the TLS records.
            transport.loseConnection()
        else:
            transport.loseWriteConnection()

    def stop(self, reason: str) -> None:
        """
        The channel is closing: stop the stall timer, drop what is still queued (call
        L{flush} first to keep it), fail the L{drain} waiters with L{ChannelClosed}, and stop
        being the transport's producer: a transport with a paused producer registered would
        never finish a graceful close (and TLS would never shut down).
        """
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        self._cancel_stall()
        self._transport.unregisterProducer()
        self._queue = None
        self.queued = 0
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            waiter.errback(Failure(ChannelClosed(reason)))

    # -- IPushProducer: the transport tells us when its buffer fills and drains -------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: queue frames, and watch for a peer that stalls."""
        if self._paused:
            return
        self._paused = True
        if self._closed_reason is None and self._stall_call is None:
            self._stall_call = self._clock.callLater(self._stall_timeout, self._stall_expired)

    def resumeProducing(self) -> None:
        """The transport drained: hand it the queue, and wake the L{drain} waiters once empty."""
        if not self._paused:
            return
        self._paused = False
        self._cancel_stall()
        queue = self._queue
        while queue and not self._paused:
            batch = []
            size = 0
            while queue and size < BATCH_BYTES:
                frame = queue.popleft()
                batch.append(frame)
                size += len(frame)
            self.queued -= size
            # The transport may pause us again from inside this call.
            self._transport.writeSequence(batch)
        if not self._paused and not self.queued and self._waiters:
            waiters, self._waiters = self._waiters, None
            for waiter in waiters:
                waiter.callback(None)

    def stopProducing(self) -> None:
        """The transport is going away; the channel's connectionLost follows."""

    def _cancel_stall(self) -> None:
        if self._stall_call is not None:
            if self._stall_call.active():
                self._stall_call.cancel()
            self._stall_call = None

    def _stall_expired(self) -> None:
        self._stall_call = None
        self._stalled()
