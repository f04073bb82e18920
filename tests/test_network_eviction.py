"""
Tests for L{p2pnet_tx.network.eviction}: network groups, the choice of the peer evicted for a
newcomer (each protection, the group and youngest rule, ties) and of the pending handshake
that gives way, over plain records.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.network.eviction import (
    EvictionCandidate,
    network_group,
    select_pending_victim,
    select_victim,
)


def candidate(key: str, host: str, connected: float, **facts: Any) -> EvictionCandidate:
    return EvictionCandidate(key=key, host=host, connected=connected, **facts)


def victim(candidates: list[EvictionCandidate], **protect: int) -> str | None:
    """The key of the victim, protecting nobody unless told to."""
    counts = {"lowest_rtt": 0, "recently_useful": 0, "longest_trusted": 0, **protect}
    chosen = select_victim(candidates, **counts)
    return None if chosen is None else chosen.key  # type: ignore[return-value]


class NetworkGroupTests(SynchronousTestCase):
    """IPv4 addresses group by /16, IPv6 by /32, mapped IPv4 as IPv4."""

    def test_ipv4_slash_16(self) -> None:
        """Addresses that share their first two bytes share a group."""
        self.assertEqual(network_group("10.1.2.3"), "10.1.0.0/16")
        self.assertEqual(network_group("10.1.255.9"), network_group("10.1.0.1"))
        self.assertNotEqual(network_group("10.2.0.1"), network_group("10.1.0.1"))

    def test_ipv6_slash_32(self) -> None:
        """IPv6 addresses that share their first 32 bits share a group."""
        self.assertEqual(network_group("2001:db8:1::1"), "2001:db8::/32")
        self.assertEqual(network_group("2001:db8:ffff::2"), network_group("2001:db8::1"))
        self.assertNotEqual(network_group("2001:db9::1"), network_group("2001:db8::1"))

    def test_ipv4_mapped_is_ipv4(self) -> None:
        """An IPv4-mapped IPv6 address is in its IPv4 address's group, not in ::ffff:0:0/32."""
        self.assertEqual(network_group("::ffff:10.1.2.3"), "10.1.0.0/16")
        self.assertNotEqual(network_group("::ffff:10.1.2.3"), network_group("::ffff:10.2.2.3"))

    def test_not_an_address(self) -> None:
        """A host that is no IP address is a group of its own."""
        self.assertEqual(network_group("unix-socket"), "unix-socket")


class GroupAndYouthTests(SynchronousTestCase):
    """The victim is the youngest of the most-represented group."""

    def test_empty(self) -> None:
        """No candidate, no victim."""
        self.assertIsNone(victim([]))

    def test_youngest_of_largest_group(self) -> None:
        """A younger peer alone in its group is spared; the largest group loses its youngest."""
        candidates = [
            candidate("a1", "10.1.0.1", 1), candidate("a2", "10.1.0.2", 2),
            candidate("a3", "10.1.9.9", 3), candidate("b1", "10.2.0.1", 9),
            candidate("a0", "10.1.0.3", 0),
        ]
        self.assertEqual(victim(candidates), "a3")

    def test_group_tie_goes_to_youngest_member(self) -> None:
        """Two groups of equal size: the one whose youngest member is younger loses it."""
        candidates = [
            candidate("a1", "10.1.0.1", 1), candidate("b1", "10.2.0.1", 2),
            candidate("b2", "10.2.0.2", 3), candidate("a2", "10.1.0.2", 4),
        ]
        self.assertEqual(victim(candidates), "a2")
        self.assertEqual(victim(candidates[:3] + [candidate("a2", "10.1.0.2", 2.5)]), "b2")

    def test_equal_times_later_is_younger(self) -> None:
        """Equal connection times: the later candidate is the younger, in a group and across."""
        same_group = [candidate("x", "10.1.0.1", 5), candidate("y", "10.1.0.2", 5)]
        self.assertEqual(victim(same_group), "y")
        across = [candidate("a", "10.1.0.1", 5), candidate("b", "10.2.0.1", 5)]
        self.assertEqual(victim(across), "b")
        self.assertEqual(victim(list(reversed(across))), "a")

    def test_ipv6_grouped_by_slash_32(self) -> None:
        """Three IPv6 peers in one /32 outnumber two IPv4 peers in one /16."""
        candidates = [
            candidate("v6a", "2001:db8:1::1", 1), candidate("v6b", "2001:db8:2::1", 2),
            candidate("v6c", "2001:db8:3::1", 3), candidate("v4a", "10.1.0.1", 4),
            candidate("v4b", "10.1.0.2", 5), candidate("other6", "2001:db9::1", 6),
        ]
        self.assertEqual(victim(candidates), "v6c")

    def test_mapped_ipv4_grouped_with_ipv4(self) -> None:
        """::ffff:10.1.x.y joins 10.1.0.0/16, which then outnumbers the other group."""
        candidates = [
            candidate("a", "10.1.0.1", 1), candidate("mapped", "::ffff:10.1.0.2", 2),
            candidate("b1", "10.2.0.1", 3), candidate("b2", "10.2.0.2", 4),
            candidate("c", "10.1.0.3", 0),
        ]
        self.assertEqual(victim(candidates), "mapped")

    def test_outbound_never_evicted(self) -> None:
        """Outbound peers are no candidates at all, whatever their group or age."""
        outbound = [candidate(f"o{n}", "10.1.0.1", n, outbound=True) for n in range(3)]
        self.assertIsNone(victim(outbound))
        self.assertEqual(victim(outbound + [candidate("in", "10.2.0.1", 0)]), "in")


