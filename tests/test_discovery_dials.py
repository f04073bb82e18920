"""
DiscoveryDialer: a discovered peer is dialled unless it is this node, blocked, discouraged,
connected or already being dialled, and never more than max_pending at once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.discovery.dials import DiscoveryDialer
from p2pnet_tx.errors import SelfConnection
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy


class FakeNetwork:
    """What the dialer uses of a network; C{dials} are the Deferreds of C{connect}."""

    def __init__(self) -> None:
        self.policy = IncomingPeerTrustPolicy()
        self.discouraged_ips: set[str] = set()
        self.connected: set[tuple[str, int]] = set()
        self.dials: list[tuple[IPeer, Deferred[Any]]] = []
        self.identifier = "us"
        self.result: Deferred[Any] | None = None

    def is_self(self, peer: IPeer) -> bool:
        return peer.identifier == self.identifier

    def channel_for(self, peer: IPeer) -> object | None:
        return object() if (peer.address, peer.port) in self.connected else None

    def connect(self, peer: IPeer) -> Deferred[Any]:
        dialing: Deferred[Any] = self.result if self.result is not None else Deferred()
        self.dials.append((peer, dialing))
        return dialing


def peer(number: int = 7, identifier: str | None = "them") -> GenericPeer:
    return GenericPeer(f"10.0.0.{number}", 8051, identifier)


class DiscoveryDialerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = FakeNetwork()
        self.counters: Counter[str] = Counter()
        self.dialer = DiscoveryDialer(self.network, self.counters, max_pending=2)  # type: ignore[arg-type]

    def test_dials(self) -> None:
        """A new peer is dialled (with its identifier) and counted; a success is counted."""
        self.assertTrue(self.dialer.offer(peer()))
        self.assertEqual([p for p, _ in self.network.dials], [peer()])
        self.assertEqual(self.dialer.pending, 1)
        self.network.dials[0][1].callback("channel")
        self.assertEqual(self.dialer.pending, 0)
        self.assertEqual((self.counters["dials_started"], self.counters["dials_connected"]),
                         (1, 1))

    def test_skips(self) -> None:
        """Self, blocked (by address or identifier), discouraged and connected peers are not
        dialled, each counted by why."""
        self.network.policy.blocked_ips.add("10.0.0.2")
        self.network.policy.blocked_identifiers.add("bad")
        self.network.discouraged_ips.add("10.0.0.4")
        self.network.connected.add(("10.0.0.5", 8051))
        for skipped in (peer(1, "us"), peer(2), peer(3, "bad"), peer(4), peer(5)):
            self.assertFalse(self.dialer.offer(skipped))
        self.assertEqual(self.network.dials, [])
        self.assertEqual(self.counters, Counter({
            "dials_skipped.self": 1, "dials_skipped.blocked": 2,
            "dials_skipped.discouraged": 1, "dials_skipped.connected": 1,
        }))

    def test_pending_and_busy(self) -> None:
        """A peer being dialled is not dialled twice; past max_pending nobody else is."""
        self.dialer.offer(peer(1))
        self.dialer.offer(peer(1))
        self.dialer.offer(peer(2))
        self.dialer.offer(peer(3))
        self.assertEqual(len(self.network.dials), 2)
        self.assertEqual((self.counters["dials_skipped.pending"],
                          self.counters["dials_skipped.busy"]), (1, 1))
        self.network.dials[0][1].errback(ConnectionRefusedError())
        self.assertTrue(self.dialer.offer(peer(3)))
        self.assertEqual(self.counters["dials_failed"], 1)

    def test_dial_that_fails_at_once(self) -> None:
        """A connect() that has already failed (e.g. the peer is this node after all) leaves
        nothing pending."""
        self.network.result = fail(SelfConnection("us", peer()))
        self.assertTrue(self.dialer.offer(peer()))
        self.assertEqual(self.dialer.pending, 0)
        self.assertEqual(self.counters["dials_failed"], 1)
        self.network.result = succeed("channel")
        self.dialer.offer(peer(8))
        self.assertEqual(self.counters["dials_connected"], 1)

    def test_cancel_all(self) -> None:
        """Stopping cancels every dial under way, counted apart from failures."""
        self.dialer.offer(peer(1))
        self.dialer.offer(peer(2))
        self.dialer.cancel_all()
        self.assertEqual(self.dialer.pending, 0)
        self.assertEqual((self.counters["dials_cancelled"], self.counters["dials_failed"]),
                         (2, 0))

    def test_needs_room(self) -> None:
        """max_pending below 1 is refused."""
        self.assertRaises(ValueError, DiscoveryDialer, self.network, Counter(), 0)
