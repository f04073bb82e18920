# -*- test-case-name: tests.test_network_admission -*-
"""
Admission control: which inbound connections a network refuses before it reads a byte, which
peer gives way to a newcomer when the node is full, which addresses it discourages for
misbehaving, and which it blocks.

L{TokenBucket} is the rate limit the network's parts share (dials, gossip, accepts).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx.network.eviction import (
    EvictionCandidate,
    select_pending_victim,
    select_victim,
)
from p2pnet_tx.network.rtt import kernel_rtt
from p2pnet_tx.policy import BlockList, IncomingPeerTrustPolicy, normalize_ip

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network.limits import NetworkLimits
    from p2pnet_tx.network.table import PeerTable

EVICTED = "evicted for a newcomer"
"""The close reason of a peer evicted to make room for a newcomer."""

MAX_RATE_TRACKED_HOSTS = 10_000
"""Addresses whose connection rate is tracked; past it the least recently seen is forgotten."""

# Floating-point refills land a hair under a whole token at the very time one is due; a timer
# set for that time must find it there.
_EPSILON = 1e-9


class TokenBucket:
    """
    A token bucket on a clock: C{rate} tokens a second, at most C{burst} saved up.

    @param clock: tells the time; nothing is scheduled on it.
    @param rate: tokens added a second.
    @param burst: the most tokens held, and the number it starts with.
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: int) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = clock.seconds()

    def _refill(self) -> None:
        now = self._clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self) -> bool:
        """
        Spend a token if there is one.

        @return: whether there was.
        """
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens -= 1.0
            return True
        return False

    def seconds_until_token(self) -> float | None:
        """
        @return: how long until L{take} succeeds (0 if it would now), or C{None} if it never
            will (a bucket whose burst is under one token, or whose rate is zero).
        """
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        if self.burst < 1 or self.rate <= 0:
            return None
        return (1.0 - self._tokens) / self.rate


