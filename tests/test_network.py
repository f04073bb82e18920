"""
Tests for L{p2pnet_tx.network}: the peer tables, the factory's limits, identity, duplicates,
peer lists and closing, all in memory on a L{MemoryReactorClock}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from p2pnet_tx.channel import KEEPALIVE_MESSAGE, PeerChannel
from p2pnet_tx.errors import (
    DuplicatePeer,
    NetworkClosed,
    PeerBlocked,
    SelfConnection,
    TooManyPeers,
)
from p2pnet_tx.interfaces import IPeerChannelOwner
from p2pnet_tx.network import NetworkLimits, PeerNetwork, TokenBucket, peers_from_strings
from p2pnet_tx.packets import (
    CollectionSharePacket,
    IdentifierPacket,
    PacketType,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerPlacement, IncomingPeerTrustPolicy
from p2pnet_tx.testing import RecordingHandler, complete_tcp_connection
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec


def address(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class Nodes:
    """Networks sharing one memory reactor, each listening on its own port."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.ports: dict[str, int] = {}

    def node(self, identifier: str, port: int, **kwargs: object) -> PeerNetwork:
        # Plaintext, for identifiers chosen by the tests (tests/test_network_security.py has
        # the same over TLS).
        options: dict[str, object] = {"transport": "tcp", "trust_protocol": always_trust}
        network = PeerNetwork(self.reactor, identifier=identifier,
                              **{**options, **kwargs})  # type: ignore[arg-type]
        network.listen(f"tcp:{port}")
        return network

    def dial(self, client: PeerNetwork, server: PeerNetwork, host: str = "127.0.0.1",
             source: str = "127.0.0.1", source_port: int = 40000):
        """Connect C{client} to C{server}; return (connect Deferred, pump or None)."""
        d = client.connect(GenericPeer(host, server.listening_port))
        pump = complete_tcp_connection(self.reactor, address(source, source_port))
        if pump is not None:
            pump.flush()
        return d, pump


