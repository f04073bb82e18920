# -*- test-case-name: tests.test_policy -*-
"""
Tests for L{p2pnet_tx.policy}: block lists, the trust policy's settings and their conflicts,
and where new peers are announced.
"""

from __future__ import annotations


import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import P2PNetError, TrustPolicyConflict
from p2pnet_tx.policy import (
    DEFAULT_BLOCK_LIST_SIZE,
    BlockList,
    IncomingPeerPlacement,
    IncomingPeerTrustPolicy,
)
from p2pnet_tx.trust import always_trust


class BlockListTests(SynchronousTestCase):
    """A block list is bounded, forgets its oldest entry first, and looks keys up in O(1)."""

    def test_membership(self) -> None:
        """Added keys are blocked, others are not; discard unblocks."""
        blocked = BlockList()
        blocked.add("peer-one")
        self.assertIn("peer-one", blocked)
        self.assertNotIn("peer-two", blocked)
        blocked.discard("peer-one")
        self.assertNotIn("peer-one", blocked)
        blocked.discard("never-added")
        self.assertEqual(len(blocked), 0)

    def test_non_string_never_blocked(self) -> None:
        """Lookups of values that are not strings answer False rather than raising."""
        blocked = BlockList()
        blocked.add("1")
        self.assertNotIn(1, blocked)
        self.assertNotIn(None, blocked)

    def test_default_bound(self) -> None:
        """By default a block list holds at most 50,000 entries."""
        self.assertEqual(DEFAULT_BLOCK_LIST_SIZE, 50_000)
        self.assertEqual(BlockList().max_entries, 50_000)

    def test_bounded_oldest_evicted(self) -> None:
        """Past max_entries, the oldest entry is forgotten to make room."""
        blocked = BlockList(max_entries=3)
        for key in "abcd":
            blocked.add(key)
        self.assertEqual(len(blocked), 3)
        self.assertEqual(list(blocked), ["b", "c", "d"])
        self.assertNotIn("a", blocked)

    def test_readding_refreshes(self) -> None:
        """Adding a key again makes it the newest, so it is evicted last."""
        blocked = BlockList(max_entries=3)
        for key in "abc":
            blocked.add(key)
        blocked.add("a")
        blocked.add("d")
        self.assertEqual(list(blocked), ["c", "a", "d"])

    def test_full_list_stays_bounded(self) -> None:
        """A million distinct additions never grow the list past its bound."""
        blocked = BlockList(max_entries=1000)
        for number in range(100_000):
            blocked.add(str(number))
        self.assertEqual(len(blocked), 1000)
        self.assertIn("99999", blocked)
        self.assertNotIn("98999", blocked)

    def test_lookup_is_constant_time(self) -> None:
        """
        Looking a key up in a full 50,000-entry list compares it with a handful of entries at
        most: a hash lookup, not a scan.  (benchmarks/bench_policy.py reports the time.)
        """
        comparisons = []

        class CountingKey(str):
            __hash__ = str.__hash__

            def __eq__(self, other: object) -> bool:
                comparisons.append(other)
                return str.__eq__(self, other)

        blocked = BlockList(normalize=CountingKey)
        for n in range(DEFAULT_BLOCK_LIST_SIZE):
            blocked.add(f"peer-{n}")
        del comparisons[:]
        self.assertIn("peer-31337", blocked)
        self.assertNotIn("stranger", blocked)
        self.assertLessEqual(len(comparisons), 8)

    def test_expiry(self) -> None:
        """An entry added with a duration expires that many seconds later, on the clock."""
        clock = Clock()
        blocked = BlockList(clock=clock)
        blocked.add("peer", duration=60)
        blocked.add("forever")
        clock.advance(59.9)
        self.assertIn("peer", blocked)
        clock.advance(0.1)
        self.assertNotIn("peer", blocked)
        self.assertIn("forever", blocked)

    def test_default_duration(self) -> None:
        """default_duration applies to entries added without a duration."""
        clock = Clock()
        blocked = BlockList(clock=clock, default_duration=24 * 3600)
        blocked.add("peer")
        clock.advance(24 * 3600 - 1)
        self.assertIn("peer", blocked)
        clock.advance(1)
        self.assertNotIn("peer", blocked)

    def test_readding_extends(self) -> None:
        """Blocking a key again restarts its duration."""
        clock = Clock()
        blocked = BlockList(clock=clock)
        blocked.add("peer", duration=10)
        clock.advance(8)
        blocked.add("peer", duration=10)
        clock.advance(8)
        self.assertIn("peer", blocked)

    def test_expiry_needs_a_clock(self) -> None:
        """Durations without a clock are refused: entries could never expire."""
        with self.assertRaises(ValueError):
            BlockList(default_duration=10)
        with self.assertRaises(ValueError):
            BlockList().add("peer", duration=10)

    def test_positive_bound(self) -> None:
        """max_entries must be at least 1."""
        with self.assertRaises(ValueError):
            BlockList(max_entries=0)


