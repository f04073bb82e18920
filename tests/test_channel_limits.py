"""
Tests for L{p2pnet_tx.channel.ChannelLimits}'s pre-trust frame cap (4 KiB, as RELIABILITY.md
asks): everything a node of ours sends before trust fits it, in both wire formats, with the
longest identifiers and addresses there are.
"""

from __future__ import annotations

from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.identity import MAX_DISPLAY_NAME
from p2pnet_tx.packets import IdentifierPacket, PacketType
from p2pnet_tx.peer import MAX_IDENTIFIER_BYTES
from p2pnet_tx.testing import RecordingHandler
from p2pnet_tx.trust import ping_trust
from p2pnet_tx.wire import get_codec
from tests.test_network import Nodes

CAP = 4096

LONGEST_IDENTIFIER = "\U0001d54f" * (MAX_IDENTIFIER_BYTES // 4)
"""256 UTF-8 bytes of characters outside the BMP: 768 bytes in the dotnet format's escapes."""

LONGEST_DISPLAY_NAME = "\U0001d54f" * MAX_DISPLAY_NAME
"""The longest display name a node announces in its Identity, of four-byte characters."""

LONGEST_HOST = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"

WORST_REASON = "\U0001d54f" * 5000
"""A close reason quoting a peer's text, of the characters that take the most bytes."""


def frame_sizes(codec: str, data: bytes) -> list[int]:
    """
    The sizes of the frames in C{data}, each checked against the pre-trust cap by the same
    decoder a peer reads with (it raises L{FrameTooLarge} for a frame over it).
    """
    decoder = get_codec(codec).decoder(CAP)
    packets = decoder.feed(data)
    for packet in packets:
        assert not isinstance(packet, Exception), packet
    assert decoder.buffered == 0
    return [len(get_codec(codec).encode(packet)) for packet in packets]


class PreTrustFrameCapTests(SynchronousTestCase):
    """The cap is 4 KiB, and what our nodes say before trust fits in it."""

    def test_default(self) -> None:
        """max_untrusted_frame_size is 4 KiB; trusted peers keep 1 MiB."""
        self.assertEqual(ChannelLimits().max_untrusted_frame_size, CAP)
        self.assertEqual(ChannelLimits().max_frame_size, 1024 * 1024)

    def channel(self, codec: str, trust: object) -> tuple[PeerChannel, StringTransport, Clock]:
        clock = Clock()
        channel = PeerChannel(
            codec, trust_protocol=trust, clock=clock,  # type: ignore[arg-type]
            limits=ChannelLimits(handshake_timeout=100.0),
            local_identity=(IdentifierPacket(LONGEST_DISPLAY_NAME, 65535, "",
                                             source_origin_identifier=LONGEST_IDENTIFIER)
                            if codec == "p2pnet" else None),
            local_identifier=LONGEST_IDENTIFIER,
        )
        transport = StringTransport(hostAddress=IPv6Address("TCP", LONGEST_HOST, 65535),
                                    peerAddress=IPv6Address("TCP", "::1", 40001))
        channel.makeConnection(transport)
        return channel, transport, clock

    def test_what_precedes_key_trust_fits(self) -> None:
        """
        Key trust says nothing of its own before trust (TLS proves the key): the Identity with
        the longest display name, a keep-alive and the Disconnect of a peer dropped with the
        longest reason all fit in 4 KiB, with the longest identifier and address.
        """
        for codec in ("p2pnet", "dotnet"):
            channel, transport, clock = self.channel(codec, lambda channel: Deferred())
            clock.advance(ChannelLimits().keepalive_interval or 0)
            channel.abort(f"misbehaving: {WORST_REASON}")
            sizes = frame_sizes(codec, transport.value())
            self.assertEqual(len(sizes), 3 if codec == "p2pnet" else 2, (codec, sizes))
            self.assertLessEqual(max(sizes), CAP, (codec, sizes))

    def test_ping_trust_fits(self) -> None:
        """The dotnet format's "Ping from <address>" fits, with the longest address."""
        channel, transport, clock = self.channel("dotnet", ping_trust)
        clock.pump([3.0] * 3)
        sizes = frame_sizes("dotnet", transport.value())
        self.assertGreaterEqual(len(sizes), 3)
        self.assertLessEqual(max(sizes), CAP)
        self.assertIn(b"Ping from " + LONGEST_HOST.encode(), transport.value())
        channel.abort("bye")

    def test_nodes_with_longest_identifiers_trust_each_other(self) -> None:
        """
        Two nodes with the longest identifiers trust each other under the default cap, and a
        peer list of 7 KB reaches a newcomer: it follows, in stream order, the Identity that
        makes the newcomer trust the node, so it is read under the trusted limit.
        """
        nodes = Nodes()
        hub = nodes.node("h" * 256, 8000)
        for index in range(24):
            leaf = nodes.node(f"{index:02d}" + "\u00e9" * 127, 8100 + index)
            leaf.handlers.set_handler(PacketType.PEER_GROUP, None)  # no dials among leaves
            nodes.dial(leaf, hub, source=f"127.0.1.{index + 1}")
        self.assertEqual(len(hub.trusted_peer_channels), 24)
        newcomer = nodes.node(LONGEST_IDENTIFIER, 8001)
        lists = RecordingHandler()
        newcomer.handlers.set_handler(PacketType.PEER_GROUP, lists)
        d, _ = nodes.dial(newcomer, hub, source_port=42000)
        channel = self.successResultOf(d)
        self.assertTrue(channel.is_trusted)
        self.assertEqual(channel.counters["framing_errors"], 0)
        [(_, peer_list)] = lists.calls
        self.assertEqual(len(peer_list.peers), 24)
        self.assertGreater(len(get_codec("p2pnet").encode(peer_list)), CAP + 3000)