class PeerNetworkIdentityTests(SynchronousTestCase):
    """Peers say who they are first; the network accepts, refuses or deduplicates them."""

    def setUp(self) -> None:
        self.nodes = Nodes()
        self.server = self.nodes.node("server", 8051)
        self.client = self.nodes.node("client", 8052)

    def test_provides_owner_interface(self) -> None:
        """A network is the owner of its channels."""
        self.assertTrue(verifyObject(IPeerChannelOwner, self.server))

    def test_connect_identifies_both_sides(self) -> None:
        """After a connection both sides know each other's identifier and listening port."""
        added: list[PeerChannel] = []
        self.server.peer_added.add(added.append)
        d, _ = self.nodes.dial(self.client, self.server)
        channel = self.successResultOf(d)
        self.assertEqual(channel.peer, GenericPeer("127.0.0.1", 8051, "server"))
        [inbound] = self.server.active_peer_channels
        self.assertEqual(inbound.peer, GenericPeer("127.0.0.1", 8052, "client"))
        self.assertEqual(added, [inbound])
        self.assertIn(("127.0.0.1", 8052), self.server.known_peers)
        self.assertTrue(self.server.is_outbound(inbound) is False)
        self.assertTrue(self.client.is_outbound(channel))

    def test_trusted_peer_receives_peer_list(self) -> None:
        """Once it trusts a peer, a node sends it the peers it already trusts."""
        third = self.nodes.node("third", 8053)
        self.nodes.dial(third, self.server, source_port=40001)
        lists = RecordingHandler()
        self.client.handlers.set_handler(PacketType.PEER_GROUP, lists)
        self.nodes.dial(self.client, self.server, source_port=40002)
        [(_, packet)] = lists.calls
        self.assertEqual(packet.peers, [GenericPeer("127.0.0.1", 8053, "third")])

    def test_peer_list_makes_nodes_dial_each_other(self) -> None:
        """A node dials the peers a trusted peer shares with it."""
        third = self.nodes.node("third", 8053)
        self.nodes.dial(third, self.server, source_port=40001)
        self.nodes.dial(self.client, self.server, source_port=40002)
        self.assertEqual([c[1] for c in self.nodes.reactor.tcpClients], [8053])
        complete_tcp_connection(self.nodes.reactor, address("127.0.0.1", 40003)).flush()
        self.assertEqual(
            sorted(c.peer.identifier for c in self.client.trusted_peer_channels),
            ["server", "third"],
        )

    def test_duplicate_identifier_refused(self) -> None:
        """A second connection claiming a connected identifier gets a Disconnect."""
        self.nodes.dial(self.client, self.server)
        impostor = PeerChannel("p2pnet", clock=self.nodes.reactor,
                               local_identity=IdentifierPacket("connect", 9999, "",
                                                               source_origin_identifier="client"))
        channel = self.server.factory.buildProtocol(address("10.0.0.9"))
        transport = StringTransport(peerAddress=address("10.0.0.9"))
        channel.makeConnection(transport)
        channel.dataReceived(get_codec("p2pnet").encode(impostor.local_identity))
        self.assertTrue(transport.disconnecting)
        decoder = get_codec("p2pnet").decoder()
        kinds = [p.kind for p in decoder.feed(transport.value())]
        self.assertEqual(kinds[-1], PacketType.DISCONNECT)
        self.assertEqual(len(self.server.active_peer_channels), 1)
        self.assertEqual(self.server.counters["duplicates_refused"], 1)

    def test_connect_to_connected_peer_returns_channel(self) -> None:
        """connect() to a peer already connected fires with the existing channel, no dial."""
        first = self.successResultOf(self.nodes.dial(self.client, self.server)[0])
        again = self.client.connect(GenericPeer("127.0.0.1", 8051))
        self.assertIs(self.successResultOf(again), first)
        self.assertEqual(self.nodes.reactor.tcpClients, [])

    def test_simultaneous_dials_keep_one_connection(self) -> None:
        """Two nodes dialling each other at once both keep the same single connection."""
        d1 = self.client.connect(GenericPeer("127.0.0.1", 8051))
        d2 = self.server.connect(GenericPeer("127.0.0.1", 8052))
        pump1 = complete_tcp_connection(self.nodes.reactor, address("127.0.0.1", 40001))
        pump2 = complete_tcp_connection(self.nodes.reactor, address("127.0.0.1", 40002))
        for _ in range(20):
            pump1.pump()
            pump2.pump()
        [on_client] = self.client.active_peer_channels
        [on_server] = self.server.active_peer_channels
        # "client" < "server": the connection the client opened survives on both sides.
        self.assertTrue(self.client.is_outbound(on_client))
        self.assertFalse(self.server.is_outbound(on_server))
        self.assertIs(self.successResultOf(d1), on_client)
        self.assertIs(self.successResultOf(d2), on_server)
        self.assertTrue(on_client.is_trusted and on_server.is_trusted)

    def test_self_connection_refused(self) -> None:
        """A node that reaches itself refuses the connection; connect() fails."""
        d = self.server.connect(GenericPeer("10.0.0.5", 8051))
        complete_tcp_connection(self.nodes.reactor, address("10.0.0.5")).flush()
        self.failureResultOf(d, SelfConnection)
        self.assertEqual(self.server.active_peer_channels, [])

    def test_connect_to_own_listening_address_fails_at_once(self) -> None:
        """connect() to a loopback address on our own listening port fails without dialling."""
        self.failureResultOf(
            self.server.connect(GenericPeer("127.0.0.1", 8051)), SelfConnection
        )
        self.assertEqual(self.nodes.reactor.tcpClients, [])

    def test_connect_to_own_identifier_fails_at_once(self) -> None:
        """connect() to a peer with our identifier fails without dialling."""
        self.failureResultOf(
            self.server.connect(GenericPeer("10.0.0.1", 1, "server")), SelfConnection
        )
        self.assertEqual(self.nodes.reactor.tcpClients, [])

    def test_blocked_identifier_refused(self) -> None:
        """A peer whose identifier is blocked is refused when it says who it is."""
        self.server.policy.blocked_identifiers.add("client")
        d, _ = self.nodes.dial(self.client, self.server)
        channel = self.successResultOf(d)  # the client accepted the server...
        self.assertTrue(channel.is_closed)  # ...and the server said goodbye.
        self.assertEqual(channel.close_reason, "disconnected by peer")
        self.assertFalse(channel.is_trusted)
        self.assertEqual(self.server.active_peer_channels, [])
        self.assertEqual(self.client.active_peer_channels, [])
        self.assertEqual(self.server.counters["identities_refused"], 1)

    def test_two_peers_on_one_ip(self) -> None:
        """Two peers behind one address (NAT, one host) are both accepted."""
        third = self.nodes.node("third", 8053)
        self.successResultOf(self.nodes.dial(self.client, self.server, source_port=40001)[0])
        self.successResultOf(self.nodes.dial(third, self.server, source_port=40002)[0])
        self.assertEqual(
            sorted(c.peer.identifier for c in self.server.trusted_peer_channels),
            ["client", "third"],
        )

    def test_disconnect_removes_peer_everywhere(self) -> None:
        """A closed channel leaves the tables of both sides; peer_removed observers hear of it."""
        removed: list[PeerChannel] = []
        self.server.peer_removed.add(removed.append)
        d, pump = self.nodes.dial(self.client, self.server)
        channel = self.successResultOf(d)
        [inbound] = self.server.active_peer_channels
        channel.close("bye")
        pump.flush()
        self.assertEqual(removed, [inbound])
        self.assertEqual(inbound.close_reason, "disconnected by peer")
        self.assertEqual(self.server.active_peer_channels, [])
        self.assertEqual(self.client.active_peer_channels, [])
        self.assertEqual(self.server.trusted_peer_channels, [])

    def test_reconnect_after_drop(self) -> None:
        """The same identifier may connect again at once after a clean drop."""
        d, pump = self.nodes.dial(self.client, self.server, source_port=40001)
        self.successResultOf(d).close("bye")
        pump.flush()
        d, _ = self.nodes.dial(self.client, self.server, source_port=40002)
        self.assertTrue(self.successResultOf(d).is_trusted)
        self.assertEqual(len(self.server.trusted_peer_channels), 1)

    def test_remove_peer_forgets_it(self) -> None:
        """remove_peer closes the channel and drops the peer from the known peers."""
        _, pump = self.nodes.dial(self.client, self.server)
        [inbound] = self.server.active_peer_channels
        closed = self.server.remove_peer(inbound)
        self.assertNotIn(("127.0.0.1", 8052), self.server.known_peers)
        pump.flush()  # our Disconnect reaches the client, which closes: the close completes
        self.assertEqual(self.successResultOf(closed), "removed")
        self.assertEqual(self.client.active_peer_channels, [])

    def test_block_drops_matching_channel(self) -> None:
        """Blocking a connected peer's identifier closes its channel and tells observers."""
        blocked: list[tuple[object, object]] = []
        self.server.peer_blocked.add(lambda ip, identifier: blocked.append((ip, identifier)))
        _, pump = self.nodes.dial(self.client, self.server)
        dropped = self.server.block(identifier="client")
        self.assertEqual(len(dropped), 1)
        pump.flush()
        self.assertTrue(dropped[0].is_closed)
        self.assertEqual(blocked, [(None, "client")])
        self.assertRaises(ValueError, self.server.block)

    def test_broadcast_reaches_trusted_only(self) -> None:
        """broadcast() writes to trusted channels and says how many."""
        self.nodes.dial(self.client, self.server)
        messages = RecordingHandler()
        self.client.handlers.set_handler(PacketType.MESSAGE, messages)
        self.assertEqual(self.server.broadcast(PureMessagePacket("hi")), 1)
        [inbound] = self.server.active_peer_channels
        inbound.untrust()
        self.assertEqual(self.server.broadcast(PureMessagePacket("again")), 0)


