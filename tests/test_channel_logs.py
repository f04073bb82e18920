"""
Tests for what a channel logs about its peer, and how it is bounded: the peer's text is cut
and escaped (L{p2pnet_tx.logtext.peer_text}), the lines a peer causes are rate-limited per
channel (L{PeerChannel.log_peer}), and an unknown packet type before trust drops the peer.

The flood tests measure the bytes twisted.logger's own file observers write, in memory.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import (
    LogLevel,
    formatEvent,
    globalLogPublisher,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.errors import UnknownPacketType
from p2pnet_tx.handlers import handle_message
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.testing import RecordingHandler
from p2pnet_tx.trust import always_trust
from tests.test_channel import (
    RecordingOwner,
    connect,
    frame,
    message,
    raw_frame,
    recording_handlers,
)

MB = 1_000_000


def unknown_type_frame(name_size: int) -> bytes:
    """
    A p2pnet frame of an unknown packet type whose name is C{name_size} characters, starting
    with an ANSI escape and a newline (as they arrive in JSON).
    """
    name = "\\u001b[2J\\n" + "T" * (name_size - 5)
    return raw_frame(b'{"type": "' + name.encode() + b'", "packet": {}}')


class LogBytes:
    """
    twisted.logger's text and JSON file observers, writing to memory, on the global
    publisher for the length of a test: what a node's log file would receive.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.text = io.StringIO()
        self.json = io.StringIO()
        self.events = EventLoggingObserver.createWithCleanup(case, globalLogPublisher)
        for observer in (textFileLogObserver(self.text), jsonFileLogObserver(self.json)):
            globalLogPublisher.addObserver(observer)
            case.addCleanup(globalLogPublisher.removeObserver, observer)

    def sizes(self) -> tuple[int, int]:
        """The bytes written so far: as text, and as JSON."""
        return (len(self.text.getvalue().encode("utf-8")),
                len(self.json.getvalue().encode("utf-8")))

    def lines(self) -> list[str]:
        """The text log's lines."""
        return self.text.getvalue().splitlines()

    def formatted(self, level: LogLevel | None = None) -> list[str]:
        """The messages of the events seen (of one level, if given)."""
        return [formatEvent(event) for event in self.events
                if level is None or event["log_level"] is level]


