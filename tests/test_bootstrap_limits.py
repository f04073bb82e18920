"""
The bootstrap server's limits, on its real site and HTTP channel over StringTransports with
a MemoryReactorClock: the per-IP rate (429 + Retry-After), the body cap (413 before the body
is read), and the networks registrations count against.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from p2pnet_tx.bootstrap.limits import (
    BootstrapLimits,
    BootstrapSite,
    RateLimiter,
    registration_group,
)

from .bootstrap_support import SyncReactor, make_server


def _send(site: BootstrapSite, ip: str, data: bytes) -> StringTransport:
    channel = site.buildProtocol(IPv4Address("TCP", ip, 50000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", ip, 50000))
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return transport


def _site(tmp_path: Path, **limits: float) -> tuple[SyncReactor, BootstrapSite]:
    reactor, _, root = make_server(tmp_path)
    return reactor, BootstrapSite(root, reactor, BootstrapLimits(**limits))


def test_rate_limit_per_ip_with_retry_after(tmp_path: Path) -> None:
    """An IP gets its burst, then 429 with Retry-After and a closed connection; another IP
    is not affected; a token comes back after 1/rate seconds."""
    reactor, site = _site(tmp_path, request_rate=0.5, request_burst=3)
    request = b"GET /v1/authority HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(3):
        assert _send(site, "10.0.0.1", request).value().startswith(b"HTTP/1.1 200 ")
    refused = _send(site, "10.0.0.1", request)
    assert refused.value().startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    posted = _send(site, "10.0.0.1", b"POST /v1/register HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 5\r\n\r\n")
    assert posted.value().startswith(b"HTTP/1.1 429 ") and posted.disconnecting
    assert b"Retry-After: 2\r\n" in refused.value()
    assert _send(site, "10.0.0.2", request).value().startswith(b"HTTP/1.1 200 ")
    reactor.advance(2)
    assert _send(site, "10.0.0.1", request).value().startswith(b"HTTP/1.1 200 ")
    assert site.limiter.refused == 2


def test_declared_body_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    """A Content-Length over 16 KiB is 413 at once, the connection closed; 16 KiB exactly is
    read (and judged by the resource)."""
    _, site = _site(tmp_path)
    head = b"POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    refused = _send(site, "10.0.0.3", head % (16 * 1024 + 1))
    assert refused.value().startswith(b"HTTP/1.1 413 ") and refused.disconnecting
    taken = _send(site, "10.0.0.4", head % (16 * 1024) + b" " * (16 * 1024))
    assert taken.value().startswith(b"HTTP/1.1 400 ")


def test_tracked_ips_are_bounded(tmp_path: Path) -> None:
    """The limiter tracks at most tracked_ips addresses (the least recently seen go)."""
    limiter = RateLimiter(SyncReactor(), BootstrapLimits(tracked_ips=3, request_burst=1,
                                                         request_rate=0.001))
    for number in range(10):
        assert limiter.retry_after(f"10.0.1.{number}") is None
    assert len(limiter._buckets) == 3
    assert limiter.retry_after("10.0.1.9") is not None


def test_registration_groups() -> None:
    """IPv4 counts by /24, IPv6 by /64, IPv4-mapped IPv6 as IPv4."""
    assert registration_group("192.0.2.77") == "192.0.2.0/24"
    assert registration_group("::ffff:192.0.2.7") == "192.0.2.0/24"
    assert registration_group("2001:db8:a:b:c:d:e:f") == "2001:db8:a:b::/64"
    assert registration_group("fe80::1%eth0") == "fe80::/64"
    assert registration_group("not an ip") == "not an ip"