class PeerNetworkPlacementTests(SynchronousTestCase):
    """New inbound peers go to the queue, the event, or both, as the policy says."""

    def placed(self, placement: IncomingPeerPlacement) -> tuple[list[object], int]:
        nodes = Nodes()
        server = nodes.node("server", 8051,
                            policy=IncomingPeerTrustPolicy(incoming_peer_placement=placement))
        client = nodes.node("client", 8052)
        events: list[object] = []
        server.incoming_peer_connection_attempt.add(lambda peer, channel: events.append(peer))
        nodes.dial(client, server)
        return events, len(server.inbound)

    def test_event_based(self) -> None:
        """EVENT_BASED (the default) tells the observers only."""
        events, queued = self.placed(IncomingPeerPlacement.EVENT_BASED)
        self.assertEqual((len(events), queued), (1, 0))

    def test_queue_based(self) -> None:
        """QUEUE_BASED puts the peer on the inbound queue only."""
        events, queued = self.placed(IncomingPeerPlacement.QUEUE_BASED)
        self.assertEqual((len(events), queued), (0, 1))

    def test_queue_and_event_based(self) -> None:
        """QUEUE_AND_EVENT_BASED does both."""
        events, queued = self.placed(IncomingPeerPlacement.QUEUE_AND_EVENT_BASED)
        self.assertEqual((len(events), queued), (1, 1))


