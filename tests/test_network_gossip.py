"""
Tests for L{p2pnet_tx.network.gossip}: peer lists received (bounded, rate-limited, dialled) and
sent (built from the shared trusted peers, cached until trust changes it), with fakes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import SendBufferFull
from p2pnet_tx.network.gossip import Gossip
from p2pnet_tx.network.limits import NetworkLimits
from p2pnet_tx.network.table import PeerTable
from p2pnet_tx.packets import CollectionSharePacket, IdentifierPacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.wire_mode import DOTNET, P2PNET, WireMode

from .network_fakes import Dummy, FakeChannel


class FakeDialer:
    """Refuses the peers in C{refused}; records the peers it is asked to dial."""

    def __init__(self) -> None:
        self.refused: set[GenericPeer] = set()
        self.dialled: list[GenericPeer] = []

    def never_dials(self, peer: GenericPeer) -> bool:
        return peer in self.refused

    def maybe_dial(self, peer: GenericPeer) -> bool:
        self.dialled.append(peer)
        return True


def peers(count: int, first: int = 1) -> list[GenericPeer]:
    return [GenericPeer("10.0.0.1", first + n, f"p{first + n}") for n in range(count)]


class GossipTestCase(SynchronousTestCase):
    limits = NetworkLimits(max_peer_list=3, gossip_burst=5, gossip_rate=0.5)
    wire_mode: WireMode = P2PNET

    def setUp(self) -> None:
        self.clock = Clock()
        self.table = PeerTable(max_known_peers=100)
        self.dialer = FakeDialer()
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.counters: Counter[str] = Counter()
        self.gossip = Gossip(
            self.clock, limits=self.limits, table=self.table,
            dialer=self.dialer,  # type: ignore[arg-type]
            admission=Dummy(self.events, "admission"),  # type: ignore[arg-type]
            counters=self.counters, identifier="me", wire_mode=self.wire_mode,
        )

    def trusted(self, peer: GenericPeer, listening: bool = True) -> FakeChannel:
        """A channel whose peer is trusted, reported to gossip as the network does."""
        channel = FakeChannel(peer, host=peer.address, trusted=True)
        self.table.connect(channel, None)
        self.table.activate(channel)
        if not listening:
            self.table.mark_not_listening(channel)
        self.gossip.trusted(channel)
        return channel


class PeerListReceivedTests(GossipTestCase):
    """Received lists feed the known peers at the gossip rate and are dialled."""

    def test_remembers_and_dials(self) -> None:
        """Each usable peer is remembered and offered to the dialer; refused ones are not."""
        refused = GenericPeer("10.0.0.66", 1)
        self.dialer.refused.add(refused)
        self.gossip.peer_list_received(FakeChannel(), CollectionSharePacket(100, [
            refused, *peers(2)]))
        self.assertEqual(list(self.table.known_peers.values()), peers(2))
        self.assertEqual(self.dialer.dialled, peers(2))

    def test_gossip_rate(self) -> None:
        """New addresses cost a token; known ones do not; the rest are dropped and counted."""
        for first in (1, 4):
            self.gossip.peer_list_received(CollectionSharePacket(100, peers(3, first)))
        self.assertEqual(len(self.table.known_peers), 5)
        self.assertEqual(self.counters["gossip_dropped"], 1)
        self.gossip.peer_list_received(CollectionSharePacket(100, peers(1)))
        self.assertEqual(self.counters["gossip_dropped"], 1)
        self.clock.advance(2)
        self.gossip.peer_list_received(CollectionSharePacket(100, peers(1, 6)))
        self.assertEqual(len(self.table.known_peers), 6)

    def test_oversized_from_channel_is_misbehaviour(self) -> None:
        """Over max_peer_list from a channel: aborted, discouraged, nothing remembered."""
        sender = FakeChannel(GenericPeer("10.9.9.9", 1))
        self.gossip.peer_list_received(sender, CollectionSharePacket(100, peers(4)))
        self.assertEqual(sender.events, [("abort", "peer list of 4 entries")])
        self.assertEqual(self.events, [("admission.misbehaved", ("10.9.9.9",))])
        self.assertEqual(self.counters["oversized_peer_lists"], 1)
        self.assertEqual(self.table.known_peers, {})

    def test_oversized_from_application_is_truncated(self) -> None:
        """An application's list is cut to max_peer_list."""
        self.gossip.peer_list_received(CollectionSharePacket(100, peers(4)))
        self.assertEqual(list(self.table.known_peers.values()), peers(3))
        self.assertEqual(self.events, [])

    def test_not_a_peer_list(self) -> None:
        """Anything but a CollectionSharePacket is a TypeError."""
        self.assertRaises(TypeError, self.gossip.peer_list_received, peers(1))
        self.assertRaises(TypeError, self.gossip.peer_list_received, FakeChannel(), "x")

    def test_identity_named(self) -> None:
        """An Identity naming an IP and port is remembered, never dialled; others ignored."""
        channel = FakeChannel()
        self.gossip.identity_named(channel, IdentifierPacket("hi", 9000, "10.0.0.5"))
        self.gossip.identity_named(channel, IdentifierPacket("hi", 9000, "not-an-ip"))
        self.gossip.identity_named(channel, IdentifierPacket("hi", 0, "10.0.0.6"))
        self.assertEqual(list(self.table.known_peers), [("10.0.0.5", 9000)])
        self.assertEqual(self.dialer.dialled, [])


