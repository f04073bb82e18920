"""
Tests for L{p2pnet_tx.network.security} and for networks over TLS, in memory: identifiers bound
to the keys TLS proves, the attacks of issue 8 (identifier theft, relay), peers with no usable
certificate, plaintext peers, the transport and trust choices and their warnings.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.testing import (
    EventLoggingObserver,
    MemoryReactorClock,
    StringTransport,
)
from twisted.logger import globalLogPublisher
from twisted.protocols.tls import BufferingTLSTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.errors import ChannelClosed, IdentityMismatch
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.network.security import resolve_transport, security_warnings
from p2pnet_tx.packets import IdentifierPacket, PacketType
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.testing import RecordingHandler, complete_tcp_connection
from p2pnet_tx.trust import KeyTrust, always_trust, key_trust, ping_trust
from p2pnet_tx.wire import get_codec
from p2pnet_tx.wire_mode import DOTNET, P2PNET
from tests.tls_support import (
    ClientContext,
    ecdsa_context,
    join,
    node_context,
    tls_client,
)


def address(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class TLSNodes:
    """Networks over TLS sharing one memory reactor, each listening on its own port."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()

    def node(self, port: int, name: str | None = None, **kwargs: object) -> PeerNetwork:
        network = PeerNetwork(self.reactor, display_name=name, **kwargs)  # type: ignore[arg-type]
        network.listen(f"tcp:{port}")
        return network

    def dial(self, client: PeerNetwork, server: PeerNetwork, identifier: str | None = None,
             source: str = "127.0.0.1", source_port: int = 40000):
        """Connect C{client} to C{server}; return (connect Deferred, pump or None)."""
        d = client.connect(GenericPeer("127.0.0.1", server.listening_port, identifier))
        pump = complete_tcp_connection(self.reactor, address(source, source_port))
        if pump is not None:
            pump.flush()
        return d, pump

    def impostor(self, server: PeerNetwork, claimed: str, key: Ed25519PrivateKey | None = None,
                 host: str = "10.0.0.66") -> tuple[PeerChannel, PeerChannel]:
        """
        A TLS client with its own key (fresh by default) that claims C{claimed} in its
        Identity, connected to C{server} from C{host}.
        """
        channel = PeerChannel("p2pnet", clock=self.reactor, local_identity=IdentifierPacket(
            "connect", 8099, "", source_origin_identifier=claimed))
        client = tls_client(channel, node_context(key, self.reactor), self.reactor)
        server_side = server.factory.buildProtocol(address(host))
        server_channel = server_side.wrappedProtocol
        join(server_side, client, self.reactor, host)
        return channel, server_channel