class PeerChannelFactoryTests(SynchronousTestCase):
    """The factory refuses connections before a byte is read."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(
            self.reactor, transport="tcp", identifier="server", trust_protocol="none",
            limits=NetworkLimits(max_inbound=4, max_pending=3, max_per_ip=2),
        )

    def connect_from(self, host: str) -> PeerChannel | None:
        channel = self.network.factory.buildProtocol(address(host))
        if channel is not None:
            channel.makeConnection(StringTransport(peerAddress=address(host)))
        return channel

    def test_blocked_ip_refused(self) -> None:
        """A blocked address gets no protocol at all."""
        self.network.policy.blocked_ips.add("10.0.0.7")
        self.assertIsNone(self.network.factory.buildProtocol(address("10.0.0.7")))
        self.assertEqual(self.network.counters["refused_connections"], 1)

    def test_per_ip_limit(self) -> None:
        """At most max_per_ip connections from one address; others still get in."""
        self.assertIsNotNone(self.connect_from("10.0.0.7"))
        self.assertIsNotNone(self.connect_from("10.0.0.7"))
        self.assertIsNone(self.connect_from("10.0.0.7"))
        self.assertIsNotNone(self.connect_from("10.0.0.8"))

    def test_pending_limit(self) -> None:
        """At most max_pending connections may be waiting to say who they are."""
        for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            self.assertIsNotNone(self.connect_from(host))
        self.assertIsNone(self.connect_from("10.0.0.4"))

    def fill_inbound(self, message: str | None = None) -> list[PeerChannel]:
        """max_inbound identified peers, each of which then sends C{message} if given."""
        codec = get_codec("p2pnet")
        channels = []
        for n in range(4):
            channel = self.connect_from(f"10.0.1.{n}")
            assert channel is not None
            channel.dataReceived(codec.encode(IdentifierPacket(
                "connect", 8000 + n, "", source_origin_identifier=f"peer{n}")))
            if message is not None:
                channel.dataReceived(codec.encode(PureMessagePacket(message)))
            channels.append(channel)
        self.assertEqual(len(self.network.active_peer_channels), 4)
        return channels

    def test_inbound_limit(self) -> None:
        """
        At most max_inbound inbound channels, identified or not: when every one is protected
        from eviction (here each sent a useful packet lately), a newcomer is refused.
        """
        self.fill_inbound("hello")
        self.assertIsNone(self.connect_from("10.0.2.1"))
        self.assertEqual(self.network.counters["evicted"], 0)

    def test_inbound_limit_evicts(self) -> None:
        """
        Past max_inbound, a newcomer evicts the youngest unprotected peer, whose close frees
        its slot before the newcomer is counted: the table never holds more than max_inbound.
        A keep-alive is no useful packet: it protects nobody.
        """
        channels = self.fill_inbound(KEEPALIVE_MESSAGE)
        newcomer = self.connect_from("10.0.2.1")
        self.assertIsNotNone(newcomer)
        self.assertEqual(channels[3].close_reason, "evicted for a newcomer")
        self.assertEqual(self.network.active_peer_channels, channels[:3])
        self.assertEqual(self.network.pending_channels, [newcomer])
        self.assertEqual(self.network.counters["evicted"], 1)

    def test_no_identity_in_time_dropped(self) -> None:
        """A peer that never says who it is is dropped at the handshake deadline."""
        channel = self.connect_from("10.0.0.7")
        assert channel is not None
        self.reactor.advance(self.network.channel_limits.handshake_timeout)
        self.assertTrue(channel.transport.disconnecting)

    def test_first_packet_must_be_identity(self) -> None:
        """A first packet that is not an Identity is a protocol violation: dropped."""
        channel = self.connect_from("10.0.0.7")
        assert channel is not None
        channel.dataReceived(get_codec("p2pnet").encode(PureMessagePacket("hi")))
        self.assertTrue(channel.transport.disconnecting)
        self.assertEqual(self.network.counters["misbehaving_peers"], 1)
        self.assertIn("10.0.0.7", self.network.discouraged_ips)


class PeerListTests(SynchronousTestCase):
    """Shared peer lists are bounded, filtered and dialled at a limited rate."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(
            self.reactor, transport="tcp", identifier="me", trust_protocol=always_trust,
            limits=NetworkLimits(dial_burst=3, dial_rate=0.1),
        )
        self.channel = self.network.make_channel(outbound=False)
        self.channel.makeConnection(StringTransport(peerAddress=address("10.9.9.9")))
        self.channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 9000, "", source_origin_identifier="sharer")))

    def share(self, peers: list[GenericPeer]) -> None:
        self.channel.dataReceived(get_codec("p2pnet").encode(CollectionSharePacket(100, peers)))

    def test_dials_limited_by_token_bucket(self) -> None:
        """Only dial_burst dials start at once; the rest wait for tokens."""
        self.share([GenericPeer("10.0.0.1", 8000 + n, f"p{n}") for n in range(10)])
        self.assertEqual(len(self.reactor.tcpClients), 3)
        self.assertEqual(len(self.network.known_peers), 11)
        self.assertEqual(self.network.counters["dials_deferred"], 7)

    def test_never_dials_blocked_or_self(self) -> None:
        """Blocked addresses and this node itself are neither remembered nor dialled."""
        self.network.policy.blocked_ips.add("10.0.0.66")
        self.share([GenericPeer("10.0.0.66", 8000, "bad"), GenericPeer("10.0.0.2", 1, "me")])
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(list(self.network.known_peers), [("10.9.9.9", 9000)])

    def test_oversized_list_is_misbehaviour(self) -> None:
        """More than max_peer_list entries drops the sender and discourages it."""
        self.share([GenericPeer("10.0.0.1", 1 + n) for n in range(1001)])
        self.assertTrue(self.channel.transport.disconnecting)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertIn("10.9.9.9", self.network.discouraged_ips)


