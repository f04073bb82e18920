"""
Tests for L{p2pnet_tx.inbound.InboundConnectingPeersQueue}.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.inbound import InboundConnectingPeersQueue
from p2pnet_tx.peer import GenericPeer

A, B, C = (GenericPeer("10.0.0.1", port) for port in (1, 2, 3))


class InboundConnectingPeersQueueTests(SynchronousTestCase):
    """A bounded FIFO with Deferred gets."""

    def test_fifo(self) -> None:
        """Peers come out in the order they went in; pending and len() show the rest."""
        queue = InboundConnectingPeersQueue()
        queue.put(A)
        queue.put(B)
        self.assertEqual((len(queue), queue.pending), (2, [A, B]))
        self.assertEqual(self.successResultOf(queue.get()), A)
        self.assertEqual(queue.pending, [B])

    def test_waiting_gets_served_in_order(self) -> None:
        """get() on an empty queue waits; waiters are served first come, first served."""
        queue = InboundConnectingPeersQueue()
        first, second = queue.get(), queue.get()
        self.assertNoResult(first)
        queue.put(A)
        queue.put(B)
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (A, B))
        self.assertEqual(len(queue), 0)

    def test_cancel_withdraws_waiter(self) -> None:
        """A cancelled get() is withdrawn: the next peer goes to the next waiter."""
        queue = InboundConnectingPeersQueue()
        first, second = queue.get(), queue.get()
        first.cancel()
        self.failureResultOf(first, CancelledError)
        queue.put(A)
        self.assertEqual(self.successResultOf(second), A)

    def test_bounded(self) -> None:
        """Past max_size the oldest peer is dropped, counted and logged."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        queue = InboundConnectingPeersQueue(max_size=2)
        for peer in (A, B, C):
            queue.put(peer)
        self.assertEqual((queue.pending, queue.dropped), ([B, C], 1))
        self.assertEqual([e["peer"] for e in events if "peer" in e], [A])
        self.assertRaises(ValueError, InboundConnectingPeersQueue, 0)
