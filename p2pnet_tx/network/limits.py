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

    @ivar max_inbound: inbound channels at once.
    @ivar max_outbound: outbound channels at once.
    @ivar max_pending: inbound channels still in their handshake (not yet trusted).
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