class ProtectionTests(SynchronousTestCase):
    """A few peers are protected by each criterion, in turn; the victim is among the rest."""

    def setUp(self) -> None:
        # One group, so that without protection the youngest (p4) goes.
        self.hosts = [f"10.1.0.{n}" for n in range(5)]

    def peers(self, **facts: list[Any]) -> list[EvictionCandidate]:
        return [
            candidate(f"p{n}", host, n, **{name: values[n] for name, values in facts.items()})
            for n, host in enumerate(self.hosts)
        ]

    def survivors(self, candidates: list[EvictionCandidate], **protect: int) -> list[str]:
        """Evict one after another until all left are protected: the keys never evicted."""
        left = list(candidates)
        while (chosen := victim(left, **protect)) is not None:
            left = [c for c in left if c.key != chosen]
        return [c.key for c in left]  # type: ignore[misc]

    def test_lowest_rtt(self) -> None:
        """The lowest round-trip times are protected; an unknown time protects nobody."""
        candidates = self.peers(rtt=[0.3, None, 0.1, 0.2, None])
        self.assertEqual(victim(candidates, lowest_rtt=2), "p4")
        self.assertEqual(self.survivors(candidates, lowest_rtt=2), ["p2", "p3"])
        self.assertEqual(self.survivors(candidates, lowest_rtt=9), ["p0", "p2", "p3"])

    def test_rtt_tie_protects_the_older(self) -> None:
        """Of equal round-trip times, the older connection is protected."""
        candidates = self.peers(rtt=[0.5, 0.1, 0.5, 0.5, 0.1])
        self.assertEqual(self.survivors(candidates, lowest_rtt=3), ["p0", "p1", "p4"])

    def test_recently_useful(self) -> None:
        """The most recent useful packets are protected; never having sent one protects nobody."""
        candidates = self.peers(last_useful=[50.0, 90.0, None, 70.0, None])
        self.assertEqual(self.survivors(candidates, recently_useful=2), ["p1", "p3"])
        tie = self.peers(last_useful=[60.0, None, 60.0, 60.0, None])
        self.assertEqual(self.survivors(tie, recently_useful=2), ["p0", "p2"])

    def test_longest_trusted(self) -> None:
        """The peers trusted the longest are protected; untrusted peers are not."""
        candidates = self.peers(trusted_since=[30.0, 10.0, None, 20.0, 40.0])
        self.assertEqual(self.survivors(candidates, longest_trusted=2), ["p1", "p3"])
        tie = self.peers(trusted_since=[None, 10.0, 10.0, 10.0, None])
        self.assertEqual(self.survivors(tie, longest_trusted=2), ["p1", "p2"])

    def test_protections_apply_in_turn(self) -> None:
        """
        A peer protected by its RTT takes no place among the most recently useful or the
        longest trusted: the next of each is protected.
        """
        candidates = self.peers(rtt=[None, 0.1, None, None, None],
                                trusted_since=[None, 1.0, 2.0, None, None],
                                last_useful=[None, 9.0, None, 7.0, None])
        self.assertEqual(
            self.survivors(candidates, lowest_rtt=1, recently_useful=1, longest_trusted=1),
            ["p1", "p2", "p3"],
        )

    def test_zero_protects_nobody(self) -> None:
        """A count of 0 turns a protection off."""
        candidates = self.peers(rtt=[0.1] * 5, last_useful=[1.0] * 5, trusted_since=[1.0] * 5)
        self.assertEqual(victim(candidates), "p4")

    def test_all_protected(self) -> None:
        """When every candidate is protected there is no victim."""
        candidates = self.peers(rtt=[0.1, 0.2, None, None, None],
                                last_useful=[None, None, 5.0, None, None],
                                trusted_since=[None, None, None, 1.0, 2.0])
        self.assertIsNone(victim(candidates, lowest_rtt=2, recently_useful=1, longest_trusted=2))
        self.assertEqual(victim(candidates, lowest_rtt=2, recently_useful=1, longest_trusted=1),
                         "p4")

    def test_defaults(self) -> None:
        """By default 4 by RTT, 4 by useful packets and 8 by trust: 16 peers are protected."""
        candidates = [
            candidate(f"p{n}", "10.1.0.1", n, rtt=0.1 if n < 4 else None,
                      last_useful=1.0 if 4 <= n < 8 else None,
                      trusted_since=1.0 if 8 <= n < 16 else None)
            for n in range(17)
        ]
        self.assertEqual(select_victim(candidates).key, "p16")  # type: ignore[union-attr]
        self.assertIsNone(select_victim(candidates[:16]))