class TLSNetworkTests(SynchronousTestCase):
    """Two networks over TLS (the default) trust each other by the keys TLS proved."""

    def setUp(self) -> None:
        self.nodes = TLSNodes()
        self.server_key = Ed25519PrivateKey.generate()
        self.server = self.nodes.node(8051, "alice", private_key=self.server_key)
        self.client = self.nodes.node(8052, "bob")

    def test_defaults(self) -> None:
        """TLS and key trust are the defaults; the identifier is derived from the key."""
        self.assertEqual(self.server.transport, "tls")
        self.assertIsInstance(self.server.trust_protocol, KeyTrust)
        self.assertEqual(self.server.identifier, identifier_for_public_key(self.server_key))
        self.assertIsNotNone(self.server.tls)
        self.assertIs(self.server.factory.wrappedFactory, self.server.channel_factory)

    def test_trusted_by_key(self) -> None:
        """
        Both sides trust each other, know each other's derived identifier, the key TLS proved
        and the display name announced.
        """
        trusted: list[PeerChannel] = []
        self.server.peer_trusted.add(trusted.append)
        d, _ = self.nodes.dial(self.client, self.server)
        channel = self.successResultOf(d)
        self.assertTrue(channel.is_trusted)
        self.assertEqual(channel.peer, GenericPeer("127.0.0.1", 8051, self.server.identifier))
        self.assertEqual(channel.properties["public_key"], public_key_bytes(self.server_key))
        self.assertEqual(channel.properties["display_name"], "alice")
        [inbound] = trusted
        self.assertEqual(inbound.peer, GenericPeer("127.0.0.1", 8052, self.client.identifier))
        self.assertEqual(inbound.properties["public_key"], self.client.tls.public_key)
        self.assertEqual(inbound.properties["display_name"], "bob")
        self.assertEqual(self.server.counters["handshakes_ok"], 1)
        self.assertEqual(inbound.transport.getHandle().get_protocol_version_name(), "TLSv1.3")

    def test_messages_flow(self) -> None:
        """Messages pass both ways through TLS."""
        received = RecordingHandler()
        self.server.handlers.set_handler(PacketType.MESSAGE, received)
        d, pump = self.nodes.dial(self.client, self.server)
        channel = self.successResultOf(d)
        for n in range(3):
            channel.send_message(f"hello {n}")
        pump.flush()
        self.assertEqual([p.message for p in received.packets], ["hello 0", "hello 1", "hello 2"])

    def test_dialled_identifier_proven(self) -> None:
        """A dial to a known identifier succeeds when the peer holds its key."""
        d, _ = self.nodes.dial(self.client, self.server, self.server.identifier)
        self.assertTrue(self.successResultOf(d).is_trusted)

    def test_dialled_identifier_not_proven(self) -> None:
        """
        A dial to a known identifier, answered by a node with another key (whoever listens at
        that address now), fails with IdentityMismatch: the key is refused at the handshake and
        counted.  The address is not discouraged: the expectation may have come from a lying
        peer list, and the node that answered did nothing wrong.
        """
        expected = identifier_for_public_key(Ed25519PrivateKey.generate())
        d, _ = self.nodes.dial(self.client, self.server, expected)
        error = self.failureResultOf(d, IdentityMismatch).value
        self.assertEqual(error.claimed, expected)
        self.assertEqual(error.derived, self.server.identifier)
        self.assertEqual(self.client.counters["tls_keys_refused"], 1)
        self.assertNotIn("127.0.0.1", self.client.discouraged_ips)
        self.assertEqual(self.client.active_peer_channels, [])
        self.assertEqual(self.server.trusted_peer_channels, [])

    def test_identifier_theft_refused(self) -> None:
        """
        Finding 1: while B is offline, a fresh key claims B's identifier.  The server refuses
        it at once (misbehaviour: counted, discouraged), and B, coming back, is accepted.
        """
        b_key = Ed25519PrivateKey.generate()
        b_identifier = identifier_for_public_key(b_key)
        impostor, server_channel = self.nodes.impostor(self.server, b_identifier)
        self.assertTrue(impostor.is_closed)
        self.assertTrue(server_channel.is_closed)
        self.assertFalse(server_channel.is_trusted)
        self.assertEqual(self.server.counters["identities_unbound"], 1)
        self.assertEqual(self.server.counters["misbehaving_peers"], 1)
        self.assertIn("10.0.0.66", self.server.discouraged_ips)
        self.assertEqual(self.server.active_peer_channels, [])
        b = self.nodes.node(8053, private_key=b_key)
        d, _ = self.nodes.dial(b, self.server)
        self.assertTrue(self.successResultOf(d).is_trusted)
        [channel] = self.server.trusted_peer_channels
        self.assertEqual(channel.peer.identifier, b_identifier)
        self.assertEqual(self.server.counters["duplicates_refused"], 0)

    def test_identifier_theft_of_connected_peer(self) -> None:
        """A fresh key claiming a connected peer's identifier does not displace it."""
        self.nodes.dial(self.client, self.server)
        self.nodes.impostor(self.server, self.client.identifier)
        [channel] = self.server.active_peer_channels
        self.assertEqual(channel.properties["public_key"], self.client.tls.public_key)
        self.assertTrue(channel.is_trusted)
        self.assertEqual(self.server.counters["identities_unbound"], 1)

    def test_relay_refused(self) -> None:
        """
        Finding 2: an attacker that holds a TLS session with the server under its own key and
        forwards what C sends (C's Identity, claiming C's identifier) is not trusted as C.
        """
        c = self.nodes.node(8053, "carol")
        c_channel = c.make_channel(outbound=True)
        c_channel.makeConnection(StringTransport(peerAddress=address("10.0.0.66")))
        c_identity = get_codec("p2pnet").decoder().feed(c_channel.transport.value())[0]
        self.assertEqual(c_identity.source_origin_identifier, c.identifier)
        relay = PeerChannel("p2pnet", clock=self.nodes.reactor, local_identity=c_identity)
        client = tls_client(relay, node_context(None, self.nodes.reactor), self.nodes.reactor)
        join(self.server.factory.buildProtocol(address("10.0.0.66")), client,
             self.nodes.reactor, "10.0.0.66")
        self.assertTrue(relay.is_closed)
        self.assertEqual(self.server.trusted_peer_channels, [])
        self.assertEqual(self.server.counters["identities_unbound"], 1)
        self.assertIn("10.0.0.66", self.server.discouraged_ips)

    def test_no_certificate(self) -> None:
        """A TLS client that presents no certificate fails the handshake and is dropped."""
        channel = PeerChannel("p2pnet", clock=self.nodes.reactor)
        client = tls_client(channel, ClientContext(), self.nodes.reactor)
        server_side = self.server.factory.buildProtocol(address("10.0.0.66"))
        server_channel = server_side.wrappedProtocol
        join(server_side, client, self.nodes.reactor, "10.0.0.66")
        self.assertTrue(server_channel.is_closed)
        self.assertTrue(channel.is_closed)
        self.assertEqual(self.server.active_peer_channels, [])
        self.assertEqual(self.server.pending_channels, [])

    def test_not_ed25519(self) -> None:
        """A certificate with a P-256 key completes TLS but is dropped as misbehaving."""
        channel = PeerChannel("p2pnet", clock=self.nodes.reactor, local_identity=IdentifierPacket(
            "connect", 8099, "", source_origin_identifier=self.client.identifier))
        client = tls_client(channel, ecdsa_context(), self.nodes.reactor)
        server_side = self.server.factory.buildProtocol(address("10.0.0.66"))
        server_channel = server_side.wrappedProtocol
        join(server_side, client, self.nodes.reactor, "10.0.0.66")
        self.assertTrue(server_channel.is_closed)
        self.assertEqual(self.server.counters["tls_keys_refused"], 1)
        self.assertIn("10.0.0.66", self.server.discouraged_ips)
        self.assertEqual(self.server.active_peer_channels, [])

    def test_plaintext_client_dropped(self) -> None:
        """A peer that talks plaintext to a TLS node is dropped at its first bytes."""
        server_side = self.server.factory.buildProtocol(address("10.0.0.66"))
        transport = StringTransport(peerAddress=address("10.0.0.66"))
        server_side.makeConnection(transport)
        server_side.dataReceived(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 8099, "", source_origin_identifier=self.client.identifier)))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.server.active_peer_channels, [])

    def test_silent_client_dropped_at_deadline(self) -> None:
        """A TLS client that never says a word is dropped at the handshake deadline."""
        server_side = self.server.factory.buildProtocol(address("10.0.0.66"))
        transport = StringTransport(peerAddress=address("10.0.0.66"))
        server_side.makeConnection(transport)
        self.nodes.reactor.advance(self.server.channel_limits.handshake_timeout - 0.1)
        self.assertFalse(transport.disconnecting)
        self.nodes.reactor.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertNotIn("10.0.0.66", self.server.discouraged_ips)

    def test_silent_server_dropped_at_deadline(self) -> None:
        """A dial answered by a server that never speaks TLS ends at the handshake deadline."""
        d = self.client.connect(GenericPeer("10.0.0.5", 9999))
        factory = self.nodes.reactor.tcpClients[-1][2]
        client_side = factory.buildProtocol(address("10.0.0.5", 9999))
        join(Protocol(), client_side, self.nodes.reactor)
        self.assertNoResult(d)
        self.nodes.reactor.advance(self.client.channel_limits.handshake_timeout)
        self.failureResultOf(d, ChannelClosed)
        self.assertEqual(self.client.active_peer_channels, [])

    def test_tls_to_plaintext_node_fails(self) -> None:
        """A TLS node dialling a plaintext node gets no channel; neither side trusts."""
        plain = PeerNetwork(self.nodes.reactor, transport="tcp", trust_protocol=always_trust)
        plain.listen("tcp:8060")
        d, _ = self.nodes.dial(self.client, plain)
        self.failureResultOf(d)
        self.assertEqual(self.client.active_peer_channels, [])
        self.assertEqual(plain.trusted_peer_channels, [])

    def test_refused_before_tls(self) -> None:
        """Admission refuses a blocked address before any TLS work: no protocol at all."""
        self.server.policy.blocked_ips.add("10.0.0.9")
        self.assertIsNone(self.server.factory.buildProtocol(address("10.0.0.9")))
        self.assertEqual(self.server.counters["refused_connections"], 1)
        self.assertEqual(self.server.factory.protocols, {})

    def test_known_keys(self) -> None:
        """
        Key trust with known_keys refuses a proven key not on the list (misbehaviour): the
        server aborts, so what it had buffered (its Identity, its goodbye) never reaches the
        client, whose dial fails as the connection drops.
        """
        server = self.nodes.node(8054, trust_protocol=key_trust(known_keys=[bytes(32)]))
        d, _ = self.nodes.dial(self.client, server, source="10.0.0.7")
        self.assertIn("connection lost", str(self.failureResultOf(d, ChannelClosed).value))
        self.assertIn("10.0.0.7", server.discouraged_ips)
        self.assertEqual(server.counters["misbehaving_peers"], 1)
        allowing = self.nodes.node(8055, trust_protocol=key_trust([self.client.tls.public_key]))
        d, _ = self.nodes.dial(self.client, allowing, source_port=40001)
        self.assertTrue(self.successResultOf(d).is_trusted)

    def test_certificate_read_once(self) -> None:
        """
        The peer's certificate is read once per connection: the key binding at the handshake,
        the check of the claimed identifier and key trust all use the key the channel keeps.
        """
        reads: list[object] = []

        class CountingTLS(BufferingTLSTransport):
            def getPeerCertificate(self) -> object:
                reads.append(self)
                return super().getPeerCertificate()

        self.server.factory.protocol = CountingTLS
        trusted: list[PeerChannel] = []
        self.server.peer_trusted.add(trusted.append)
        d, _ = self.nodes.dial(self.client, self.server)
        self.assertTrue(self.successResultOf(d).is_trusted)
        [inbound] = trusted
        self.assertEqual(len(reads), 1)
        proven = inbound.proven_key()
        self.assertIs(inbound.proven_key(), proven)
        self.assertEqual((proven.public_key, proven.identifier),
                         (self.client.tls.public_key, self.client.identifier))
        self.assertEqual(len(reads), 1)

    def test_bad_display_name_ignored(self) -> None:
        """A display name unfit to show is ignored; the peer is still accepted."""
        channel = PeerChannel("p2pnet", clock=self.nodes.reactor, local_identity=IdentifierPacket(
            "evil\x1b[2J", 8099, "", source_origin_identifier=self.client.identifier))
        client = tls_client(channel, self.client.tls, self.nodes.reactor)
        join(self.server.factory.buildProtocol(address("10.0.0.8")), client, self.nodes.reactor,
             "10.0.0.8")
        [inbound] = self.server.trusted_peer_channels
        self.assertNotIn("display_name", inbound.properties)


