"""
DiscoveryProtocol: every datagram is counted and either accepted or refused by cause, within
the size cap and the per-source rate limit; nothing a sender does stops the listener.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, FakeDatagramTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.discovery.announcement import BadAnnouncement
from p2pnet_tx.discovery.protocol import DiscoveryProtocol, LogBudget, SourceRateLimit
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.peer import GenericPeer


def read(data: bytes, source: str) -> IPeer:
    """A reader for the tests: b"ok:PORT" names source:PORT; b"bad:CAUSE" is refused with
    CAUSE; b"crash" is a bug."""
    if data.startswith(b"ok:"):
        return GenericPeer(source, int(data[3:]))
    if data.startswith(b"bad:"):
        raise BadAnnouncement(data[4:].decode(), "refused for the test")
    raise RuntimeError("a bug in a reader")


class DiscoveryProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters: Counter[str] = Counter()
        self.found: list[IPeer] = []
        self.limit = SourceRateLimit(self.clock, rate=1.0, burst=5)
        self.protocol = DiscoveryProtocol(read, self.found.append, self.counters, self.limit,
                                          LogBudget(self.clock, rate=1 / 60, burst=3),
                                          max_datagram=100)
        self.protocol.makeConnection(FakeDatagramTransport())

    def test_accepted(self) -> None:
        """A good datagram's peer goes to found."""
        self.protocol.datagramReceived(b"ok:8051", ("10.0.0.7", 8004))
        self.assertEqual(self.found, [GenericPeer("10.0.0.7", 8051)])
        self.assertEqual(self.counters, Counter(received=1, accepted=1))

    def test_refused_by_cause(self) -> None:
        """A refusal is counted under its cause and dials nothing."""
        self.protocol.datagramReceived(b"bad:stale", ("10.0.0.7", 8004))
        self.protocol.datagramReceived(b"bad:replayed", ("10.0.0.8", 8004))
        self.assertEqual(self.found, [])
        self.assertEqual(self.counters, Counter({"received": 2, "rejected.stale": 1,
                                                 "rejected.replayed": 1}))

    def test_too_large_before_reading(self) -> None:
        """A datagram over the cap is refused unread (it does not even spend a token)."""
        self.protocol.datagramReceived(b"ok:1" + b"0" * 100, ("10.0.0.7", 8004))
        self.assertEqual(self.counters["rejected.too_large"], 1)
        for _ in range(5):
            self.protocol.datagramReceived(b"ok:8051", ("10.0.0.7", 8004))
        self.assertEqual(self.counters["accepted"], 5)

    def test_rate_limit_per_source(self) -> None:
        """Past its burst a source is refused until its bucket refills; another source is
        not affected."""
        for _ in range(8):
            self.protocol.datagramReceived(b"ok:8051", ("10.0.0.7", 8004))
        self.assertEqual((self.counters["accepted"], self.counters["rejected.rate_limited"]),
                         (5, 3))
        self.protocol.datagramReceived(b"ok:8051", ("10.0.0.8", 8004))
        self.assertEqual(self.counters["accepted"], 6)
        self.clock.advance(1.0)
        self.protocol.datagramReceived(b"ok:8051", ("10.0.0.7", 8004))
        self.assertEqual(self.counters["accepted"], 7)

    def test_flood_is_bounded(self) -> None:
        """10,000 datagrams from one source: 5 are read, the rest refused unread."""
        for _ in range(10_000):
            self.protocol.datagramReceived(b"bad:malformed", ("10.0.0.7", 8004))
        self.assertEqual(self.counters["received"], 10_000)
        self.assertEqual(self.counters["rejected.malformed"], 5)
        self.assertEqual(self.counters["rejected.rate_limited"], 9_995)

    def test_reader_bug_is_counted_and_logged(self) -> None:
        """A reader that raises something unexpected: counted as malformed, logged as a
        failure, and the next datagram is still read."""
        self.protocol.datagramReceived(b"crash", ("10.0.0.7", 8004))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.protocol.datagramReceived(b"ok:8051", ("10.0.0.7", 8004))
        self.assertEqual(self.counters["rejected.malformed"], 1)
        self.assertEqual(len(self.found), 1)

    def test_warnings_within_a_budget(self) -> None:
        """Suspicious refusals are warnings, at most the budget's burst at once; the next one
        let through says how many were suppressed.  Ordinary ones are debug lines."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for number in range(10):
            self.protocol.datagramReceived(b"bad:bad_signature", (f"10.0.1.{number}", 8004))
        self.protocol.datagramReceived(b"bad:stale", ("10.0.2.1", 8004))
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 3)
        self.assertEqual(warnings[0]["cause"], "bad_signature")
        self.assertEqual([e["log_level"] for e in events if e.get("source") == "10.0.2.1"],
                         [LogLevel.debug])
        self.clock.advance(60)
        self.protocol.datagramReceived(b"bad:source_mismatch", ("10.0.3.1", 8004))
        last = [e for e in events if e["log_level"] == LogLevel.warn][-1]
        self.assertIn("7 similar lines suppressed", last["more"])


class SourceRateLimitTests(SynchronousTestCase):
    def test_tracks_a_bounded_number_of_sources(self) -> None:
        """Past max_sources the least recently heard source is forgotten."""
        limit = SourceRateLimit(Clock(), rate=1.0, burst=1, max_sources=2)
        self.assertTrue(limit.allow("10.0.0.1"))
        self.assertTrue(limit.allow("10.0.0.2"))
        self.assertFalse(limit.allow("10.0.0.1"))  # heard again: now the most recent
        self.assertTrue(limit.allow("10.0.0.3"))  # 10.0.0.2 is forgotten
        self.assertEqual(len(limit), 2)
        self.assertFalse(limit.allow("10.0.0.1"))
        self.assertTrue(limit.allow("10.0.0.2"))  # forgotten, so a full bucket again


