"""
Tests for L{p2pnet_tx.network.admission}: inbound refusals, discouragement, blocking and the
token bucket, against a real peer table of fake channels and a L{Clock}.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.network.admission import Admission, TokenBucket
from p2pnet_tx.network.limits import NetworkLimits
from p2pnet_tx.network.table import PeerTable
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy

from .network_fakes import FakeChannel


class AdmissionTests(SynchronousTestCase):
    """Each limit refuses with its own reason, before a byte is read."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.table = PeerTable(max_known_peers=10)
        self.policy = IncomingPeerTrustPolicy()
        self.counters: Counter[str] = Counter()
        self.admission = Admission(
            self.clock, self.policy,
            NetworkLimits(max_inbound=4, max_pending=3, max_per_ip=2, accept_burst=2),
            self.table, self.counters,
        )

    def connected(self, host: str) -> FakeChannel:
        channel = FakeChannel(host=host)
        self.table.connect(channel, host)
        return channel

    def test_accepts(self) -> None:
        """A fresh address is accepted."""
        self.assertIsNone(self.admission.refusal("10.0.0.1"))

    def test_blocked(self) -> None:
        """A blocked address is refused, in any spelling."""
        self.policy.blocked_ips.add("10.0.0.7")
        self.assertEqual(self.admission.refusal("::ffff:10.0.0.7"), "blocked")

    def test_per_ip_and_pending(self) -> None:
        """max_per_ip connections from one address; max_pending handshakes in all."""
        self.connected("10.0.0.7")
        self.connected("10.0.0.7")
        self.assertEqual(self.admission.refusal("10.0.0.7"),
                         "too many connections from this address")
        self.connected("10.0.0.8")
        self.assertEqual(self.admission.refusal("10.0.0.9"), "too many pending handshakes")

    def test_max_inbound(self) -> None:
        """Identified, trusted inbound channels still count against max_inbound."""
        for n in range(4):
            self.table.handshake_done(self.connected(f"10.0.1.{n}"))
        self.assertEqual(self.admission.refusal("10.0.2.1"), "too many inbound peers")

    def test_accept_rate(self) -> None:
        """One address gets accept_burst connections at once, then accept_rate a second."""
        self.assertIsNone(self.admission.refusal("10.0.0.7"))
        self.assertIsNone(self.admission.refusal("10.0.0.7"))
        self.assertEqual(self.admission.refusal("10.0.0.7"), "connecting too often")
        self.clock.advance(5)
        self.assertIsNone(self.admission.refusal("10.0.0.7"))

    def test_discouraged_when_half_full(self) -> None:
        """A misbehaving address is refused once the node is half full, then forgiven."""
        self.admission.misbehaved("10.0.0.66")
        self.assertEqual(self.counters["misbehaving_peers"], 1)
        self.assertIsNone(self.admission.refusal("10.0.0.66"))
        for n in range(2):
            self.table.handshake_done(self.connected(f"10.0.1.{n}"))
        self.assertEqual(self.admission.refusal("10.0.0.66"), "discouraged")
        self.clock.advance(NetworkLimits().discourage_seconds)
        self.assertIsNone(self.admission.refusal("10.0.0.66"))

    def test_closed(self) -> None:
        """A closed admission refuses everyone."""
        self.admission.close()
        self.assertEqual(self.admission.refusal("10.0.0.1"), "network closed")

    def test_block_closes_matching_channels(self) -> None:
        """block() adds to the policy and closes the channels of that address or identifier."""
        victim = FakeChannel(GenericPeer("10.0.0.7", 1, "bad"))
        other = FakeChannel(GenericPeer("10.0.0.8", 1, "good"))
        for channel in (victim, other):
            self.table.connect(channel, channel.peer.address)
        self.assertEqual(self.admission.block("::ffff:10.0.0.7", None), [victim])
        self.assertEqual(victim.events, [("close", "blocked")])
        self.assertEqual(self.admission.block(None, "good"), [other])
        self.assertTrue(self.policy.is_blocked_ip("10.0.0.7"))
        self.assertTrue(self.policy.is_blocked_identifier("good"))
        self.assertRaises(ValueError, self.admission.block, None, None)


class TokenBucketTests(SynchronousTestCase):
    """A bucket gives its burst at once, then rate tokens a second, and says when the next is."""

    def test_take(self) -> None:
        """burst tokens at once, then one per 1/rate seconds."""
        clock = Clock()
        bucket = TokenBucket(clock, rate=0.5, burst=2)
        self.assertEqual([bucket.take() for _ in range(3)], [True, True, False])
        clock.advance(2)
        self.assertEqual([bucket.take() for _ in range(2)], [True, False])

    def test_seconds_until_token(self) -> None:
        """The wait is exact: a timer set for it finds a token."""
        clock = Clock()
        bucket = TokenBucket(clock, rate=0.3, burst=1)
        self.assertEqual(bucket.seconds_until_token(), 0.0)
        bucket.take()
        clock.advance(1.1)
        wait = bucket.seconds_until_token()
        self.assertAlmostEqual(wait, (1 - 0.33) / 0.3)
        clock.advance(wait)
        self.assertTrue(bucket.take())

    def test_never(self) -> None:
        """A bucket of burst 0 or rate 0 never gives a token: no wait is worth a timer."""
        clock = Clock()
        self.assertIsNone(TokenBucket(clock, rate=1.0, burst=0).seconds_until_token())
        empty = TokenBucket(clock, rate=0.0, burst=1)
        empty.take()
        self.assertIsNone(empty.seconds_until_token())
