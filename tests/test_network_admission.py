"""
Tests for L{p2pnet_tx.network.admission}: inbound refusals, discouragement, blocking and the
token bucket, against a real peer table of fake channels and a L{Clock}.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
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
        """
        Identified, trusted inbound channels still count against max_inbound; when eviction
        protects them all (trusted the longest), a newcomer is refused.
        """
        for n in range(4):
            channel = self.connected(f"10.0.1.{n}")
            channel.trusted_since = float(n)
            self.table.handshake_done(channel)
        self.assertEqual(self.admission.refusal("10.0.2.1"), "too many inbound peers")
        self.assertEqual(self.counters["evicted"], 0)

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


class EvictionTests(SynchronousTestCase):
    """
    A newcomer to a full node makes room: an unprotected inbound peer, or the oldest pending
    handshake of another network group, is closed before the newcomer is let in.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.table = PeerTable(max_known_peers=10)
        self.counters: Counter[str] = Counter()
        self.rtts: dict[object, float] = {}
        self.admission = self.make_admission(NetworkLimits(
            max_inbound=4, max_pending=3, max_per_ip=2, protect_lowest_rtt=1,
            protect_recently_useful=1, protect_longest_trusted=1,
        ))
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def make_admission(self, limits: NetworkLimits) -> Admission:
        return Admission(self.clock, IncomingPeerTrustPolicy(), limits, self.table,
                         self.counters, rtt=self.rtts.get)

    def joined(self, host: str, pending: bool = False, rtt: float | None = None,
               trusted_since: float | None = None, useful: float | None = None,
               synchronous: bool = True) -> FakeChannel:
        """An inbound channel from C{host} whose close reaches the table at once (or not)."""
        channel = FakeChannel(GenericPeer(host, 9000), host=host)
        channel.trusted_since, channel.last_useful_packet = trusted_since, useful
        if rtt is not None:
            self.rtts[channel.transport] = rtt
        if synchronous:
            channel.on_close = self.table.remove
        self.table.connect(channel, host)
        if not pending:
            self.table.handshake_done(channel)
        return channel

    def closed(self, *channels: FakeChannel) -> list[list[tuple[str, object]]]:
        return [channel.events for channel in channels]

    def test_evicts_youngest_unprotected_of_largest_group(self) -> None:
        """
        Protected by RTT, by a useful packet, by trust: the three others of 10.2.0.0/16 stay;
        of the rest, the largest group (10.2) loses its youngest; a log line says so.
        """
        fast = self.joined("10.2.0.1", rtt=0.001)
        useful = self.joined("10.2.0.2", useful=5.0)
        loner = self.joined("10.1.0.1")
        young = self.joined("10.2.0.3")
        self.assertIsNone(self.admission.refusal("10.3.0.1"))
        self.assertEqual(self.closed(fast, useful, loner, young),
                         [[], [], [], [("close", "evicted for a newcomer")]])
        self.assertEqual((self.counters["evicted"], self.table.inbound_count), (1, 3))
        [event] = [e for e in self.logged if "evicted" in e["log_format"]]
        self.assertEqual((event["what"], event["peer"], event["newcomer"]),
                         ("inbound peer", young.peer, "10.3.0.1"))

    def test_all_protected_refused(self) -> None:
        """When every inbound peer is protected the newcomer is refused, as without eviction."""
        limits = NetworkLimits(max_inbound=4, max_pending=3, protect_lowest_rtt=2,
                               protect_recently_useful=1, protect_longest_trusted=1)
        admission = self.make_admission(limits)
        channels = [self.joined("10.1.0.1", rtt=0.01), self.joined("10.1.0.2", rtt=0.02),
                    self.joined("10.1.0.3", useful=1.0), self.joined("10.1.0.4", trusted_since=1.0)]
        outbound = FakeChannel(host="10.1.0.9")
        self.table.mark_outbound(outbound)
        self.table.connect(outbound, None)
        self.assertEqual(admission.refusal("10.3.0.1"), "too many inbound peers")
        self.assertEqual(self.closed(*channels, outbound), [[]] * 5)
        self.assertEqual(self.counters["evicted"], 0)

    def test_discouraged_evicted_first(self) -> None:
        """A peer whose address misbehaved goes before the youngest of the largest group."""
        bad = self.joined("10.9.0.1")
        others = [self.joined(f"10.2.0.{n}") for n in range(1, 4)]
        self.admission.misbehaved("10.9.0.1")
        self.assertIsNone(self.admission.refusal("10.3.0.1"))
        self.assertEqual(bad.events, [("close", "evicted for a newcomer")])
        self.assertEqual(self.closed(*others), [[]] * 3)

    def test_refused_newcomer_evicts_nobody(self) -> None:
        """A newcomer refused for its address, its misbehaviour or its rate evicts nobody."""
        channels = [self.joined("10.1.0.1"), self.joined("10.1.0.1"),
                    self.joined("10.2.0.1"), self.joined("10.2.0.2")]
        self.assertEqual(self.admission.refusal("10.1.0.1"),
                         "too many connections from this address")
        self.admission.misbehaved("10.3.0.1")
        self.assertEqual(self.admission.refusal("10.3.0.1"), "discouraged")
        bucket = self.admission._accept_bucket("10.4.0.1")
        while bucket.take():
            pass
        self.assertEqual(self.admission.refusal("10.4.0.1"), "connecting too often")
        self.assertEqual(self.closed(*channels), [[]] * 4)
        self.assertEqual(self.counters["evicted"], 0)

    def test_close_that_does_not_free_the_slot_at_once(self) -> None:
        """
        If the victim's close has not reached the table yet, its slot is not free: the
        newcomer is refused rather than put the table over its limit, and a second newcomer
        does not evict a second peer for the same slot.  Once the close lands, the next
        newcomer takes the slot without evicting anyone.
        """
        channels = [self.joined(f"10.1.0.{n}", synchronous=False) for n in range(1, 5)]
        self.assertEqual(self.admission.refusal("10.3.0.1"), "too many inbound peers")
        self.assertEqual(self.admission.refusal("10.4.0.1"), "too many inbound peers")
        self.assertEqual(self.closed(*channels),
                         [[], [], [], [("close", "evicted for a newcomer")]])
        self.assertEqual((self.counters["evicted"], self.table.inbound_count), (1, 4))
        self.table.remove(channels[3])
        self.assertIsNone(self.admission.refusal("10.4.0.1"))
        self.assertEqual(self.counters["evicted"], 1)

    def test_pending_full_oldest_of_another_group_gives_way(self) -> None:
        """
        The oldest pending handshake not from the newcomer's /16 gives way; a newcomer from
        the /16 of every pending handshake is refused.
        """
        own = self.joined("10.1.0.1", pending=True)
        other = self.joined("10.2.0.1", pending=True)
        self.joined("10.1.0.2", pending=True)
        self.assertIsNone(self.admission.refusal("10.1.9.9"))
        self.assertEqual((own.events, other.events),
                         ([], [("close", "evicted for a newcomer")]))
        self.assertEqual((self.counters["pending_evicted"], self.table.pending_count), (1, 2))
        self.joined("10.1.9.9", pending=True)
        self.assertEqual(self.admission.refusal("10.1.7.7"), "too many pending handshakes")
        self.assertEqual(self.counters["pending_evicted"], 1)
        [event] = [e for e in self.logged if "evicted" in e["log_format"]]
        self.assertEqual(event["what"], "pending handshake")

    def test_pending_victim_frees_both_tables(self) -> None:
        """An evicted inbound peer that was pending frees both slots: one eviction, not two."""
        trusted = self.joined("10.1.0.1", trusted_since=1.0)
        pending = [self.joined(f"10.2.0.{n}", pending=True) for n in range(1, 4)]
        self.assertIsNone(self.admission.refusal("10.3.0.1"))
        self.assertEqual(self.closed(trusted, *pending),
                         [[], [], [], [("close", "evicted for a newcomer")]])
        self.assertEqual((self.counters["evicted"], self.counters["pending_evicted"]), (1, 0))

    def test_both_victims_chosen_before_either_closes(self) -> None:
        """
        Inbound and pending tables both full, an inbound victim but no pending one (every
        pending handshake is protected and from the newcomer's /16): nobody is evicted.
        """
        admission = self.make_admission(NetworkLimits(
            max_inbound=4, max_pending=3, protect_lowest_rtt=3, protect_recently_useful=0,
            protect_longest_trusted=0,
        ))
        idle = self.joined("10.1.0.1")
        pending = [self.joined(f"10.7.0.{n}", pending=True, rtt=0.01) for n in range(1, 4)]
        self.assertEqual(admission.refusal("10.7.9.9"), "too many pending handshakes")
        self.assertEqual(self.closed(idle, *pending), [[]] * 4)
        self.assertIsNone(admission.refusal("10.8.0.1"))
        self.assertEqual(self.closed(idle, *pending),
                         [[("close", "evicted for a newcomer")],
                          [("close", "evicted for a newcomer")], [], []])
        self.assertEqual((self.counters["evicted"], self.counters["pending_evicted"]), (1, 1))
        self.assertEqual((self.table.inbound_count, self.table.pending_count), (2, 2))