class IPBlockListTests(SynchronousTestCase):
    """BlockList.of_ips holds addresses in their canonical form."""

    def test_ipv6_normalised(self) -> None:
        """Every spelling of an IPv6 address is the same entry."""
        blocked = BlockList.of_ips("2001:DB8:0:0:0:0:0:1")
        self.assertEqual(list(blocked), ["2001:db8::1"])
        self.assertIn("2001:db8::1", blocked)
        self.assertIn("2001:0db8::0001", blocked)
        blocked.add("2001:db8::1")
        self.assertEqual(len(blocked), 1)
        blocked.discard("2001:DB8::1")
        self.assertNotIn("2001:db8::1", blocked)

    def test_ipv4_mapped(self) -> None:
        """
        A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d; a blocked IPv4
        address is blocked in that form too.
        """
        blocked = BlockList.of_ips("10.0.0.7")
        self.assertIn("::ffff:10.0.0.7", blocked)
        blocked = BlockList.of_ips("::FFFF:10.0.0.8")
        self.assertIn("10.0.0.8", blocked)
        self.assertEqual(list(blocked), ["10.0.0.8"])

    def test_invalid_address(self) -> None:
        """Adding something that is not an address raises; looking it up answers False."""
        blocked = BlockList.of_ips()
        with self.assertRaises(ValueError):
            blocked.add("999.1.1.1")
        with self.assertRaises(ValueError):
            BlockList.of_ips("example.com")
        self.assertNotIn("not an address", blocked)
        blocked.discard("not an address")

    def test_of_ips_options(self) -> None:
        """of_ips passes its keyword arguments to the list."""
        clock = Clock()
        blocked = BlockList.of_ips("10.0.0.1", "10.0.0.2", max_entries=1, clock=clock,
                                   default_duration=5)
        self.assertEqual(list(blocked), ["10.0.0.2"])
        clock.advance(5)
        self.assertNotIn("10.0.0.2", blocked)