class DiscouragedTests(SynchronousTestCase):
    """Discouraged peers go first, but a protection still protects them."""

    def test_discouraged_first(self) -> None:
        """An old discouraged peer alone in its group goes before the largest group's youngest."""
        candidates = [
            candidate("bad", "10.9.0.1", 0, discouraged=True),
            candidate("a1", "10.1.0.1", 1), candidate("a2", "10.1.0.2", 2),
        ]
        self.assertEqual(victim(candidates), "bad")

    def test_group_rule_among_discouraged(self) -> None:
        """Among several discouraged peers, the group and youngest rule chooses."""
        candidates = [
            candidate("b1", "10.2.0.1", 0, discouraged=True),
            candidate("b2", "10.2.0.2", 1, discouraged=True),
            candidate("c1", "10.3.0.1", 5, discouraged=True),
            candidate("a1", "10.1.0.1", 9),
        ]
        self.assertEqual(victim(candidates), "b2")

    def test_protected_discouraged_stays(self) -> None:
        """A discouraged peer that a protection covers is spared; the others are considered."""
        candidates = [
            candidate("bad", "10.9.0.1", 0, discouraged=True, trusted_since=1.0),
            candidate("a1", "10.1.0.1", 1), candidate("a2", "10.1.0.2", 2),
        ]
        self.assertEqual(victim(candidates, longest_trusted=1), "a2")


class PendingVictimTests(SynchronousTestCase):
    """The oldest pending handshake from another group gives way."""

    def test_oldest_from_another_group(self) -> None:
        """Pending handshakes of the newcomer's own group are skipped."""
        pending = [("own", "10.1.0.1"), ("old", "10.2.0.1"), ("new", "10.3.0.1")]
        self.assertEqual(select_pending_victim(pending, "10.1.7.7"), "old")
        self.assertEqual(select_pending_victim(pending, "10.9.0.1"), "own")

    def test_same_group_refused(self) -> None:
        """A newcomer from the group of every pending handshake finds no victim."""
        pending = [("a", "10.1.0.1"), ("b", "::ffff:10.1.0.2")]
        self.assertIsNone(select_pending_victim(pending, "10.1.3.3"))
        self.assertIsNone(select_pending_victim([], "10.1.3.3"))

    def test_ipv6(self) -> None:
        """IPv6 handshakes are grouped by /32."""
        pending = [("a", "2001:db8:1::1"), ("b", "2001:db9::1")]
        self.assertEqual(select_pending_victim(pending, "2001:db8:2::2"), "b")