class PeerLogBudgetTests(SynchronousTestCase):
    """The lines a peer causes are rate-limited per channel, and the rest is counted."""

    def setUp(self) -> None:
        self.logs = LogBytes(self)
        self.handlers, self.recorder = recording_handlers()

    def trusted_channel(self, **limits: Any) -> tuple[PeerChannel, StringTransport, Clock]:
        channel, transport, clock = connect(handlers=self.handlers,
                                            limits=ChannelLimits(**limits))
        channel.trust()
        return channel, transport, clock

    def unknown_lines(self) -> list[str]:
        return [line for line in self.logs.formatted(LogLevel.warn)
                if line.startswith("unknown packet type")]

    def suppressed_counts(self, level: LogLevel = LogLevel.warn) -> list[int]:
        return [event["count"] for event in self.logs.events
                if "more lines about" in event["log_format"] and event["log_level"] is level]

    def test_budget_made_on_first_line_only(self) -> None:
        """A channel whose peer causes no line has no budget: an idle channel stays small."""
        channel, _, _ = self.trusted_channel()
        channel.dataReceived(frame(message("hello")) * 3)
        self.assertEqual(len(self.recorder.calls), 3)
        self.assertIsNone(channel._warning_budget)
        self.assertIsNone(channel._chatter_budget)
        channel.dataReceived(unknown_type_frame(50))
        self.assertIsNotNone(channel._warning_budget)
        self.assertIsNone(channel._chatter_budget)

    def test_unknown_types_after_trust_rate_limited(self) -> None:
        """
        A trusted peer's unknown types are counted and ignored; 10 warnings are logged, then
        one per 6 s, and the line that resumes logging says how many were not.
        """
        channel, transport, clock = self.trusted_channel()
        channel.dataReceived(unknown_type_frame(200) * 50)
        self.assertEqual(channel.counters["unknown"], 50)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.unknown_lines()), 10)
        clock.advance(6)
        channel.dataReceived(unknown_type_frame(200))
        self.assertEqual(len(self.unknown_lines()), 11)
        self.assertEqual(self.suppressed_counts(), [40])
        channel.dataReceived(frame(message("still here")))
        self.assertEqual(len(self.recorder.calls), 1)

    def test_suppressed_count_logged_on_close(self) -> None:
        """When the channel closes, one line says how many lines about the peer were not logged."""
        channel, _, _ = self.trusted_channel(peer_log_burst=2)
        channel.dataReceived(unknown_type_frame(50) * 7)
        self.assertEqual(len(self.unknown_lines()), 2)
        self.assertEqual(self.suppressed_counts(), [])
        channel.connectionLost()
        self.assertEqual(self.suppressed_counts(), [5])
        [summary] = [line for line in self.logs.formatted() if "more lines about" in line]
        self.assertEqual(summary, "5 more lines about 10.0.0.7:40001 were not logged "
                                  "(at most 2 per 60.0 s)")

    def test_warnings_have_their_own_budget(self) -> None:
        """Per-packet debug lines never use up the budget of warnings."""
        self.handlers.set_handler(PacketType.MESSAGE, handle_message)  # logs at debug level
        channel, _, _ = self.trusted_channel()
        channel.dataReceived(frame(message("chat")) * 100)
        debug = [line for line in self.logs.formatted(LogLevel.debug)
                 if line.startswith("message from")]
        self.assertEqual(len(debug), 10)
        channel.dataReceived(unknown_type_frame(50))
        self.assertEqual(len(self.unknown_lines()), 1)
        channel.connectionLost()
        self.assertEqual(self.suppressed_counts(LogLevel.debug), [90])
        self.assertEqual(self.suppressed_counts(LogLevel.warn), [])

    def test_default_handlers_escape_messages(self) -> None:
        """The default Message handler logs the text cut to 100 characters and escaped."""
        self.handlers.set_handler(PacketType.MESSAGE, handle_message)
        channel, _, _ = self.trusted_channel()
        channel.dataReceived(frame(PureMessagePacket("\x1b[2Jforged\n" + "x" * 5000)))
        [line] = [line for line in self.logs.formatted(LogLevel.debug)
                  if line.startswith("message from")]
        self.assertTrue(line.startswith("message from 10.0.0.7:40001: \\x1b[2Jforged\\nxxx"),
                        line)
        self.assertTrue(line.endswith("...[4915 more chars]"), line)

    def test_handler_failures_rate_limited(self) -> None:
        """A handler that fails on every packet logs 10 tracebacks, not one per packet."""

        def failing(channel: PeerChannel, packet: Any) -> None:
            raise ValueError("bad packet")

        self.handlers.set_handler(PacketType.MESSAGE, failing)
        channel, _, _ = self.trusted_channel()
        channel.dataReceived(frame(message("x")) * 30)
        self.assertEqual(channel.counters["handler_errors"], 30)
        failures = [event for event in self.logs.events if "log_failure" in event]
        self.assertEqual(len(failures), 10)
        self.flushLoggedErrors(ValueError)

    def test_malformed_frames_rate_limited(self) -> None:
        """With a high max_malformed, the warnings about malformed frames are rate-limited."""
        channel, _, _ = self.trusted_channel(max_malformed=1000)
        channel.dataReceived(raw_frame(b'{"type": "Message", "packet": 7}') * 40)
        self.assertEqual(channel.counters["malformed"], 40)
        malformed = [line for line in self.logs.formatted(LogLevel.warn)
                     if line.startswith("malformed packet")]
        self.assertEqual(len(malformed), 10)

    def test_budget_configurable(self) -> None:
        """The burst and the window come from ChannelLimits."""
        channel, _, clock = self.trusted_channel(peer_log_burst=1, peer_log_window=1.0)
        channel.dataReceived(unknown_type_frame(50) * 3)
        self.assertEqual(len(self.unknown_lines()), 1)
        clock.advance(1)
        channel.dataReceived(unknown_type_frame(50) * 3)
        self.assertEqual(len(self.unknown_lines()), 2)
        self.assertRaises(ValueError, ChannelLimits, peer_log_burst=0)
        self.assertRaises(ValueError, ChannelLimits, peer_log_window=0)


class UnknownTypeBeforeTrustTests(SynchronousTestCase):
    """Before trust an unknown packet type is misbehaviour: the peer is dropped at once."""

    def test_first_unknown_type_drops_untrusted_peer(self) -> None:
        """
        The first unknown type from an untrusted peer aborts the channel and reports the
        misbehaviour to the owner; no handler runs and the one line logged is short.
        """
        logs = LogBytes(self)
        handlers, recorder = recording_handlers()
        owner = RecordingOwner()
        channel, transport, _ = connect(handlers=handlers, owner=owner)
        channel.dataReceived(unknown_type_frame(3000) + frame(message("after")))
        self.assertTrue(transport.aborted)
        self.assertEqual(recorder.calls, [])
        self.assertEqual(channel.counters["unknown"], 1)
        [(_, _, error)] = [call for call in owner.calls if call[0] == "peer_misbehaved"]
        self.assertIsInstance(error, UnknownPacketType)
        [warning] = logs.formatted(LogLevel.warn)
        self.assertTrue(warning.startswith(
            "dropping misbehaving peer 10.0.0.7:40001: unknown packet type '\\x1b[2J\\nTTT"),
            warning)
        self.assertLess(len(warning), 250)
        self.assertTrue(channel.close_reason.startswith("misbehaving: unknown packet type"))
        self.assertLess(len(channel.close_reason), 250)

    def test_unknown_type_after_trust_still_ignored(self) -> None:
        """After trust the default stays: counted and ignored (drop_unknown_packets drops)."""
        channel, transport, _ = connect()
        channel.trust()
        channel.dataReceived(unknown_type_frame(50))
        self.assertFalse(transport.disconnecting)
        dropping, dropping_transport, _ = connect(
            limits=ChannelLimits(drop_unknown_packets=True))
        dropping.trust()
        dropping.dataReceived(unknown_type_frame(50))
        self.assertTrue(dropping_transport.aborted)


