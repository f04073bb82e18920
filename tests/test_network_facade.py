"""
Tests for the L{p2pnet_tx.network.PeerNetwork} facade: wire modes, ports reported from
elsewhere, disconnect_all and close, broadcast past a send cap, channel_closed leaving no
trace, and observers that close the network while they are being notified.

Fake channels are driven through the channel-owner contract only (channel_connected,
identity_received, channel_trusted, channel_closed), and a fake's close() reports the close at
once, the most re-entrant a transport can be.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.internet.error import ConnectionDone
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import ChannelClosed, NetworkClosed, SendBufferFull
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.network.limits import NetworkLimits
from p2pnet_tx.packets import CollectionSharePacket, IdentifierPacket, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire_mode import DOTNET, P2PNET

from .network_fakes import FakeChannel


class FakePort:
    """A listening port that records whether it was stopped."""

    def __init__(self, port: int) -> None:
        self._address = IPv4Address("TCP", "0.0.0.0", port)
        self.stopped = False

    def getHost(self) -> IPv4Address:
        return self._address

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)


class FacadeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="me",
                                   trust_protocol=always_trust,
                                   limits=NetworkLimits(dial_burst=1, dial_rate=0.1))

    def join(self, identifier: str, host: str = "10.0.0.1", port: int = 9000,
             trusted: bool = True) -> FakeChannel:
        """An inbound fake channel whose peer is accepted (and trusted), as a channel would
        report it; closing it reports the close to the network at once."""
        channel = FakeChannel(host=host)
        channel.peer = GenericPeer(host, 40000)
        channel.on_close = self.lost
        self.network.channel_connected(channel)
        self.assertTrue(self.network.identity_received(channel, IdentifierPacket(
            "connect", port, "", source_origin_identifier=identifier)))
        if trusted:
            channel.trust()
            if channel.is_trusted:
                self.network.channel_trusted(channel)
        return channel

    def lost(self, channel: FakeChannel) -> None:
        if not channel.is_closed:
            channel.connection_lost()
            self.network.channel_closed(channel, channel.close_reason or "closed")

    def assert_empty(self) -> None:
        """No table of the network names any channel any more."""
        self.assertEqual((self.network.active_peer_channels, self.network.pending_channels,
                          self.network.trusted_peer_channels), ([], [], []))
        self.assertEqual(self.network.total_counters(), self.network.counters)
        for n in range(1, 4):
            self.assertIsNone(self.network.channel_for(GenericPeer("10.0.0.1", 9000 + n)))


class WireModeTests(SynchronousTestCase):
    """wire stays the mode's name; wire_mode is the object; bad names are ValueErrors."""

    def test_modes(self) -> None:
        """Strings and WireMode instances are accepted; unknown names are not."""
        reactor = MemoryReactorClock()
        dotnet = PeerNetwork(reactor, transport="tcp", identifier="me", wire="dotnet",
                             trust_protocol="ping")
        self.assertEqual((dotnet.wire, dotnet.wire_mode), ("dotnet", DOTNET))
        self.assertIsNone(dotnet.local_identity())
        native = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust, identifier="me",
                             wire=P2PNET)
        self.assertEqual((native.wire, native.wire_mode), ("p2pnet", P2PNET))
        with self.assertRaises(ValueError) as caught:
            PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust, identifier="me",
                        wire="json")
        self.assertIn("'json'", str(caught.exception))


class RecordingPortsReactor(MemoryReactorClock):
    """A memory reactor whose listening ports record being stopped."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> FakePort:
        super().listenTCP(port, factory, backlog, interface)
        listening = FakePort(port)
        self.ports.append(listening)
        return listening

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []


class PortTests(FacadeTestCase):
    """Ports opened elsewhere are reported, and forgotten when they close."""

    def test_port_closed(self) -> None:
        """The announced port falls back to the next one, then to 0."""
        first, second = FakePort(8051), FakePort(8052)
        self.network.port_opened(first)
        self.network.port_opened(second)
        self.assertEqual(self.network.local_identity().data, 8051)
        self.network.port_closed(first)
        self.assertEqual(self.network.listening_port, 8052)
        self.assertEqual(self.network.local_identity().data, 8052)
        self.network.port_closed(second)
        self.assertEqual(self.network.listening_port, 0)

    def test_close_stops_own_ports_only(self) -> None:
        """close() stops the ports listen() opened; a reported port is its opener's to stop."""
        reactor = RecordingPortsReactor()
        network = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust,
                              identifier="me")
        own = self.successResultOf(network.listen("tcp:8051"))
        reported = FakePort(8052)
        network.port_opened(reported)
        self.successResultOf(network.close())
        self.assertEqual((own.stopped, reported.stopped), (True, False))
        self.assertEqual(network.listening_port, 0)


