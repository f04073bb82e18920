# -*- test-case-name: tests.test_bootstrap_limits -*-
"""
The limits a bootstrap server holds its clients to: a request rate per IP, a body size cap,
a cap on registrations per network (IPv4 /24, IPv6 /64), and bounded connections.

The rate and the body cap are judged when a request's headers are in, before its body is
read: L{BootstrapRequest} answers C{429} (with C{Retry-After}) or C{413} and closes the
connection.  The connections are the control API's L{ControlSite}'s: a bounded number, each
held to a deadline (no slowloris).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from p2pnet_tx.control_site import BoundedBody, ControlRequest, ControlSite
from p2pnet_tx.network.admission import TokenBucket
from p2pnet_tx.network.eviction import network_group

__all__ = [
    "BootstrapLimits",
    "BootstrapRequest",
    "BootstrapSite",
    "RateLimiter",
    "registration_group",
]


@attrs.frozen
class BootstrapLimits:
    """
    The limits of a bootstrap server.

    @ivar max_body: the largest request body read, in bytes (16 KiB).
    @ivar request_rate: requests a second one IP may make, sustained.
    @ivar request_burst: requests one IP may make at once.
    @ivar tracked_ips: IPs whose rate is tracked; past it the least recently seen is forgotten.
    @ivar max_per_group: live registrations from one IPv4 /24 or IPv6 /64.
    @ivar max_peers: live registrations in all.
    @ivar max_tasks_per_peer: tasks queued for one peer; past it the oldest is dropped.
    @ivar max_connections: HTTP connections open at once.
    @ivar connection_timeout: seconds a connection may stay open with no request in progress.
    """

    max_body: int = 16 * 1024
    request_rate: float = 5.0
    request_burst: int = 50
    tracked_ips: int = 10_000
    max_per_group: int = 32
    max_peers: int = 100_000
    max_tasks_per_peer: int = 100
    max_connections: int = 1024
    connection_timeout: float = 10.0


def registration_group(ip: str) -> str:
    """
    The network a registration counts against: an IPv4 /24 or an IPv6 /64 (an IPv4-mapped
    IPv6 address counts as its IPv4 address; a zone, C{%eth0}, is ignored).

    @param ip: the source address of the registration.
    @return: the network, e.g. C{"10.1.2.0/24"}; an address that is not an IP is its own.
    """
    return network_group(ip, ipv4_prefix=24, ipv6_prefix=64)


class RateLimiter:
    """
    A token bucket per client IP, for at most C{limits.tracked_ips} IPs (the least recently
    seen is forgotten first: it starts again with a full bucket, which is the cost of bounded
    memory).

    @param clock: tells the time; nothing is scheduled.
    @param limits: the rate, burst and how many IPs to track.
    @ivar refused: how many requests were refused.
    """

    def __init__(self, clock: IReactorTime, limits: BootstrapLimits) -> None:
        self._clock = clock
        self._limits = limits
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0

    def retry_after(self, ip: str) -> int | None:
        """
        Spend one of C{ip}'s tokens.

        @return: C{None} if there was one; otherwise the whole seconds to wait (at least 1).
        """
        bucket = self._buckets.get(ip)
        if bucket is None:
            while len(self._buckets) >= self._limits.tracked_ips:
                self._buckets.popitem(last=False)
            bucket = self._buckets[ip] = TokenBucket(
                self._clock, self._limits.request_rate, self._limits.request_burst)
        else:
            self._buckets.move_to_end(ip)
        if bucket.take():
            return None
        self.refused += 1
        wait = bucket.seconds_until_token()
        return 3600 if wait is None else max(1, math.ceil(wait))


class BootstrapRequest(ControlRequest):
    """
    A request to a bootstrap server, judged as soon as its headers are in: over its IP's rate,
    it is answered C{429} with C{Retry-After}; with a declared body over C{max_body}, C{413};
    either way the connection is closed and the body never read.  (A request without a body
    is marked, C{retry_after}, and answered C{429} by the root resource.)  A chunked body is
    kept up to the control API's cap, and the resource refuses one over C{max_body} (C{413}).

    @ivar retry_after: the seconds to wait, for a request over its IP's rate that had no
        body to leave unread; else C{None}.
    """

    retry_after: int | None = None

    def gotLength(self, length: int | None) -> None:
        """
        Judge the request from its headers, or prepare for its body.

        @param length: the declared length of the body, or C{None} (chunked).
        """
        site = self.channel.site
        retry = site.limiter.retry_after(self.getClientAddress().host)
        if retry is not None:
            if not length:
                # Nothing to leave unread: the root resource answers (Twisted's channel
                # expects a request without a body to reach it).
                self.retry_after = retry
                super().gotLength(length)
                return
            self.setHeader(b"retry-after", b"%d" % retry)
            self._refuse(429, f"too many requests from your address: retry in {retry} s")
            return
        if length is not None and length > site.limits.max_body:
            self._refuse(413, f"request body over {site.limits.max_body} bytes")
            return
        super().gotLength(length)

    def _refuse(self, code: int, message: str) -> None:
        self.content = BoundedBody()
        self.refused = True
        self.clientproto = b"HTTP/1.1"  # not yet parsed from the request line: see ControlRequest
        body = json.dumps({"error": message}).encode()
        self.setResponseCode(code)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.setHeader(b"connection", b"close")
        self.write(body)
        channel, transport = self.channel, self.transport
        self.finish()
        if not transport.disconnecting:
            channel.loseConnection()


class BootstrapSite(ControlSite):
    """
    The bootstrap server's site: the control API's bounded connections with deadlines, and
    L{BootstrapRequest}'s rate and size checks.

    @param resource: the root resource.
    @param reactor: accepts the connections and keeps the deadlines and the rates' time.
    @param limits: the limits.
    @ivar limiter: the per-IP rate limiter.
    """

    def __init__(self, resource: Any, reactor: IReactorTime, limits: BootstrapLimits) -> None:
        super().__init__(resource, reactor, max_connections=limits.max_connections,
                         timeout=limits.connection_timeout)
        self.requestFactory = BootstrapRequest
        self.limits = limits
        self.limiter = RateLimiter(reactor, limits)
