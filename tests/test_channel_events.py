# -*- test-case-name: tests.test_channel_events -*-
"""
Channel events are safe to re-enter: the network learns that a channel is going before any of
its waiters does, so a waiter that reconnects from its callback or errback gets a new channel,
never the dying one.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits, ChannelOwner, PeerChannel
from p2pnet_tx.errors import ChannelClosed, HandshakeTimeout
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.testing import complete_tcp_connection
from p2pnet_tx.wire import get_codec

SERVER = GenericPeer("127.0.0.1", 8051)


class ReconnectFromWaiterTests(SynchronousTestCase):
    """A waiter of when_trusted() or when_closed() that reconnects dials afresh."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.server = PeerNetwork(self.reactor, transport="tcp", identifier="server",
                                  trust_protocol="none")
        self.server.listen("tcp:8051")
        # The client's handshake never decides: its channel stays untrusted until it closes.
        self.client = PeerNetwork(self.reactor, transport="tcp", identifier="client",
                                  trust_protocol=lambda channel: Deferred(),
                                  channel_limits=ChannelLimits(handshake_timeout=10.0))
        self.client.listen("tcp:8052")
        self.reconnects: list[Deferred[PeerChannel]] = []

    def dial(self, port: int = 40000) -> PeerChannel:
        d = self.client.connect(SERVER)
        pump = complete_tcp_connection(self.reactor, IPv4Address("TCP", "127.0.0.1", port))
        assert pump is not None
        pump.flush()
        self.pump = pump
        return self.successResultOf(d)

    def reconnect(self, result: Any) -> None:
        self.reconnects.append(self.client.connect(SERVER))

    def assert_new_channel(self, old: PeerChannel) -> None:
        [attempt] = self.reconnects
        self.assertNoResult(attempt)  # a real dial, not the old channel handed back
        self.assertEqual([client[1] for client in self.reactor.tcpClients], [8051])
        self.pump.flush()  # the server hears of the old connection's end first
        complete_tcp_connection(self.reactor, IPv4Address("TCP", "127.0.0.1", 40001)).flush()
        new = self.successResultOf(attempt)
        self.assertIsNot(new, old)
        self.assertFalse(new.is_closed)
        self.assertEqual(self.client.active_peer_channels, [new])

    def test_when_trusted_errback_on_peer_disconnect(self) -> None:
        """The peer closes an untrusted channel; the when_trusted() errback reconnects."""
        channel = self.dial()
        errors: list[Failure] = []
        channel.when_trusted().addErrback(lambda f: errors.append(f) or self.reconnect(f))
        [inbound] = self.server.active_peer_channels
        inbound.close("go away")
        self.pump.flush()
        [error] = errors
        self.assertTrue(error.check(ChannelClosed))
        self.assert_new_channel(channel)

    def test_when_trusted_errback_on_handshake_timeout(self) -> None:
        """The handshake times out; the when_trusted() errback reconnects."""
        channel = self.dial()
        errors: list[Failure] = []
        channel.when_trusted().addErrback(lambda f: errors.append(f) or self.reconnect(f))
        self.reactor.advance(10.0)
        [error] = errors
        self.assertTrue(error.check(HandshakeTimeout))
        self.assert_new_channel(channel)

    def test_when_closed_callback(self) -> None:
        """The connection goes away; the when_closed() callback reconnects."""
        channel = self.dial()
        channel.when_closed().addCallback(self.reconnect)
        channel.close("done")
        self.pump.flush()
        self.assertTrue(channel.is_closed)
        self.assert_new_channel(channel)

    def test_owner_learns_before_waiters(self) -> None:
        """When a waiter runs, the network has already forgotten the channel."""
        channel = self.dial()
        seen: list[list[PeerChannel]] = []
        channel.when_trusted().addErrback(
            lambda f: seen.append(list(self.client.active_peer_channels))
        )
        channel.abort("rude")
        self.assertEqual(seen, [[]])
        self.assertIsNone(self.client.channel_for(SERVER))


class ClosingFromCallbacksTests(SynchronousTestCase):
    """A close asked for from inside a callback of the channel takes effect at once."""

    def test_close_from_owner_trusted_callback(self) -> None:
        """
        close() from the owner's channel_trusted: send() is refused at once, the trust waiters
        fail, and the Disconnect goes out (Automat runs the close once the trust transition is
        over; the channel must not act open meanwhile).
        """
        seen: dict[str, object] = {}

        class Owner(ChannelOwner):
            def channel_trusted(self, channel: PeerChannel) -> None:
                channel.close("go away")
                seen["reason"] = channel.close_reason
                seen["sent"] = channel.send(PureMessagePacket("after close"))

        channel = PeerChannel("p2pnet", clock=Clock(), owner=Owner())
        transport = StringTransport()
        channel.makeConnection(transport)
        waiter = channel.when_trusted()
        channel.trust()
        self.assertEqual(seen, {"reason": "go away", "sent": False})
        self.failureResultOf(waiter, ChannelClosed)
        self.assertTrue(transport.disconnecting)
        sent = get_codec("p2pnet").decoder().feed(transport.value())
        self.assertEqual([type(packet).__name__ for packet in sent], ["DisconnectPacket"])

    def test_connect_fails_when_the_channel_closes_in_connection_made(self) -> None:
        """An observer that closes a new outbound channel makes connect() fail, and the next
        connect() dials afresh (the dial no longer waits forever on a dead channel)."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, transport="tcp", identifier="me", wire="dotnet",
                              trust_protocol="none")
        network.peer_added.add(lambda channel: channel.close("not wanted"))
        peer = GenericPeer("10.0.0.2", 9000)
        first = network.connect(peer)
        address = IPv4Address("TCP", "10.0.0.2", 9000)
        protocol = reactor.tcpClients[0][2].buildProtocol(address)
        protocol.makeConnection(StringTransport(peerAddress=address))
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(first, ChannelClosed)
        network.peer_added.clear()
        self.assertNoResult(network.connect(peer))
        self.assertEqual(len(reactor.tcpClients), 2)