class DisconnectAllTests(FacadeTestCase):
    """disconnect_all() closes everything but leaves the network usable; close() is final."""

    def test_closes_channels_and_dials(self) -> None:
        """Channels close, the dial under way and the put-off one are cancelled."""
        channels = [self.join(f"p{n}", port=9000 + n) for n in range(2)]
        dial = self.network.connect(GenericPeer("10.0.0.9", 1))
        self.network.process_peer_list(CollectionSharePacket(100, [
            GenericPeer("10.0.0.10", 1), GenericPeer("10.0.0.11", 1)]))
        self.assertEqual(len(self.reactor.tcpClients), 2)  # one dial put off
        done = self.network.disconnect_all()
        self.successResultOf(done)
        self.failureResultOf(dial)
        self.assertEqual([c.close_reason for c in channels], ["node stopping"] * 2)
        self.reactor.advance(3600)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.assert_empty()

    def test_waits_for_connections(self) -> None:
        """The Deferred fires once every connection is gone, not when asked to close."""
        channel = self.join("slow")
        channel.on_close = None
        done = self.network.disconnect_all("maintenance")
        self.assertNoResult(done)
        self.lost(channel)
        self.successResultOf(done)
        self.assertEqual(channel.close_reason, "maintenance")

    def test_usable_afterwards(self) -> None:
        """After disconnect_all, listen and connect work again, unlike after close."""
        self.join("p1")
        self.successResultOf(self.network.disconnect_all())
        self.successResultOf(self.network.listen("tcp:8051"))
        dial = self.network.connect(GenericPeer("10.0.0.9", 1))
        self.assertNoResult(dial)
        self.assertIsNotNone(self.join("p2"))
        self.successResultOf(self.network.close())
        self.failureResultOf(dial)
        self.failureResultOf(self.network.connect(GenericPeer("10.0.0.9", 2)), NetworkClosed)
        self.failureResultOf(self.network.listen("tcp:8052"), NetworkClosed)


