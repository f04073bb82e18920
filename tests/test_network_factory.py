"""
Tests for L{p2pnet_tx.network.factory}: how channels are made, refused, and configured.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits, ChannelOwner, PeerChannel
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.network.factory import (
    ChannelMaker,
    OutboundChannelFactory,
    PeerChannelFactory,
    resolve_trust_protocol,
)
from p2pnet_tx.network.local import LocalNode
from p2pnet_tx.network.table import PeerTable
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.trust import KeyTrust, always_trust, ping_trust
from p2pnet_tx.wire_mode import DOTNET, P2PNET, WireMode


class FakeAdmission:
    """Refuses the hosts in C{refused}; records every host asked about."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)
        self.asked: list[str] = []

    def refusal(self, host: str) -> str | None:
        self.asked.append(host)
        return "blocked" if host in self.refused else None


def maker(wire_mode: WireMode = P2PNET) -> tuple[ChannelMaker, PeerTable]:
    table = PeerTable(max_known_peers=10)
    return ChannelMaker(
        clock=Clock(), wire_mode=wire_mode, handlers=PacketHandleProtocol(),
        trust_protocol=always_trust, policy=IncomingPeerTrustPolicy(), limits=ChannelLimits(),
        owner=ChannelOwner(), local=LocalNode(Clock(), "me", wire_mode), table=table,
    ), table


class ChannelMakerTests(SynchronousTestCase):
    """Channels are built as the wire mode says, outbound ones marked in the table."""

    def test_p2pnet(self) -> None:
        """p2pnet channels open with our Identity and await the peer's."""
        channels, table = maker()
        channel = channels.make(outbound=True, peer=GenericPeer("10.0.0.1", 1))
        self.assertIsInstance(channel, PeerChannel)
        self.assertEqual(channel.codec.name, "p2pnet")
        self.assertEqual(channel.local_identity.source_origin_identifier, "me")
        self.assertTrue(table.is_outbound(channel))

    def test_dotnet(self) -> None:
        """dotnet channels send no Identity; inbound ones are not marked outbound."""
        channels, table = maker(DOTNET)
        channel = channels.make(outbound=False)
        self.assertEqual(channel.codec.name, "dotnet")
        self.assertIsNone(channel.local_identity)
        self.assertFalse(table.is_outbound(channel))


class FactoryTests(SynchronousTestCase):
    """The server factory refuses before a byte is read; both set the channel's factory."""

    def test_refused(self) -> None:
        """A refused address gets no protocol and is counted."""
        channels, _ = maker()
        counters: Counter[str] = Counter()
        admission = FakeAdmission("10.0.0.7")
        factory = PeerChannelFactory(admission, channels, counters)  # type: ignore[arg-type]
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 1)))
        channel = factory.buildProtocol(IPv4Address("TCP", "10.0.0.8", 1))
        self.assertIs(channel.factory, factory)
        self.assertEqual((admission.asked, counters["refused_connections"]),
                         (["10.0.0.7", "10.0.0.8"], 1))

    def test_outbound(self) -> None:
        """The outbound factory builds a channel expecting its peer, and says so at once."""
        channels, table = maker()
        peer = GenericPeer("10.0.0.1", 1)
        built: list[PeerChannel] = []
        factory = OutboundChannelFactory(channels, peer, built.append)
        channel = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        self.assertEqual((channel.peer, channel.factory, built), (peer, factory, [channel]))
        self.assertTrue(table.is_outbound(channel))


class ResolveTrustProtocolTests(SynchronousTestCase):
    """Names map to protocols; the policy's own protocol wins; unknown names are errors."""

    def test_resolve(self) -> None:
        """key, ping, none, a callable, the policy's, and a ValueError for the rest."""
        policy = IncomingPeerTrustPolicy()
        self.assertIs(resolve_trust_protocol("ping", policy, "tls", P2PNET), ping_trust)
        self.assertIsNone(resolve_trust_protocol("none", policy, "tls", P2PNET))
        self.assertIs(resolve_trust_protocol(always_trust, policy, "tcp", P2PNET), always_trust)
        self.assertIsInstance(resolve_trust_protocol("key", policy, "tls", P2PNET), KeyTrust)
        self.assertIsInstance(resolve_trust_protocol(None, policy, "tls", P2PNET), KeyTrust)
        self.assertIs(resolve_trust_protocol(None, policy, "tcp", DOTNET), ping_trust)
        mine: Any = lambda channel: None  # noqa: E731
        self.assertIs(resolve_trust_protocol(
            "ping", IncomingPeerTrustPolicy(default_trust_protocol=mine), "tls", P2PNET), mine)
        self.assertRaises(ValueError, resolve_trust_protocol, "magic", policy, "tls", P2PNET)
        self.assertRaises(ValueError, resolve_trust_protocol, "key", policy, "tcp", P2PNET)
        self.assertRaises(ValueError, resolve_trust_protocol, None, policy, "tcp", P2PNET)