class Admission:
    """
    Decides on inbound connections from what the peer table counts, evicts a peer for a
    newcomer when the node is full, and keeps the addresses that misbehaved.

    @param clock: the clock of the accept buckets and of discouragement expiry.
    @param policy: the trust policy, for blocked addresses.
    @param limits: the network's limits.
    @param table: the peer table whose counts the limits apply to.
    @param counters: the network's counters; C{misbehaving_peers}, C{evicted} and
        C{pending_evicted} are counted here.
    @param rtt: reads a channel's transport's round-trip time in seconds (or C{None}); asked
        only while an eviction is decided.

    @ivar discouraged_ips: addresses that misbehaved, for C{limits.discourage_seconds}: they are
        refused while the node is half full.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        policy: IncomingPeerTrustPolicy,
        limits: NetworkLimits,
        table: PeerTable,
        counters: Counter[str],
        rtt: Callable[[Any], float | None] = kernel_rtt,
    ) -> None:
        self._clock = clock
        self._rtt = rtt
        self._policy = policy
        self._limits = limits
        self._table = table
        self._counters = counters
        self._closed = False
        self._accepts: OrderedDict[str, TokenBucket] = OrderedDict()
        # Peers closed for a newcomer whose close has not reached the table yet: their slot is
        # promised, and nobody else is evicted for it.  Weak: a gone channel is not kept here.
        self._evicting: WeakSet[PeerChannel] = WeakSet()
        self.discouraged_ips = BlockList(
            clock=clock, default_duration=limits.discourage_seconds, normalize=normalize_ip
        )

    def close(self) -> None:
        """Refuse every later connection."""
        self._closed = True

    def refusal(self, host: str) -> str | None:
        """
        Why an inbound connection from C{host} must be refused now.

        When the inbound table or the pending table is full, a newcomer that passes every
        other check makes room: an inbound peer is evicted (L{select_victim
        <p2pnet_tx.network.eviction.select_victim>}), or the oldest pending handshake from
        another network group (L{select_pending_victim
        <p2pnet_tx.network.eviction.select_pending_victim>}); the victim is closed before
        this returns.  A connection that is not refused spends a token of its address's
        accept bucket.

        @return: the reason, or C{None} to accept it.
        """
        try:
            host = normalize_ip(host)
        except ValueError:
            pass
        if self._closed:
            return "network closed"
        if self._policy.is_blocked_ip(host):
            return "blocked"
        limits, table = self._limits, self._table
        inbound_full = table.inbound_count >= limits.max_inbound
        pending_full = table.pending_count >= limits.max_pending
        # Every check that does not depend on room first: nobody is evicted for a newcomer
        # that would be refused anyway.
        if table.inbound_from(host) >= limits.max_per_ip:
            return "too many connections from this address"
        if host in self.discouraged_ips and table.inbound_count >= limits.max_inbound // 2:
            return "discouraged"
        bucket = self._accept_bucket(host)
        if bucket.seconds_until_token() != 0.0:
            return "connecting too often"
        if inbound_full or pending_full:
            refusal = self._make_room(host, inbound_full, pending_full)
            if refusal is not None:
                return refusal
        bucket.take()
        return None

    def _make_room(self, host: str, inbound_full: bool, pending_full: bool) -> str | None:
        """
        Evict what must go for a newcomer from C{host}: both victims are chosen before
        either is closed, so that nobody is evicted for a newcomer then refused.

        @return: why there is no room, or C{None} once there is.
        """
        table = self._table
        for channel in [c for c in self._evicting if not table.is_connected(c)]:
            self._evicting.discard(channel)
        if self._evicting:
            # An earlier eviction's close is still on its way: its slot is the next newcomer's.
            return "too many inbound peers" if inbound_full else "too many pending handshakes"
        victims: list[tuple[PeerChannel, str]] = []
        if inbound_full:
            victim = self._inbound_victim()
            if victim is None:
                return "too many inbound peers"
            victims.append((victim, "evicted"))
        if pending_full and not any(table.is_pending(channel) for channel, _ in victims):
            pending = select_pending_victim(table.pending_hosts(), host)
            if pending is None:
                return "too many pending handshakes"
            victims.append((pending, "pending_evicted"))
        for channel, counter in victims:
            self._evict(channel, host, counter)
        if table.inbound_count >= self._limits.max_inbound:
            return "too many inbound peers"
        if table.pending_count >= self._limits.max_pending:
            return "too many pending handshakes"
        return None

    def _inbound_victim(self) -> PeerChannel | None:
        """The inbound peer to evict (see L{select_victim}), or C{None} if all are protected."""
        table, limits = self._table, self._limits
        candidates = [
            EvictionCandidate(
                key=channel,
                host=host,
                connected=rank,
                outbound=table.is_outbound(channel),
                trusted_since=channel.trusted_since,
                last_useful=channel.last_useful_packet,
                rtt=self._rtt(channel.transport),
                discouraged=host in self.discouraged_ips,
            )
            for rank, (channel, host) in enumerate(table.inbound())
        ]
        victim = select_victim(
            candidates,
            lowest_rtt=limits.protect_lowest_rtt,
            recently_useful=limits.protect_recently_useful,
            longest_trusted=limits.protect_longest_trusted,
        )
        return None if victim is None else victim.key  # type: ignore[return-value]

    def _evict(self, channel: PeerChannel, newcomer: str, counter: str) -> None:
        self._counters[counter] += 1
        what = "pending handshake" if counter == "pending_evicted" else "inbound peer"
        self.log.info("evicted {what} {peer} for a newcomer from {newcomer}", what=what,
                      peer=channel.peer, newcomer=newcomer)
        channel.close(EVICTED)
        if self._table.is_connected(channel):
            self._evicting.add(channel)

    def block(self, ip: str | None, identifier: str | None) -> list[PeerChannel]:
        """
        Block an IP address and/or an identifier for good, and close the channels they match.

        @return: the channels closed.
        @raise ValueError: for an invalid IP address, or when neither is given.
        """
        if ip is None and identifier is None:
            raise ValueError("block() needs an ip or an identifier")
        if ip is not None:
            self._policy.blocked_ips.add(ip)
            ip = normalize_ip(ip)
        if identifier is not None:
            self._policy.blocked_identifiers.add(identifier)
        dropped = self._table.matching(ip, identifier)
        for channel in dropped:
            channel.close("blocked")
        self.log.info("blocked {ip} {identifier}; dropped {count} channels", ip=ip,
                      identifier=identifier, count=len(dropped))
        return dropped

    def misbehaved(self, host: str) -> None:
        """The peer at C{host} broke the protocol: count it and discourage its address."""
        self._counters["misbehaving_peers"] += 1
        if host:
            try:
                self.discouraged_ips.add(host)
            except ValueError:
                self.log.debug("not discouraging {host}: not an IP address", host=host)

    def _accept_bucket(self, host: str) -> TokenBucket:
        bucket = self._accepts.pop(host, None)
        if bucket is None:
            bucket = TokenBucket(self._clock, self._limits.accept_rate, self._limits.accept_burst)
        self._accepts[host] = bucket
        while len(self._accepts) > MAX_RATE_TRACKED_HOSTS:
            self._accepts.popitem(last=False)
        return bucket
