# -*- test-case-name: tests.test_network_eviction -*-
"""
Which peer gives way when a newcomer finds the node full: a pure choice over plain records,
after Bitcoin Core's C{SelectNodeToEvict} (C{node/eviction.cpp}).

An attacker can fake many things about a connection, but not all of them at once and not
cheaply: a low round-trip time needs a host near the node, recent useful packets need work,
long trust needs time, and many network groups need many networks.  So a few peers are
protected by each of these, and the victim comes from what is left: from the network group
(IPv4 /16, IPv6 /32) with the most connections, its youngest member.

  1. Outbound peers are never candidates (the node chose them).
  2. Protect the C{lowest_rtt} peers with the lowest round-trip time (those with one).
  3. Protect the C{recently_useful} peers that most recently sent a useful packet.
  4. Protect the C{longest_trusted} peers trusted the longest.
  5. Nothing left: no victim (the newcomer is refused).
  6. If any of those left are discouraged (they misbehaved), only they are considered.
  7. Take the network group with the most of those left, ties to the group whose youngest
     member is youngest, and evict that youngest member.

Ties within a protection go to the older connection.  Equal connection times are told apart
by the order of the candidates: a later one is younger.

L{select_pending_victim} is the choice for the table of pending handshakes: the oldest pending
handshake from another network group than the newcomer's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

import attrs

T = TypeVar("T")


def network_group(host: str, ipv4_prefix: int = 16, ipv6_prefix: int = 32) -> str:
    """
    The network group of an address: by default its IPv4 /16 or its IPv6 /32.  An IPv4-mapped
    IPv6 address is grouped as the IPv4 address it maps; a host that is not an IP address is
    a group of its own.

    @param ipv4_prefix: the prefix length of an IPv4 group.
    @param ipv6_prefix: the prefix length of an IPv6 group.
    @return: the group, e.g. C{"10.1.0.0/16"} or C{"2001:db8::/32"}.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@attrs.frozen
class EvictionCandidate:
    """
    What eviction knows of one connected peer.

    @ivar key: what is evicted (the channel); any hashable value.
    @ivar host: the peer's address.
    @ivar connected: when it connected, on any clock or as a rank: larger is younger.
    @ivar outbound: whether this node opened the connection (never evicted).
    @ivar trusted_since: when the peer became trusted, or C{None} if it is not.
    @ivar last_useful: when it last sent a useful packet (one a handler took, not a
        keep-alive), or C{None} if it never did.
    @ivar rtt: its round-trip time in seconds, or C{None} if unknown.
    @ivar discouraged: whether its address misbehaved (evicted before any other).
    @ivar group: its network group (see L{network_group}).
    """

    key: Hashable
    host: str
    connected: float
    outbound: bool = False
    trusted_since: float | None = None
    last_useful: float | None = None
    rtt: float | None = None
    discouraged: bool = False
    group: str = attrs.field(
        default=attrs.Factory(lambda self: network_group(self.host), takes_self=True)
    )


_Item = tuple[EvictionCandidate, int]


def select_victim(
    candidates: Sequence[EvictionCandidate],
    *,
    lowest_rtt: int = 4,
    recently_useful: int = 4,
    longest_trusted: int = 8,
) -> EvictionCandidate | None:
    """
    Choose the peer to evict for a newcomer (see the module's docstring for the rule).

    @param candidates: the connected peers, oldest first.
    @param lowest_rtt: how many peers the lowest round-trip times protect.
    @param recently_useful: how many peers the most recent useful packets protect.
    @param longest_trusted: how many peers the longest trust protects.
    @return: the victim, or C{None} if every candidate is protected.
    """
    # (candidate, position): the position tells equal connection times apart.
    left = [(c, n) for n, c in enumerate(candidates) if not c.outbound]
    left = _protect(left, lowest_rtt, lambda c: c.rtt)
    left = _protect(left, recently_useful,
                    lambda c: None if c.last_useful is None else -c.last_useful)
    left = _protect(left, longest_trusted, lambda c: c.trusted_since)
    if not left:
        return None
    if any(c.discouraged for c, _ in left):
        left = [item for item in left if item[0].discouraged]
    groups: dict[str, list[_Item]] = {}
    for item in left:
        groups.setdefault(item[0].group, []).append(item)
    largest = max(groups.values(), key=lambda members: (len(members), max(map(_youth, members))))
    return max(largest, key=_youth)[0]


def _youth(item: _Item) -> tuple[float, int]:
    """Larger is younger: the connection time, then the position among the candidates."""
    return (item[0].connected, item[1])


def _protect(
    left: list[_Item], count: int, rank: Callable[[EvictionCandidate], float | None]
) -> list[_Item]:
    """
    Drop from C{left} the C{count} candidates of lowest C{rank}, among those it ranks (not
    C{None}); of equal ranks the older connection is protected first.
    """
    if count <= 0:
        return left
    ranked = [(r, _youth(item), item[1]) for item in left if (r := rank(item[0])) is not None]
    protected = {position for _, _, position in sorted(ranked)[:count]}
    return [item for item in left if item[1] not in protected]


def select_pending_victim(pending: Iterable[tuple[T, str]], newcomer: str) -> T | None:
    """
    Choose the pending handshake that gives way to a newcomer when the pending table is full:
    the oldest one from another network group than the newcomer's.

    @param pending: C{(key, host)} of each pending handshake, oldest first.
    @param newcomer: the newcomer's address.
    @return: the key of the victim, or C{None} if every pending handshake is from the
        newcomer's network group.
    """
    group = network_group(newcomer)
    for key, host in pending:
        if network_group(host) != group:
            return key
    return None
