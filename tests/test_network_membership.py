"""
Tests for L{p2pnet_tx.network.membership}: identity decisions, duplicates, placement and the
connect() waiters, with fake channels and a real peer table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx._observer import Observers
from p2pnet_tx.errors import ChannelClosed, DuplicatePeer, PeerBlocked, PeerRefused, SelfConnection
from p2pnet_tx.inbound import InboundConnectingPeersQueue
from p2pnet_tx.network.membership import Membership
from p2pnet_tx.network.table import PeerTable
from p2pnet_tx.packets import IdentifierPacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerPlacement, IncomingPeerTrustPolicy
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire_mode import DOTNET, P2PNET, WireMode

from .network_fakes import FakeChannel


def identity(identifier: str, port: int = 9000) -> IdentifierPacket:
    return IdentifierPacket("connect", port, "", source_origin_identifier=identifier)


class MembershipTestCase(SynchronousTestCase):
    wire_mode: WireMode = P2PNET
    placement = IncomingPeerPlacement.EVENT_BASED
    trust_protocol: Any = staticmethod(always_trust)

    def setUp(self) -> None:
        self.table = PeerTable(max_known_peers=100)
        self.policy = IncomingPeerTrustPolicy(incoming_peer_placement=self.placement)
        self.inbound = InboundConnectingPeersQueue()
        self.counters: Counter[str] = Counter()
        self.events: list[tuple[str, Any]] = []
        self.incoming, self.added, self.removed = (
            Observers("incoming"), Observers("added"), Observers("removed"))
        self.incoming.add(lambda peer, channel: self.events.append(("incoming", peer)))
        self.added.add(lambda channel: self.events.append(("added", channel)))
        self.removed.add(lambda channel: self.events.append(("removed", channel)))
        self.membership = Membership(
            table=self.table, policy=self.policy, identifier="mmm", wire_mode=self.wire_mode,
            trust_protocol=self.trust_protocol, inbound=self.inbound, counters=self.counters,
            incoming_peer_connection_attempt=self.incoming, peer_added=self.added,
            peer_removed=self.removed,
        )

    def channel(self, host: str = "10.0.0.1", outbound: bool = False,
                peer: GenericPeer | None = None) -> FakeChannel:
        """A channel whose connection is made, as the network would report it."""
        channel = FakeChannel(peer or GenericPeer(host, 40000), host=host)
        channel.on_close = self.lost
        if outbound:
            self.table.mark_outbound(channel)
        self.membership.connected(channel)
        return channel

    def lost(self, channel: FakeChannel) -> None:
        """Play a transport whose connection goes at once, and the network's channel_closed."""
        channel.connection_lost()
        if self.table.remove(channel):
            self.removed.notify(channel)
        self.membership.closed(channel, channel.close_reason or "closed")


class IdentityTests(MembershipTestCase):
    """A peer that says who it is is accepted, refused, or found to be a duplicate."""

    def test_accepted(self) -> None:
        """Accepted: known by address and listening port, indexed, announced, still pending."""
        channel = self.channel("10.0.0.7")
        self.assertTrue(self.membership.identity_received(channel, identity("alice")))
        peer = GenericPeer("10.0.0.7", 9000, "alice")
        self.assertEqual(channel.peer, peer)
        self.assertIs(self.table.channel_for(peer), channel)
        self.assertEqual(self.events, [("incoming", peer), ("added", channel)])
        self.assertEqual(self.table.pending, [channel])  # the handshake follows
        self.assertEqual(self.table.known_peers, {})  # inbound: kept only once trusted

    def test_refusals(self) -> None:
        """Blocked, self and malformed identities are refused; the dial learns why."""
        self.policy.blocked_identifiers.add("bad")
        cases = [("bad", 9000, PeerBlocked), ("mmm", 9000, SelfConnection),
                 ("x" * 300, 9000, PeerRefused)]
        for identifier, port, error in cases:
            channel = self.channel(outbound=True)
            waiting = self.membership.when_accepted(channel)
            self.assertFalse(self.membership.identity_received(channel, identity(identifier, port)))
            channel.close("refused")
            self.failureResultOf(waiting, error)
        self.assertEqual(self.counters["identities_refused"], 3)
        self.assertEqual(self.table.active, [])

    def test_no_listening_port(self) -> None:
        """A peer without a listening port is known by its connection's, and never kept."""
        channel = self.channel("10.0.0.7")
        self.membership.identity_received(channel, identity("alice", 0))
        self.assertEqual(channel.peer.port, 40000)
        self.assertFalse(self.table.is_listening(channel))
        channel.trust()
        self.membership.trusted(channel)
        self.assertEqual(self.table.known_peers, {})

    def test_duplicate_refused_dial_gets_existing(self) -> None:
        """A duplicate of a trusted peer is refused; its dial gets the existing channel."""
        existing = self.channel("10.0.0.7")
        self.membership.identity_received(existing, identity("alice"))
        existing.trust()
        newcomer = self.channel("10.0.0.7", outbound=True, peer=GenericPeer("10.0.0.7", 9000))
        waiting = self.membership.when_accepted(newcomer)
        self.assertFalse(self.membership.identity_received(newcomer, identity("alice")))
        self.assertIs(self.successResultOf(waiting), existing)
        self.assertEqual(self.counters["duplicates_refused"], 1)

    def test_tie_break_replaces(self) -> None:
        """Simultaneous dials: the connection opened by the smaller identifier survives."""
        theirs = self.channel("10.0.0.7")  # opened by "alice" < "mmm": it wins
        ours = self.channel("10.0.0.7", outbound=True, peer=GenericPeer("10.0.0.7", 9000))
        dial = self.membership.when_accepted(ours)
        self.assertTrue(self.membership.identity_received(ours, identity("alice")))
        self.assertIs(self.successResultOf(dial), ours)
        self.assertTrue(self.membership.identity_received(theirs, identity("alice")))
        self.assertEqual(ours.events, [("close", "duplicate")])
        self.assertEqual(self.table.active, [theirs])
        self.assertEqual([e for e in self.events if e[0] == "removed"], [("removed", ours)])