class PeerNetworkLifecycleTests(SynchronousTestCase):
    """connect() validates, can be cancelled, and nothing connects after close()."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", trust_protocol=always_trust,
                                   identifier="me")

    def test_connect_rejects_non_peer(self) -> None:
        """connect() needs an IPeer; it fails, never raises."""
        self.failureResultOf(self.network.connect(("10.0.0.1", 1)), TypeError)

    def test_connect_to_blocked_fails(self) -> None:
        """A blocked address is never dialled."""
        self.network.policy.blocked_ips.add("10.0.0.7")
        self.failureResultOf(self.network.connect(GenericPeer("10.0.0.7", 1)), PeerBlocked)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_concurrent_connects_share_one_dial(self) -> None:
        """Two connect() calls to one address make one TCP connection attempt."""
        self.network.connect(GenericPeer("10.0.0.7", 1))
        self.network.connect(GenericPeer("10.0.0.7", 1))
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_outbound_limit(self) -> None:
        """No more than max_outbound outbound attempts."""
        network = PeerNetwork(self.reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="x", limits=NetworkLimits(max_outbound=0))
        self.failureResultOf(network.connect(GenericPeer("10.0.0.7", 1)), TooManyPeers)

    def test_cancel_connect(self) -> None:
        """Cancelling connect() stops the attempt and forgets it: the next connect() dials."""
        d = self.network.connect(GenericPeer("10.0.0.7", 1))
        d.cancel()
        self.failureResultOf(d, CancelledError, ConnectingCancelledError)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        again = self.network.connect(GenericPeer("10.0.0.7", 1))
        self.assertNoResult(again)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_closed_network_refuses(self) -> None:
        """After close() there are no new connections, in or out."""
        self.successResultOf(self.network.close())
        self.failureResultOf(self.network.connect(GenericPeer("10.0.0.7", 1)), NetworkClosed)
        self.assertIsNone(self.network.factory.buildProtocol(address("10.0.0.7")))
        self.failureResultOf(self.network.listen("tcp:0"), NetworkClosed)

    def test_close_stops_ports_and_channels(self) -> None:
        """close() stops listening and closes every channel."""
        self.network.listen("tcp:8051")
        channel = self.network.factory.buildProtocol(address("10.0.0.7"))
        transport = StringTransport(peerAddress=address("10.0.0.7"))
        channel.makeConnection(transport)
        d = self.network.close()
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(d)
        channel.connectionLost()
        self.successResultOf(d)

    def test_listen_sets_backlog(self) -> None:
        """A TCP listen gets a real backlog unless the endpoint names one."""
        self.network.listen("tcp:8051")
        self.assertEqual(self.reactor.tcpServers[0][2], 1024)

    def test_bad_endpoint_fails(self) -> None:
        """A bad endpoint string is a failed Deferred with a clear message."""
        f = self.failureResultOf(self.network.listen("nonsense:1"), ValueError)
        self.assertIn("nonsense:1", str(f.value))

    def test_bad_identifier_rejected(self) -> None:
        """An identifier over 256 bytes cannot name a node."""
        self.assertRaises(ValueError, PeerNetwork, self.reactor, identifier="x" * 257)

    def test_bad_trust_protocol_rejected(self) -> None:
        """Unknown trust protocol names are a clear ValueError."""
        self.assertRaises(ValueError, PeerNetwork, self.reactor, trust_protocol="magic")

    def test_identifier_derived_from_key(self) -> None:
        """Without an identifier, the node's is derived from its public key."""
        from p2pnet_tx.trust import identifier_for_public_key

        network = PeerNetwork(self.reactor)
        self.assertEqual(network.identifier, identifier_for_public_key(network.private_key))


