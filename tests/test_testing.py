# -*- test-case-name: tests.test_testing -*-
"""
Tests for L{p2pnet_tx.testing}: the fakes p2pnet_tx ships for its users' tests.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.testing import (
    CLIENT_ADDRESS,
    SERVER_ADDRESS,
    RecordingHandler,
    connected_channels,
)
from p2pnet_tx.trust import always_trust


class ConnectedChannelsTests(SynchronousTestCase):
    """connected_channels joins two channels in memory, as a user's test would."""

    def test_exchange_a_message(self) -> None:
        """A message sent on the client reaches the server's handler once the pump flushes."""
        clock = Clock()
        handlers = PacketHandleProtocol()
        received = RecordingHandler()
        handlers.set_handler(PacketType.MESSAGE, received)

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", handlers, always_trust, clock=clock)

        server, client, pump = connected_channels(make, make, clock)
        self.assertTrue(server.is_trusted and client.is_trusted)
        client.send_message("hello, server")
        self.assertEqual(received.calls, [])
        pump.flush()
        [(channel, packet)] = received.calls
        self.assertIs(channel, server)
        self.assertEqual(packet.message, "hello, server")

    def test_addresses(self) -> None:
        """The server sits at 127.0.0.1:8051 and the client at 127.0.0.2:40001."""
        clock = Clock()

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", clock=clock)

        server, client, _ = connected_channels(make, make, clock)
        self.assertEqual(server.transport.getHost(), SERVER_ADDRESS)
        self.assertEqual(client.transport.getHost(), CLIENT_ADDRESS)
        self.assertEqual(server.peer, GenericPeer("127.0.0.2", 40001))
        self.assertEqual(client.peer, GenericPeer("127.0.0.1", 8051))

    def test_pump_advances_clock(self) -> None:
        """Each pump lets the shared clock run pending zero-delay calls."""
        clock = Clock()
        ran: list[bool] = []

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", clock=clock)

        _, _, pump = connected_channels(make, make, clock)
        clock.callLater(0, ran.append, True)
        pump.pump()
        self.assertEqual(ran, [True])


class RecordingHandlerTests(SynchronousTestCase):
    """RecordingHandler records what it is given and returns what it was told."""

    def test_records(self) -> None:
        """Calls are recorded as (channel, packet); packets lists the packets in order."""
        handler = RecordingHandler(result="answer")
        first, second = PureMessagePacket("one"), PureMessagePacket("two")
        self.assertEqual(handler(None, first), "answer")  # type: ignore[arg-type]
        handler(None, second)  # type: ignore[arg-type]
        self.assertEqual(handler.calls, [(None, first), (None, second)])
        self.assertEqual(handler.packets, [first, second])