class BroadcastTests(FacadeTestCase):
    """A channel whose send raises SendBufferFull is skipped and counted, not fatal."""

    def test_skips_full_channels(self) -> None:
        """The others get the packet; the count says how many took it; one debug event."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        full, reader, other = (self.join(f"p{n}", port=9000 + n) for n in range(3))
        full.send_error = SendBufferFull(70_000_000, 64 * 2**20)
        other.send_error = SendBufferFull(70_000_000, 64 * 2**20)
        packet = PureMessagePacket("hi")
        self.assertEqual(self.network.broadcast(packet), 1)
        self.assertEqual(reader.sent[-1], packet)
        self.assertEqual(self.network.counters["broadcast_skipped"], 2)
        skipped = [e for e in events if e.get("count") == 2]
        self.assertEqual(len(skipped), 1)
        self.assertEqual(skipped[0]["log_level"].name, "debug")

    def test_untrusted_not_sent(self) -> None:
        """Untrusted channels are not broadcast to."""
        channel = self.join("p1", trusted=False)
        self.assertEqual(self.network.broadcast(PureMessagePacket("hi")), 0)
        self.assertEqual(channel.sent, [])

    def test_peer_list_to_full_channel(self) -> None:
        """The peer list sent on trust to a channel over its cap is skipped, trust goes on."""
        trusted: list[Any] = []
        self.network.peer_trusted.add(trusted.append)
        channel = self.join("p1", trusted=False)
        channel.send_error = SendBufferFull(70_000_000, 64 * 2**20)
        channel.trust()
        self.network.channel_trusted(channel)
        self.assertEqual(trusted, [channel])
        self.assertEqual(self.network.counters["peer_lists_skipped"], 1)
        self.assertEqual(self.network.trusted_peer_channels, [channel])


class ChannelClosedTests(FacadeTestCase):
    """channel_closed leaves no trace: whoever hears of it can reconnect at once."""

    def test_no_trace(self) -> None:
        """After the close, the peer is unknown to every table and connect() dials afresh."""
        channel = self.join("p1")
        peer = channel.peer
        channel.close("bye")
        self.assert_empty()
        self.assertIsNone(self.network.channel_for(peer))
        self.assertNoResult(self.network.connect(peer))
        self.assertEqual(self.reactor.tcpClients[-1][:2], ("10.0.0.1", 9000))

    def test_reconnect_from_peer_removed(self) -> None:
        """A peer_removed observer that reconnects gets a new dial, not the dying channel."""
        attempts: list[Deferred[Any]] = []
        self.network.peer_removed.add(
            lambda channel: attempts.append(self.network.connect(channel.peer)))
        self.join("p1").close("bye")
        [attempt] = attempts
        self.assertNoResult(attempt)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_reconnect_from_dial_errback(self) -> None:
        """A connect() caller whose dial ends in a close, and who reconnects, dials again: the
        dying channel no longer holds the only outbound slot."""
        self.network = PeerNetwork(self.reactor, transport="tcp", trust_protocol=always_trust,
                                   identifier="me",
                                   limits=NetworkLimits(max_outbound=1))
        peer = GenericPeer("10.0.0.9", 9000)
        attempts: list[Deferred[Any]] = []
        failures: list[type] = []

        def reconnect(failure: Failure) -> None:
            failures.append(failure.type)
            attempts.append(self.network.connect(peer))

        self.network.connect(peer).addErrback(reconnect)
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        wrapper = factory.buildProtocol(IPv4Address("TCP", host, port))
        wrapper.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, port)))
        wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(failures, [ChannelClosed])
        [attempt] = attempts
        self.assertNoResult(attempt)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.assert_empty()


    def test_trust_reported_after_close(self) -> None:
        """A trust reported for a channel already gone is ignored: it is not shared."""
        channel = self.join("p1", trusted=False)
        channel.close("bye")
        channel.is_trusted = True
        self.network.channel_trusted(channel)
        self.assertEqual(self.network.counters["handshakes_ok"], 0)
        newcomer = self.join("p2", port=9002)
        [peer_list] = [p for p in newcomer.sent if isinstance(p, CollectionSharePacket)]
        self.assertEqual(peer_list.peers, [])


class ReentrantObserverTests(FacadeTestCase):
    """An observer that closes the network while notified does no harm."""

    def check(self, event: str, stop: str) -> None:
        errors = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        later: list[Any] = []
        others = [self.join("p1", port=9001)]
        observers = getattr(self.network, event)

        def stop_once(*args: Any) -> None:
            observers.remove(stop_once)
            getattr(self.network, stop)()

        observers.add(stop_once)
        observers.add(lambda *args: later.append(args))
        channel = self.join("p2", port=9002)
        if event == "peer_removed":
            channel.close("bye")
        self.assertTrue(later, "the next observer did not run")
        self.assertTrue(channel.is_closed and all(c.is_closed for c in others))
        self.assert_empty()
        self.assertEqual([e for e in errors if "log_failure" in e], [])
        newcomer = self.join("p9", port=9009)
        [peer_list] = [p for p in newcomer.sent if isinstance(p, CollectionSharePacket)]
        self.assertEqual(peer_list.peers, [])  # no closed peer is shared
        if stop == "close":
            self.failureResultOf(self.network.connect(GenericPeer("10.0.0.9", 1)), NetworkClosed)
            self.assertEqual(self.network.inbound_refusal("10.0.0.1"), "network closed")
        else:
            self.assertNoResult(self.network.connect(GenericPeer("10.0.0.9", 1)))
            self.assertIsNone(self.network.inbound_refusal("10.0.0.1"))

    def test_peer_added_close(self) -> None:
        """peer_added observer calling close()."""
        self.check("peer_added", "close")

    def test_peer_added_disconnect_all(self) -> None:
        """peer_added observer calling disconnect_all()."""
        self.check("peer_added", "disconnect_all")

    def test_peer_trusted_close(self) -> None:
        """peer_trusted observer calling close()."""
        self.check("peer_trusted", "close")

    def test_peer_trusted_disconnect_all(self) -> None:
        """peer_trusted observer calling disconnect_all()."""
        self.check("peer_trusted", "disconnect_all")

    def test_peer_removed_close(self) -> None:
        """peer_removed observer calling close()."""
        self.check("peer_removed", "close")

    def test_peer_removed_disconnect_all(self) -> None:
        """peer_removed observer calling disconnect_all()."""
        self.check("peer_removed", "disconnect_all")


class RealChannelReentrancyTests(SynchronousTestCase):
    """The same observers, with real channels connected in memory: nothing is left behind."""

    def check(self, event: str, stop: str) -> None:
        from .test_network import Nodes

        errors = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        nodes = Nodes()
        server, client, third = (nodes.node(name, port) for name, port in
                                 (("server", 8051), ("client", 8052), ("third", 8053)))
        _, first_pump = nodes.dial(third, server, source_port=40001)
        observers = getattr(server, event)
        later: list[Any] = []

        def stop_once(*args: Any) -> None:
            observers.remove(stop_once)
            getattr(server, stop)()

        observers.add(stop_once)
        observers.add(lambda *args: later.append(args))
        _, pump = nodes.dial(client, server, source_port=40002)
        if event == "peer_removed":
            client.active_peer_channels[0].close("bye")
        for _ in range(3):
            pump.flush()
            first_pump.flush()
        self.assertTrue(later, "the next observer did not run")
        for network in (server, client, third):
            self.assertEqual((network.active_peer_channels, network.pending_channels), ([], []))
        self.assertEqual([e for e in errors if "log_failure" in e], [])

    def test_peer_added(self) -> None:
        """peer_added observers calling close() or disconnect_all()."""
        self.check("peer_added", "close")
        self.check("peer_added", "disconnect_all")

    def test_peer_trusted(self) -> None:
        """peer_trusted observers calling close() or disconnect_all()."""
        self.check("peer_trusted", "close")
        self.check("peer_trusted", "disconnect_all")

    def test_peer_removed(self) -> None:
        """peer_removed observers calling close() or disconnect_all()."""
        self.check("peer_removed", "close")
        self.check("peer_removed", "disconnect_all")
