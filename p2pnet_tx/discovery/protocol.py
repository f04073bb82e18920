# -*- test-case-name: tests.test_discovery_protocol -*-
"""
L{DiscoveryProtocol}: the receiving side of LAN discovery, one per UDP port.

Every datagram is judged in this order, and each refusal is counted by its cause in
C{rejected.<cause>} and otherwise ignored (a datagram never stops the listener):

  1. its size: more than C{max_datagram} bytes is C{too_large} (the port reads at most one byte
     more, so a larger datagram costs no more memory than that);
  2. its source: more than C{SourceRateLimit}'s rate is C{rate_limited}, before any parsing;
  3. the reader of the node's format (L{AnnouncementReader
     <p2pnet_tx.discovery.announcement.AnnouncementReader>} or L{DotNetDatagramReader
     <p2pnet_tx.discovery.dotnet_datagram.DotNetDatagramReader>}): its L{BadAnnouncement}
     gives the cause.

An accepted datagram names a peer, which goes to C{found}.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from p2pnet_tx.discovery.announcement import BadAnnouncement
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.network.admission import TokenBucket

__all__ = [
    "DEFAULT_MAX_DATAGRAM",
    "DEFAULT_MAX_SOURCES",
    "DiscoveryProtocol",
    "LogBudget",
    "SourceRateLimit",
]

DEFAULT_MAX_DATAGRAM = 1280
"""The largest datagram read, in bytes (discv4's limit; an announcement has 131)."""

DEFAULT_MAX_SOURCES = 1024
"""How many source addresses a rate limit tracks at most (the least recently heard go first)."""

_WARNED_CAUSES = frozenset({"source_mismatch", "bad_signature", "malformed", "version",
                            "too_large"})
"""Causes that suggest a misconfigured or hostile sender: logged as warnings (within a budget);
the others (stale, replayed, self, rate_limited, bad_port) at debug level."""


class SourceRateLimit:
    """
    A token bucket per source address: C{rate} datagrams a second, C{burst} at once, for at
    most C{max_sources} sources (a source forgotten starts again with a full bucket).

    @param clock: tells the time.
    """

    def __init__(
        self, clock: IReactorTime, rate: float = 1.0, burst: int = 5,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: str) -> bool:
        """Spend one of C{source}'s tokens; return whether it had one."""
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = TokenBucket(self._clock, self.rate, self.burst)
            if len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
        return bucket.take()


class LogBudget:
    """
    At most C{burst} lines at once and C{rate} a second after that; the lines over budget are
    counted, and the next line let through says how many.

    @param clock: tells the time.
    """

    def __init__(self, clock: IReactorTime, rate: float = 1 / 60, burst: int = 10) -> None:
        self._bucket = TokenBucket(clock, rate, burst)
        self.suppressed = 0

    def take(self) -> int | None:
        """
        @return: C{None} if the line is over budget, else how many were suppressed before it.
        """
        if not self._bucket.take():
            self.suppressed += 1
            return None
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


class DiscoveryProtocol(DatagramProtocol):
    """
    Reads the discovery datagrams of one UDP port.

    @param read: checks a datagram from a source address and returns the peer it names, or
        raises L{BadAnnouncement}.
    @param found: given each peer an accepted datagram names.
    @param counters: where C{received}, C{accepted} and C{rejected.<cause>} are counted
        (shared by every port of a node).
    @param limit: the per-source rate limit (shared by every port of a node).
    @param log_budget: bounds the warnings about refused datagrams.
    @param max_datagram: the largest datagram accepted, in bytes.
    """

    log = Logger()
    noisy = False  # the service logs where discovery listens, once

    def __init__(
        self,
        read: Callable[[bytes, str], IPeer],
        found: Callable[[IPeer], object],
        counters: Counter[str],
        limit: SourceRateLimit,
        log_budget: LogBudget,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
    ) -> None:
        self._read = read
        self._found = found
        self.counters = counters
        self._limit = limit
        self._log_budget = log_budget
        self.max_datagram = max_datagram

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        """Judge one datagram (see the module docstring)."""
        self.counters["received"] += 1
        source = addr[0]
        if len(datagram) > self.max_datagram:
            self._reject("too_large", source, f"more than {self.max_datagram} bytes")
            return
        if not self._limit.allow(source):
            self.counters["rejected.rate_limited"] += 1
            return
        try:
            peer = self._read(datagram, source)
        except BadAnnouncement as e:
            self._reject(e.cause, source, str(e))
            return
        except Exception:  # noqa: BLE001
            # A reader's bug must not silence discovery: count it as malformed, say so.
            self.counters["rejected.malformed"] += 1
            self.log.failure("reading a discovery datagram from {source} failed",
                             source=source)
            return
        self.counters["accepted"] += 1
        self._found(peer)

    def _reject(self, cause: str, source: str, why: str) -> None:
        self.counters["rejected." + cause] += 1
        if cause not in _WARNED_CAUSES:
            self.log.debug("ignoring a discovery datagram from {source}: {why}",
                           source=source, why=peer_text(why, limit=300))
            return
        suppressed = self._log_budget.take()
        if suppressed is None:
            return
        self.log.warn(
            "ignoring a discovery datagram from {source} ({cause}): {why}{more}",
            source=source, cause=cause, why=peer_text(why, limit=300),
            more=f" ({suppressed} similar lines suppressed)" if suppressed else "",
        )
