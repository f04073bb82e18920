"""
The .NET peer model's own tests: each checks one behaviour of the C# source it cites, on a
clock, so that the model stays as unkind as .NET.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.packets import DisconnectPacket, PureMessagePacket
from p2pnet_tx.wire import get_codec
from tests.interop.dotnet_peer import HELLO, DotnetNode, HandlerDied

CODEC = get_codec("dotnet")


def run(clock: Clock, seconds: float, step: float = 0.025) -> None:
    """Advance in small steps, as time passes (Clock.advance runs what a call schedules only
    at the next advance)."""
    clock.pump([step] * round(seconds / step))


def ping(n: int = 0) -> bytes:
    return CODEC.encode(PureMessagePacket(f"Ping from 127.0.0.2 #{n}"))


class ModelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.node = DotnetNode(self.clock)
        self.channel = self.node.buildProtocol(IPv4Address("TCP", "127.0.0.2", 5000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 5000))
        self.channel.makeConnection(self.transport)

    def written(self) -> list:
        return CODEC.decoder(1 << 30).feed(self.transport.value())

    def feed(self, data: bytes, then: float = 0.3) -> None:
        self.channel.dataReceived(data)
        run(self.clock, then)

    def test_pings_every_interval_until_trusted_and_says_hello(self) -> None:
        """DefaultPingHandler pings at once and every 3 s; NewPeerAdded says hello."""
        run(self.clock, 0.1)
        self.assertEqual([p.message for p in self.written()], ["Ping from 127.0.0.1", HELLO])
        run(self.clock, 6.0)
        self.assertEqual([p.message for p in self.written()].count("Ping from 127.0.0.1"), 3)

    def test_trust_at_third_read_and_answers_only_from_seventh(self) -> None:
        """Trusted at the 3rd read with "Ping from"; pings answered only from the 7th read."""
        for n in range(1, 7):
            self.feed(ping(n))
            self.assertEqual(self.channel.trusted, n >= 3)
        run(self.clock, 10)  # trusted: its ping loop has stopped
        before = len(self.written())
        self.feed(ping(7))
        run(self.clock, 0.2)
        self.assertEqual(len(self.written()), before + 1)

    def test_two_frames_in_one_read_are_lost_and_kill_the_handler(self) -> None:
        """ReadIncoming hands the whole buffer, tags stripped, to one packet: it dies."""
        self.feed(ping(1) + CODEC.encode(PureMessagePacket("second")))
        self.assertEqual(self.channel.messages, [])
        self.assertIsNotNone(self.channel.handler_error)
        self.assertEqual(self.channel.successful_pings, 1)  # one read, one count
        self.feed(CODEC.encode(PureMessagePacket("later")))
        self.assertEqual(self.channel.messages, [])  # nothing is ever handled again

    def test_frames_in_separate_reads_are_handled(self) -> None:
        self.feed(CODEC.encode(PureMessagePacket("one")))
        self.feed(CODEC.encode(PureMessagePacket("two <>&'+\"` é")))
        self.assertEqual(self.channel.messages, ["one", "two <>&'+\"` é"])

    def test_reads_4096_bytes_every_250_ms(self) -> None:
        """A frame over 4096 bytes takes several reads, 250 ms apart."""
        self.channel.dataReceived(CODEC.encode(PureMessagePacket("x" * 9000)))
        self.assertEqual(len(self.channel.reads), 1)
        run(self.clock, 0.3)
        self.assertEqual(len(self.channel.reads), 2)
        run(self.clock, 0.35)
        self.assertEqual(self.channel.messages, ["x" * 9000])

    def test_disconnect_kills_the_handler(self) -> None:
        """There is no serializer context for DisconnectPacket: the handler task faults."""
        self.feed(CODEC.encode(DisconnectPacket("127.0.0.2", 1)))
        self.assertIsInstance(self.channel.handler_error, HandlerDied)
        self.feed(CODEC.encode(PureMessagePacket("after")))
        self.assertEqual(self.channel.messages, [])

    def test_known_ip_refused_after_close(self) -> None:
        """KnownPeers is never pruned: the IP is refused after the close, on any port."""
        self.channel.connectionLost()
        self.assertIsNone(self.node.buildProtocol(IPv4Address("TCP", "127.0.0.2", 6000)))
        self.assertIsNone(self.node.dialer("127.0.0.2"))
        self.assertEqual(self.node.refused, 2)

    def test_enhanced_packets_gated_until_trusted(self) -> None:
        """AllowEnhancedPacketExchange is off: a file before trust is dropped."""
        from p2pnet_tx.packets import DataPayloadFormat, DataTransmissionPacket

        frame = CODEC.encode(DataTransmissionPacket(b"abc", DataPayloadFormat.FILE))
        self.feed(frame)
        self.assertEqual(self.channel.data, [])
        for n in range(3):
            self.feed(ping(n))
        self.feed(frame)
        self.assertEqual([p.payload for p in self.channel.data], [b"abc"])

    def test_sender_writes_one_frame_per_100_ms(self) -> None:
        self.node.send_message("a")
        self.node.send_message("b")
        self.assertEqual(len(self.written()), 1)  # the first ping
        run(self.clock, 0.1)
        self.assertEqual(len(self.written()), 2)
        run(self.clock, 0.3)
        self.assertEqual([p.message for p in self.written()][2:], ["a", "b"])