class PeerListSentTests(GossipTestCase):
    """The list for a newly trusted peer: shared trusted peers, oldest first, cached."""

    def test_contents(self) -> None:
        """Trusted listening peers, oldest first, at most max_peer_list; not the recipient's."""
        channels = [self.trusted(p) for p in peers(4)]
        self.trusted(GenericPeer("10.0.0.2", 40000, "nat"), listening=False)
        packet = self.gossip.peer_list_for(FakeChannel(GenericPeer("10.0.0.3", 1)))
        self.assertEqual(packet.peers, peers(3))
        self.assertEqual(packet.source_origin_identifier, "me")
        again = self.gossip.peer_list_for(channels[0])
        self.assertEqual(again.peers, peers(2, 2))

    def test_cached_until_trust_changes(self) -> None:
        """The same packet is handed out until a peer is trusted or a listed channel closes."""
        first = self.trusted(peers(1)[0])
        newcomer = FakeChannel(GenericPeer("10.0.0.3", 1))
        packet = self.gossip.peer_list_for(newcomer)
        self.assertIs(self.gossip.peer_list_for(newcomer), packet)
        second = self.trusted(peers(1, 2)[0])
        rebuilt = self.gossip.peer_list_for(newcomer)
        self.assertEqual(rebuilt.peers, peers(2))
        self.assertIs(self.gossip.peer_list_for(newcomer), rebuilt)
        self.table.remove(first)
        self.gossip.gone(first)
        self.assertEqual(self.gossip.peer_list_for(newcomer).peers, [second.peer])

    def test_unlisted_changes_keep_cache(self) -> None:
        """A peer past the list's size, or a channel not in it, leaves the cached list alone."""
        for p in peers(3):
            self.trusted(p)
        packet = self.gossip.peer_list_for(FakeChannel())
        late = self.trusted(peers(1, 9)[0])
        self.assertIs(self.gossip.peer_list_for(FakeChannel()), packet)
        self.gossip.gone(late)
        self.gossip.gone(FakeChannel())
        self.assertIs(self.gossip.peer_list_for(FakeChannel()), packet)

    def test_untrusted_peer_dropped(self) -> None:
        """A listed channel untrusted since (which the network is not told of) is left out."""
        first, second = (self.trusted(p) for p in peers(2))
        self.gossip.peer_list_for(FakeChannel())
        first.is_trusted = False
        self.assertEqual(self.gossip.peer_list_for(FakeChannel()).peers, [second.peer])

    def test_empty_list_sent_in_p2pnet_mode(self) -> None:
        """With no peer to share, the p2pnet mode still sends an (empty) list."""
        self.assertEqual(self.gossip.peer_list_for(FakeChannel()).peers, [])

    def test_send(self) -> None:
        """send() hands the packet to the channel; a full send buffer skips it and counts."""
        packet = self.gossip.peer_list_for(FakeChannel())
        reader, full = FakeChannel(), FakeChannel()
        full.send_error = SendBufferFull(70_000_000, 64 * 2**20)
        self.assertTrue(self.gossip.send(reader, packet))
        self.assertFalse(self.gossip.send(full, packet))
        self.assertEqual(reader.sent, [packet])
        self.assertEqual(self.counters["peer_lists_skipped"], 1)
        self.assertFalse(self.gossip.send(reader, None))


class DotNetPeerListTests(GossipTestCase):
    """.NET nodes get no empty peer list."""

    wire_mode = DOTNET

    def test_no_empty_list(self) -> None:
        """An empty list is not sent in dotnet mode; a non-empty one is."""
        self.assertIsNone(self.gossip.peer_list_for(FakeChannel()))
        self.trusted(peers(1)[0])
        self.assertEqual(self.gossip.peer_list_for(FakeChannel()).peers, peers(1))