class HelpersTests(SynchronousTestCase):
    """Small helpers of the network module."""

    def test_token_bucket(self) -> None:
        """A bucket gives its burst at once, then rate tokens a second."""
        from twisted.internet.task import Clock

        clock = Clock()
        bucket = TokenBucket(clock, rate=0.5, burst=2)
        self.assertEqual([bucket.take() for _ in range(3)], [True, True, False])
        clock.advance(2)
        self.assertEqual([bucket.take() for _ in range(2)], [True, False])

    def test_peers_from_strings(self) -> None:
        """HOST:PORT and [V6]:PORT parse; anything else is a ValueError naming the value."""
        self.assertEqual(
            peers_from_strings(["127.0.0.1:8051", "[::1]:9"]),
            [GenericPeer("127.0.0.1", 8051), GenericPeer("::1", 9)],
        )
        for bad in ("nonsense", "127.0.0.1:x", "127.0.0.1:0", "host:1"):
            with self.assertRaises(ValueError) as caught:
                peers_from_strings([bad])
            self.assertIn(bad, str(caught.exception))

    def test_duplicate_peer_is_refusal(self) -> None:
        """DuplicatePeer is one of the typed refusals."""
        from p2pnet_tx.errors import PeerRefused

        self.assertTrue(issubclass(DuplicatePeer, PeerRefused))


class DotNetModeTests(SynchronousTestCase):
    """In dotnet wire mode no Identity is exchanged: peers are known by address and port."""

    def test_ping_trust_without_identity(self) -> None:
        """Two dotnet-mode networks accept each other at once and trust after three pings."""
        nodes = Nodes()
        server = nodes.node("server", 8051, wire="dotnet", trust_protocol="ping")
        client = nodes.node("client", 8052, wire="dotnet", trust_protocol="ping")
        d, pump = nodes.dial(client, server)
        channel = self.successResultOf(d)
        [inbound] = server.active_peer_channels
        self.assertEqual(inbound.peer, GenericPeer("127.0.0.1", 40000))
        self.assertIsNone(inbound.peer.identifier)
        self.assertFalse(channel.is_trusted)
        for _ in range(4):
            nodes.reactor.advance(3.0)
            pump.flush()
        self.assertTrue(channel.is_trusted and inbound.is_trusted)
        self.assertEqual(channel.counters["packets_out.Identity"], 0)
        self.assertEqual(inbound.counters["packets_in.Identity"], 0)
        self.assertGreaterEqual(inbound.counters["packets_in.Message"], 3)


class ProcessPeerListTests(SynchronousTestCase):
    """Applications may hand the network a peer list themselves."""

    def test_application_call(self) -> None:
        """process_peer_list(packet) remembers and dials, and takes at most max_peer_list."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me", limits=NetworkLimits(max_peer_list=2))
        network.process_peer_list(CollectionSharePacket(100, [
            GenericPeer("10.0.0.1", 1), GenericPeer("10.0.0.2", 2), GenericPeer("10.0.0.3", 3)]))
        self.assertEqual(list(network.known_peers), [("10.0.0.1", 1), ("10.0.0.2", 2)])
        self.assertEqual(len(reactor.tcpClients), 2)
        self.assertRaises(TypeError, network.process_peer_list, [GenericPeer("10.0.0.1", 1)])


class HostileIdentityTests(SynchronousTestCase):
    """Identities that are too long, empty or repeated never crash the node."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="me",
                                   trust_protocol="none")

    def arrive(self, host: str, identifier: str, port: int = 9000) -> PeerChannel:
        channel = self.network.factory.buildProtocol(address(host))
        channel.makeConnection(StringTransport(peerAddress=address(host)))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", port, "", source_origin_identifier=identifier)))
        return channel

    def test_identifier_over_256_bytes_refused(self) -> None:
        """
        An identifier of 1,000 bytes (over 256, within the 4 KiB pre-trust frame) is refused
        with a Disconnect; the node carries on.
        """
        channel = self.arrive("10.0.0.1", "x" * 1_000)
        self.assertTrue(channel.transport.disconnecting)
        self.assertEqual(self.network.active_peer_channels, [])
        self.assertEqual(self.network.counters["identities_refused"], 1)
        self.assertFalse(self.arrive("10.0.0.2", "fine").transport.disconnecting)

    def test_empty_identifier_deduplicated_by_address_and_port(self) -> None:
        """Peers without identifier are told apart by address and listening port."""
        first = self.arrive("10.0.0.1", "", 9000)
        self.assertIsNone(first.peer.identifier)
        self.assertFalse(self.arrive("10.0.0.1", "", 9001).transport.disconnecting)
        self.assertTrue(self.arrive("10.0.0.1", "", 9000).transport.disconnecting)
        self.assertEqual(len(self.network.active_peer_channels), 2)

    def test_identity_claiming_another_ip_is_ignored(self) -> None:
        """The address a peer claims is never used: the connection's address is."""
        channel = self.network.factory.buildProtocol(address("10.0.0.1"))
        channel.makeConnection(StringTransport(peerAddress=address("10.0.0.1")))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 9000, "203.0.113.9", source_origin_identifier="liar")))
        self.assertEqual(channel.peer, GenericPeer("10.0.0.1", 9000, "liar"))
        self.assertEqual(self.reactor.tcpClients, [])