class PlacementTests(MembershipTestCase):
    """QUEUE_BASED puts inbound peers on the queue and announces none."""

    placement = IncomingPeerPlacement.QUEUE_BASED

    def test_queue(self) -> None:
        """The peer is queued; only peer_added observers hear."""
        channel = self.channel()
        self.membership.identity_received(channel, identity("alice"))
        self.assertEqual(len(self.inbound), 1)
        self.assertEqual(self.events, [("added", channel)])


class DotNetTests(MembershipTestCase):
    """Without Identity packets a peer is accepted on connection."""

    wire_mode = DOTNET
    trust_protocol = None

    def test_accepted_on_connection(self) -> None:
        """Inbound: known by its connection, never kept; outbound: the dial gets it."""
        inbound = self.channel("10.0.0.7")
        self.assertEqual(self.table.active, [inbound])
        self.assertFalse(self.table.is_listening(inbound))
        self.assertEqual(self.table.pending, [])  # no handshake follows
        outbound = self.channel("10.0.0.8", outbound=True, peer=GenericPeer("10.0.0.8", 8051))
        self.assertIs(self.successResultOf(self.membership.when_accepted(outbound)), outbound)
        self.assertIn(("10.0.0.8", 8051), self.table.known_peers)


class ReentrancyTests(MembershipTestCase):
    """Observers that close the channel they are told of leave consistent tables."""

    def test_peer_added_observer_closes(self) -> None:
        """Closed by a peer_added observer: the dial fails, nothing remains in the table."""
        self.added.add(lambda channel: channel.close("changed my mind"))
        channel = self.channel(outbound=True, peer=GenericPeer("10.0.0.7", 9000))
        dial = self.membership.when_accepted(channel)
        self.assertTrue(self.membership.identity_received(channel, identity("alice")))
        self.failureResultOf(dial, ChannelClosed)
        self.assertFalse(self.table.holds(channel))

    def test_incoming_observer_closes(self) -> None:
        """Closed while announced as incoming: peer_added is not announced after its removal."""
        self.incoming.add(lambda peer, channel: channel.close("no"))
        channel = self.channel()
        self.membership.identity_received(channel, identity("alice"))
        kinds = [kind for kind, _ in self.events]
        self.assertEqual(kinds, ["incoming", "removed"])
        self.assertFalse(self.table.holds(channel))

    def test_closed_channel_dial(self) -> None:
        """Asked about a channel already closed (and forgotten), when_accepted fails at once."""
        channel = self.channel(outbound=True)
        channel.close("gone")
        self.failureResultOf(self.membership.when_accepted(channel), ChannelClosed)


class DuplicateRefusalKeptTests(MembershipTestCase):
    """The refusal of a duplicate is what a later dial waiter learns."""

    def test_refusal_on_close(self) -> None:
        """Refused as blocked then closed: PeerBlocked, not a bare ChannelClosed."""
        self.policy.blocked_identifiers.add("bad")
        channel = self.channel(outbound=True)
        # A real channel reports its close once the connection is lost, not within close():
        # the test reports it below.
        channel.on_close = lambda channel: None
        self.membership.identity_received(channel, identity("bad"))
        self.assertIn(("close", "blocked"), channel.events)  # the goodbye says why
        dial = self.membership.when_accepted(channel)
        self.membership.closed(channel, "refused")
        self.failureResultOf(dial, PeerBlocked)
        self.assertNotIsInstance(DuplicatePeer("x"), PeerBlocked)