class IncomingPeerTrustPolicyTests(SynchronousTestCase):
    """The policy's defaults, conversions and conflicts."""

    def test_defaults(self) -> None:
        """By default untrusted peers may only talk; the trust protocol runs; events announce."""
        policy = IncomingPeerTrustPolicy()
        self.assertTrue(policy.allow_default_communication)
        self.assertFalse(policy.allow_enhanced_packet_exchange)
        self.assertTrue(policy.run_default_trust_protocol)
        self.assertIs(policy.incoming_peer_placement, IncomingPeerPlacement.EVENT_BASED)
        self.assertEqual(len(policy.blocked_ips), 0)
        self.assertEqual(len(policy.blocked_identifiers), 0)
        self.assertIsNone(policy.default_trust_protocol)

    def test_enhanced_without_default_conflicts(self) -> None:
        """Enhanced packet exchange without default communication is a conflict."""
        with self.assertRaises(TrustPolicyConflict) as raised:
            IncomingPeerTrustPolicy(allow_default_communication=False,
                                    allow_enhanced_packet_exchange=True)
        self.assertIsInstance(raised.exception, ValueError)
        self.assertIsInstance(raised.exception, P2PNetError)

    def test_protocol_that_never_runs_conflicts(self) -> None:
        """A default_trust_protocol with run_default_trust_protocol off is a conflict."""
        with self.assertRaises(TrustPolicyConflict):
            IncomingPeerTrustPolicy(run_default_trust_protocol=False,
                                    default_trust_protocol=always_trust)

    def test_valid_combinations(self) -> None:
        """The three consistent gate settings are accepted."""
        for default, enhanced in ((True, True), (True, False), (False, False)):
            policy = IncomingPeerTrustPolicy(allow_default_communication=default,
                                             allow_enhanced_packet_exchange=enhanced)
            self.assertEqual((policy.allow_default_communication,
                              policy.allow_enhanced_packet_exchange), (default, enhanced))
        policy = IncomingPeerTrustPolicy(default_trust_protocol=always_trust)
        self.assertIs(policy.default_trust_protocol, always_trust)

    def test_frozen(self) -> None:
        """A policy is an immutable value."""
        policy = IncomingPeerTrustPolicy()
        with self.assertRaises(attrs.exceptions.FrozenInstanceError):
            policy.allow_enhanced_packet_exchange = True  # type: ignore[misc]

    def test_blocked_ips(self) -> None:
        """blocked_ips takes any iterable of addresses, in any spelling."""
        policy = IncomingPeerTrustPolicy(blocked_ips=["10.0.0.7", "2001:DB8::1"])
        self.assertIsInstance(policy.blocked_ips, BlockList)
        self.assertTrue(policy.is_blocked_ip("10.0.0.7"))
        self.assertTrue(policy.is_blocked_ip("2001:db8:0::1"))
        self.assertTrue(policy.is_blocked_ip("::ffff:10.0.0.7"))
        self.assertFalse(policy.is_blocked_ip("10.0.0.8"))
        self.assertFalse(policy.is_blocked_ip("garbage"))

    def test_blocked_identifiers(self) -> None:
        """blocked_identifiers takes any iterable of identifiers; None is never blocked."""
        policy = IncomingPeerTrustPolicy(blocked_identifiers=["bad-peer"])
        self.assertTrue(policy.is_blocked_identifier("bad-peer"))
        self.assertFalse(policy.is_blocked_identifier("good-peer"))
        self.assertFalse(policy.is_blocked_identifier(None))

    def test_block_list_kept(self) -> None:
        """A BlockList given to the policy is used as is, so later additions count."""
        blocked = BlockList.of_ips()
        policy = IncomingPeerTrustPolicy(blocked_ips=blocked)
        self.assertIs(policy.blocked_ips, blocked)
        blocked.add("10.0.0.9")
        self.assertTrue(policy.is_blocked_ip("10.0.0.9"))

    def test_no_shared_default_lists(self) -> None:
        """Two policies never share a default block list (no global mutable state)."""
        first, second = IncomingPeerTrustPolicy(), IncomingPeerTrustPolicy()
        self.assertIsNot(first.blocked_ips, second.blocked_ips)
        first.blocked_ips.add("10.0.0.1")
        self.assertFalse(second.is_blocked_ip("10.0.0.1"))


class IncomingPeerPlacementTests(SynchronousTestCase):
    """Where new inbound peers are announced."""

    def test_values(self) -> None:
        """The three placements and their names."""
        self.assertEqual(
            {placement.name: placement.value for placement in IncomingPeerPlacement},
            {"QUEUE_BASED": "queue", "EVENT_BASED": "event",
             "QUEUE_AND_EVENT_BASED": "queue_and_event"},
        )

    def test_converted_from_value(self) -> None:
        """The policy accepts a placement's value in place of the member."""
        policy = IncomingPeerTrustPolicy(incoming_peer_placement="queue_and_event")
        self.assertIs(policy.incoming_peer_placement,
                      IncomingPeerPlacement.QUEUE_AND_EVENT_BASED)

    def test_unknown_value(self) -> None:
        """An unknown placement is refused."""
        with self.assertRaises(ValueError):
            IncomingPeerTrustPolicy(incoming_peer_placement="everywhere")