class RefusedHandshakeTests(SynchronousTestCase):
    """A silent peer is not discouraged (a refused key is: tests/test_network_security.py)."""

    def test_timeout_does_not_discourage(self) -> None:
        """A handshake that merely times out is not misbehaviour."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me")
        channel = network.factory.buildProtocol(address("10.0.0.7"))
        channel.makeConnection(StringTransport(peerAddress=address("10.0.0.7")))
        reactor.advance(network.channel_limits.handshake_timeout)
        self.assertTrue(channel.transport.disconnecting)
        self.assertNotIn("10.0.0.7", network.discouraged_ips)


class DialKnownPeersTests(SynchronousTestCase):
    """dial_known_peers reconnects to remembered peers, within the same limits as peer lists."""

    def test_dials_unconnected_known_peers(self) -> None:
        """Known peers that are not connected, blocked or this node are dialled once each."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me", limits=NetworkLimits(dial_burst=2))
        for peer in (GenericPeer("10.0.0.1", 1), GenericPeer("10.0.0.2", 2, "me"),
                     GenericPeer("10.0.0.3", 3), GenericPeer("10.0.0.4", 4),
                     GenericPeer("10.0.0.5", 5)):
            network.remember(peer)
        network.policy.blocked_ips.add("10.0.0.3")
        self.assertEqual(network.dial_known_peers(), 2)
        self.assertEqual([c[:2] for c in reactor.tcpClients], [("10.0.0.1", 1), ("10.0.0.4", 4)])
        self.assertEqual(network.dial_known_peers(), 0)
        self.assertEqual(network.counters["dials_deferred"], 2)  # 10.0.0.5, twice


class ReviewFindingsTests(SynchronousTestCase):
    """Regressions for what a review found: identity takeover, lost events, shared cancels,
    dual-stack addresses, gossip flooding the known peers."""

    def test_trusted_channel_never_displaced(self) -> None:
        """A newcomer claiming a trusted peer's identifier is refused, whatever the tie-break."""
        nodes = Nodes()
        a = nodes.node("zzzz", 8051)
        v = nodes.node("aaaa", 8052)
        d, _ = nodes.dial(a, v)  # a opened it; "aaaa" < "zzzz" would favour v's connections
        real = self.successResultOf(d)
        self.assertTrue(real.is_trusted)
        impostor = a.make_channel(outbound=False)
        impostor.makeConnection(StringTransport(peerAddress=address("10.6.6.6")))
        impostor.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 9000, "", source_origin_identifier="aaaa")))
        self.assertTrue(impostor.transport.disconnecting)
        self.assertEqual(a.active_peer_channels, [real])
        self.assertFalse(real.is_closed)

    def test_replaced_channel_is_announced_removed(self) -> None:
        """A channel replaced by the simultaneous-dial tie-break gets its peer_removed event."""
        nodes = Nodes()
        client, server = nodes.node("client", 8052), nodes.node("server", 8051)
        added: list[PeerChannel] = []
        removed: list[PeerChannel] = []
        client.peer_added.add(added.append)
        client.peer_removed.add(removed.append)
        client.connect(GenericPeer("127.0.0.1", 8051))
        server.connect(GenericPeer("127.0.0.1", 8052))
        pump1 = complete_tcp_connection(nodes.reactor, address("127.0.0.1", 40001))
        pump2 = complete_tcp_connection(nodes.reactor, address("127.0.0.1", 40002))
        for _ in range(20):
            pump1.pump()
            pump2.pump()
        self.assertEqual(len(client.active_peer_channels), 1)
        self.assertEqual(set(added) - set(removed), set(client.active_peer_channels))

    def test_cancelling_one_caller_leaves_the_dial(self) -> None:
        """Two connect() callers share a dial; one cancelling does not fail the other."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me")
        first = network.connect(GenericPeer("10.0.0.7", 1))
        second = network.connect(GenericPeer("10.0.0.7", 1))
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.assertNoResult(second)
        second.cancel()
        self.failureResultOf(second, CancelledError, ConnectingCancelledError)

    def test_ipv4_mapped_addresses_are_one_host(self) -> None:
        """Through a dual-stack listener ::ffff:a.b.c.d counts (and is blocked) as a.b.c.d."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me",
                              limits=NetworkLimits(max_per_ip=2, max_pending=100))
        mapped = IPv4Address("TCP", "::ffff:10.1.2.3", 40000)
        channels = []
        for _ in range(3):
            channel = network.factory.buildProtocol(mapped)
            if channel is not None:
                channel.makeConnection(StringTransport(peerAddress=mapped))
                channels.append(channel)
        self.assertEqual(len(channels), 2)
        self.assertEqual(channels[0].peer.address, "10.1.2.3")
        self.assertEqual(len(network.block(ip="10.1.2.3")), 2)

    def test_gossip_cannot_flush_known_peers(self) -> None:
        """Shared lists add new addresses at the gossip rate only."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", identifier="me",
                              trust_protocol=always_trust,
                              limits=NetworkLimits(gossip_burst=5, dial_burst=0))
        for n in range(3):
            network.process_peer_list(CollectionSharePacket(100, [
                GenericPeer("10.0.0.1", 1000 * n + k + 1) for k in range(4)]))
        self.assertEqual(len(network.known_peers), 5)
        self.assertEqual(network.counters["gossip_dropped"], 7)

    def test_untrusted_inbound_peer_not_remembered(self) -> None:
        """An inbound peer's claimed address is kept only once it is trusted."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", identifier="me", trust_protocol="none")
        channel = network.factory.buildProtocol(address("10.0.0.9"))
        channel.makeConnection(StringTransport(peerAddress=address("10.0.0.9")))
        channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 9000, "", source_origin_identifier="stranger")))
        self.assertEqual(len(network.active_peer_channels), 1)
        self.assertEqual(network.known_peers, {})
        channel.trust()
        self.assertIn(("10.0.0.9", 9000), network.known_peers)


