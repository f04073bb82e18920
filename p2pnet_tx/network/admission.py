# -*- test-case-name: tests.test_network_admission -*-
"""
Admission control: which inbound connections a network refuses before it reads a byte, which
addresses it discourages for misbehaving, and which it blocks.

L{TokenBucket} is the rate limit the network's parts share (dials, gossip, accepts).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx.policy import BlockList, IncomingPeerTrustPolicy, normalize_ip

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel
    from p2pnet_tx.network.limits import NetworkLimits
    from p2pnet_tx.network.table import PeerTable

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
    Decides on inbound connections from what the peer table counts, and keeps the addresses
    that misbehaved.

    @param clock: the clock of the accept buckets and of discouragement expiry.
    @param policy: the trust policy, for blocked addresses.
    @param limits: the network's limits.
    @param table: the peer table whose counts the limits apply to.
    @param counters: the network's counters; C{misbehaving_peers} is counted here.

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
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._limits = limits
        self._table = table
        self._counters = counters
        self._closed = False
        self._accepts: OrderedDict[str, TokenBucket] = OrderedDict()
        self.discouraged_ips = BlockList(
            clock=clock, default_duration=limits.discourage_seconds, normalize=normalize_ip
        )

    def close(self) -> None:
        """Refuse every later connection."""
        self._closed = True

    def refusal(self, host: str) -> str | None:
        """
        Why an inbound connection from C{host} must be refused now.

        A connection that is not refused spends a token of its address's accept bucket.

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
        inbound = self._table.inbound_count
        if inbound >= self._limits.max_inbound:
            return "too many inbound peers"
        if self._table.pending_count >= self._limits.max_pending:
            return "too many pending handshakes"
        if self._table.inbound_from(host) >= self._limits.max_per_ip:
            return "too many connections from this address"
        if host in self.discouraged_ips and inbound >= self._limits.max_inbound // 2:
            return "discouraged"
        if not self._accept_bucket(host).take():
            return "connecting too often"
        return None

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