class ChoicesTests(SynchronousTestCase):
    """The transport and trust a network runs, and the errors for choices that cannot work."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def test_transport_defaults(self) -> None:
        self.assertEqual(resolve_transport(None, P2PNET), "tls")
        self.assertEqual(resolve_transport(None, DOTNET), "tcp")
        self.assertEqual(resolve_transport("tcp", P2PNET), "tcp")
        self.assertRaises(ValueError, resolve_transport, "quic", P2PNET)

    def test_dotnet_with_tls(self) -> None:
        """.NET speaks no TLS: asking for it is a ValueError that says so."""
        with self.assertRaises(ValueError) as caught:
            PeerNetwork(self.reactor, wire="dotnet", transport="tls")
        self.assertIn("TLS", str(caught.exception))

    def test_dotnet_defaults(self) -> None:
        network = PeerNetwork(self.reactor, wire="dotnet")
        self.assertEqual(network.transport, "tcp")
        self.assertIs(network.trust_protocol, ping_trust)
        self.assertIsNone(network.tls)
        self.assertIs(network.factory, network.channel_factory)

    def test_identifier_over_tls(self) -> None:
        """A chosen identifier over TLS is a ValueError that points to display_name."""
        with self.assertRaises(ValueError) as caught:
            PeerNetwork(self.reactor, identifier="server")
        self.assertIn("display_name", str(caught.exception))

    def test_identifier_over_tcp(self) -> None:
        network = PeerNetwork(self.reactor, identifier="server", transport="tcp",
                              trust_protocol="ping")
        self.assertEqual(network.identifier, "server")

    def test_key_trust_over_tcp(self) -> None:
        """Key trust cannot be bound to a plaintext connection: ValueError, by name or object."""
        for trust in ("key", key_trust()):
            with self.assertRaises(ValueError) as caught:
                PeerNetwork(self.reactor, transport="tcp", trust_protocol=trust)
            self.assertIn("ping", str(caught.exception))
        policy = IncomingPeerTrustPolicy(default_trust_protocol=key_trust())
        self.assertRaises(ValueError, PeerNetwork, self.reactor, transport="tcp", policy=policy)

    def test_tcp_needs_a_trust_choice(self) -> None:
        self.assertRaises(ValueError, PeerNetwork, self.reactor, transport="tcp")

    def test_unknown_trust(self) -> None:
        self.assertRaises(ValueError, PeerNetwork, self.reactor, trust_protocol="magic")

    def test_display_name(self) -> None:
        network = PeerNetwork(self.reactor, display_name="alice")
        self.assertEqual(network.display_name, "alice")
        self.assertEqual(network.local_identity().message, "alice")
        self.assertEqual(PeerNetwork(self.reactor).local_identity().message, "connect")
        for bad in ("", "x" * 65, "a\nb"):
            self.assertRaises(ValueError, PeerNetwork, self.reactor, display_name=bad)


class WarningTests(SynchronousTestCase):
    """Each insecure choice logs one warning when a network is made; a secure one none."""

    def warnings(self, **kwargs: object) -> list[str]:
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        PeerNetwork(MemoryReactorClock(), **kwargs)  # type: ignore[arg-type]
        return [e["warning"] for e in logged if "warning" in e]

    def test_secure(self) -> None:
        self.assertEqual(self.warnings(), [])

    def test_tcp(self) -> None:
        [tcp] = self.warnings(transport="tcp", trust_protocol=always_trust)
        self.assertIn("plaintext", tcp)

    def test_ping(self) -> None:
        [ping] = self.warnings(trust_protocol="ping")
        self.assertIn("authenticates nothing", ping)

    def test_none(self) -> None:
        [none] = self.warnings(trust_protocol="none")
        self.assertIn("trust none", none)
        policy = IncomingPeerTrustPolicy(run_default_trust_protocol=False)
        self.assertEqual(len(self.warnings(policy=policy)), 1)

    def test_dotnet(self) -> None:
        dotnet, ping = self.warnings(wire="dotnet")
        self.assertIn("compatibility mode", dotnet)
        self.assertIn("authenticates nothing", ping)

    def test_each_mode_once(self) -> None:
        """tcp with ping: two warnings, one per choice, none twice."""
        lines = security_warnings(P2PNET, "tcp", ping_trust, IncomingPeerTrustPolicy())
        self.assertEqual(len(lines), 2)
        self.assertEqual(len(set(lines)), 2)
