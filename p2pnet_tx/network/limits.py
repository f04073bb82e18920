# -*- test-case-name: tests.test_network_dialer -*-
"""
L{NetworkLimits}: the bounds a network keeps, field by field.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class NetworkLimits:
    """
    The limits of a network; see RELIABILITY.md for where each default comes from.

    @ivar max_inbound: inbound channels at once.  A newcomer past it evicts an inbound peer
        that no protection below covers (see L{p2pnet_tx.network.eviction}), or is refused.
    @ivar max_outbound: outbound channels at once.
    @ivar max_pending: inbound channels still in their handshake (not yet trusted).  A
        newcomer past it takes the place of the oldest pending handshake from another network
        group (IPv4 /16, IPv6 /32) than its own, or is refused.
    @ivar max_per_ip: inbound channels from one IP address (not 1: NAT and shared hosts).
    @ivar connect_timeout: seconds to wait for a TCP connection.
    @ivar max_peer_list: peers in one shared list; more is misbehaviour.
    @ivar max_known_peers: peers remembered; past it the oldest is forgotten.
    @ivar dial_rate: dials per second started from shared peer lists (a token bucket) ...
    @ivar dial_burst: ... of this size.
    @ivar discourage_seconds: how long a misbehaving IP is discouraged.
    @ivar gossip_rate: addresses a second taken from shared peer lists into the known peers
        (a token bucket) ...
    @ivar gossip_burst: ... of this size.
    @ivar accept_rate: inbound connections a second accepted from one address (a token
        bucket per address) ...
    @ivar accept_burst: ... of this size.
    @ivar max_deferred_dials: dials put off by the dial rate or the outbound limit that are kept
        to be retried when a token or a slot frees up; past it the oldest is dropped (it stays
        among the known peers).
    @ivar protect_lowest_rtt: inbound peers with the lowest round-trip time that eviction
        spares (those whose time the kernel knows).
    @ivar protect_recently_useful: inbound peers that most recently sent a useful packet
        (one a handler took, not a keep-alive) that eviction spares.
    @ivar protect_longest_trusted: inbound peers trusted the longest that eviction spares.
    """

    max_inbound: int = 48
    max_outbound: int = 16
    max_pending: int = 16
    max_per_ip: int = 8
    connect_timeout: float = 10.0
    max_peer_list: int = 1000
    max_known_peers: int = 10_000
    dial_rate: float = 0.2
    dial_burst: int = 16
    discourage_seconds: float = 24 * 3600.0
    gossip_rate: float = 0.1
    gossip_burst: int = 1000
    accept_rate: float = 0.2
    accept_burst: int = 16
    max_deferred_dials: int = 256
    protect_lowest_rtt: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    protect_recently_useful: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    protect_longest_trusted: int = attrs.field(default=8, validator=attrs.validators.ge(0))