class AcceptLimitsTests(SynchronousTestCase):
    """The per-address connection rate, and handshakes counted as pending until trusted."""

    def connect(self, network: PeerNetwork, host: str) -> PeerChannel | None:
        channel = network.factory.buildProtocol(address(host))
        if channel is not None:
            channel.makeConnection(StringTransport(peerAddress=address(host)))
        return channel

    def test_connection_rate_per_address(self) -> None:
        """One address gets accept_burst connections at once, then accept_rate a second."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me",
                              limits=NetworkLimits(accept_burst=3, accept_rate=0.2))
        for _ in range(3):
            channel = self.connect(network, "10.0.0.7")
            self.assertIsNotNone(channel)
            channel.connectionLost()
        self.assertIsNone(self.connect(network, "10.0.0.7"))
        self.assertIsNotNone(self.connect(network, "10.0.0.8"))
        reactor.advance(5.0)
        self.assertIsNotNone(self.connect(network, "10.0.0.7"))

    def test_untrusted_channels_are_pending(self) -> None:
        """A peer that said who it is but is not trusted yet still holds a pending slot."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", identifier="me",
                              trust_protocol=lambda channel: Deferred(),
                              limits=NetworkLimits(max_pending=2))
        for n in range(2):
            channel = self.connect(network, f"10.0.0.{n + 1}")
            channel.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
                "connect", 9000, "", source_origin_identifier=f"peer{n}")))
        self.assertEqual(len(network.active_peer_channels), 2)
        self.assertEqual(len(network.pending_channels), 2)
        self.assertIsNone(self.connect(network, "10.0.0.9"))
        network.active_peer_channels[0].trust()
        self.assertEqual(len(network.pending_channels), 1)
        self.assertIsNotNone(self.connect(network, "10.0.0.9"))


class NonListeningPeerTests(SynchronousTestCase):
    """A peer that gives no listening port is kept by its connection but never shared."""

    def test_not_remembered_or_shared(self) -> None:
        """Its connection port is not a place to dial: not in known_peers, not in peer lists."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", identifier="me",
                              trust_protocol=always_trust)
        codec = get_codec("p2pnet")
        transports = []
        for n, port in enumerate((0, 9000)):
            channel = network.factory.buildProtocol(address(f"10.0.0.{n + 1}"))
            transport = StringTransport(peerAddress=address(f"10.0.0.{n + 1}", 40000 + n))
            channel.makeConnection(transport)
            channel.dataReceived(codec.encode(IdentifierPacket(
                "connect", port, "", source_origin_identifier=f"peer{n}")))
            transports.append(transport)
        self.assertEqual(len(network.trusted_peer_channels), 2)
        self.assertEqual(list(network.known_peers), [("10.0.0.2", 9000)])
        lists = [p for p in codec.decoder().feed(transports[1].value())
                 if isinstance(p, CollectionSharePacket)]
        self.assertEqual(lists[0].peers, [])