def chunks(frames: bytes, total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """
    Slices of C{size} bytes of C{frames} repeated until at least C{total} bytes: TCP-sized
    reads that split frames anywhere.
    """
    sent = 0
    while sent < total:
        for start in range(0, len(frames), size):
            yield frames[start : start + size]
        sent += len(frames)


class LogFloodTests(SynchronousTestCase):
    """
    A peer cannot fill the disk through the log (the issue: 298 MB of log in 3.4 s from one
    connection sending unknown types with 60 KB names).
    """

    def test_100_mb_of_unknown_types_from_trusted_peer(self) -> None:
        """
        A trusted peer may send unknown types for ever (they are counted and ignored): 100 MB
        of frames with 60 KB type names grow the log by less than 100 KB, as text or JSON.
        """
        logs = LogBytes(self)
        handlers, recorder = recording_handlers()
        channel, transport, _ = connect(handlers=handlers)
        channel.trust()
        one = unknown_type_frame(60_000)
        frames = one * (MB // len(one) + 1)
        received = count = 0
        for chunk in chunks(frames, 100 * MB):
            channel.dataReceived(chunk)
            received += len(chunk)
        count = received // len(one)
        self.assertGreaterEqual(received, 100 * MB)
        self.assertEqual(channel.counters["unknown"], count)
        self.assertGreater(count, 1600)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(frame(message("still usable")))
        self.assertEqual(len(recorder.calls), 1)
        channel.connectionLost()
        text_bytes, json_bytes = logs.sizes()
        self.assertLess(text_bytes, 100_000)
        self.assertLess(json_bytes, 100_000)
        lines = logs.lines()
        self.assertEqual(len([line for line in lines if "unknown packet type" in line]), 10)
        [summary] = [line for line in lines if "more lines about" in line]
        self.assertIn(f"{count - 10} more lines about 10.0.0.7:40001 were not logged", summary)
        for line in lines:
            self.assertLess(len(line), 400, line)
            self.assertTrue(line.isprintable(), ascii(line))
        for record in logs.json.getvalue().split("\x1e")[1:]:
            self.assertLess(len(record), 2000)
            json.loads(record)

    def test_untrusted_connections_dropped_at_first_frame(self) -> None:
        """
        Untrusted connections (of a network, so misbehaviour is discouraged) that send such
        frames are each dropped at their first frame: a 60 KB frame at its length prefix
        (over the 4 KiB pre-trust cap), a 4 KB unknown type as misbehaviour.  No handler
        runs, each address is discouraged, and each connection costs one short warning.
        """
        clock = Clock()
        network = PeerNetwork(clock, identifier="node", transport="tcp",
                              trust_protocol=always_trust)
        logs = LogBytes(self)  # after the network's one warning about plaintext
        recorder = RecordingHandler()
        for kind in PacketType:
            network.handlers.set_handler(kind, recorder)
        hosts = [f"10.0.{index // 200}.{index % 200 + 1}" for index in range(40)]
        transports = []
        for index, host in enumerate(hosts):
            channel = network.factory.buildProtocol(IPv4Address("TCP", host, 40000))
            transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
            channel.makeConnection(transport)
            name_size = 60_000 if index % 2 else 4000
            channel.dataReceived(unknown_type_frame(name_size) * 20)
            transports.append(transport)
            self.assertEqual(channel.counters["unknown"] + channel.counters["framing_errors"], 1)
        self.assertTrue(all(transport.disconnecting for transport in transports))
        self.assertEqual(recorder.calls, [])
        self.assertEqual(network.active_peer_channels, [])
        self.assertEqual(network.counters["misbehaving_peers"], len(hosts))
        self.assertEqual(network.counters["unknown"], len(hosts) // 2)
        self.assertEqual(network.counters["framing_errors"], len(hosts) // 2)
        self.assertTrue(all(host in network.discouraged_ips for host in hosts))
        warnings = logs.formatted(LogLevel.warn)
        self.assertEqual(len(warnings), len(hosts))
        for warning in warnings:
            self.assertTrue(warning.startswith("dropping misbehaving peer 10.0."), warning)
            self.assertLess(len(warning), 250, warning)
        text_bytes, json_bytes = logs.sizes()
        self.assertLess(text_bytes, 400 * len(hosts))
        self.assertLess(json_bytes, 2000 * len(hosts))
