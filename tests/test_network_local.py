"""
Tests for L{p2pnet_tx.network.local}: this node's ports, its Identity packet, and whether an
address is its own.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.network.local import DEFAULT_BACKLOG, LocalNode
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.wire_mode import DOTNET, P2PNET


class FakePort:
    """A listening port at C{host}:C{port}."""

    def __init__(self, host: str, port: int) -> None:
        self._address = IPv4Address("TCP", host, port)

    def getHost(self) -> IPv4Address:
        return self._address


class LocalNodeTests(SynchronousTestCase):
    """The first open port is announced; closing it announces the next, or 0."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.local = LocalNode(self.reactor, "me", P2PNET)

    def test_port_closed_falls_back(self) -> None:
        """Closing the announced port announces the next one left, then 0."""
        first, second = FakePort("0.0.0.0", 8051), FakePort("0.0.0.0", 8052)
        self.local.port_opened(first)
        self.local.port_opened(second)
        self.assertEqual(self.local.listening_port, 8051)
        self.local.port_closed(first)
        self.assertEqual(self.local.listening_port, 8052)
        self.local.port_closed(first)  # twice: no harm
        self.local.port_closed(second)
        self.assertEqual(self.local.listening_port, 0)
        self.assertFalse(self.local.is_self(GenericPeer("127.0.0.1", 8052)))

    def test_closing_another_port_keeps_announced(self) -> None:
        """Closing a port that is not announced changes nothing peers see."""
        first, second = FakePort("0.0.0.0", 8051), FakePort("::", 8052)
        self.local.port_opened(first)
        self.local.port_opened(second)
        self.local.port_closed(second)
        self.assertEqual(self.local.listening_port, 8051)

    def test_is_self(self) -> None:
        """Our identifier, or our port on a listening (or, for a wildcard, loopback) address."""
        self.local.port_opened(FakePort("0.0.0.0", 8051))
        self.assertTrue(self.local.is_self(GenericPeer("10.0.0.1", 1, "me")))
        self.assertTrue(self.local.is_self(GenericPeer("127.0.0.1", 8051)))
        self.assertFalse(self.local.is_self(GenericPeer("10.0.0.1", 8051)))
        self.assertFalse(self.local.is_self(GenericPeer("127.0.0.1", 8052)))

    def test_identity(self) -> None:
        """p2pnet opens with an Identity naming our listening port; dotnet sends none."""
        self.local.port_opened(FakePort("0.0.0.0", 8051))
        packet = self.local.identity()
        self.assertEqual((packet.data, packet.source_origin_identifier), (8051, "me"))
        self.assertIsNone(LocalNode(self.reactor, "me", DOTNET).identity())

    def test_listen(self) -> None:
        """A TCP listen gets the default backlog; a bad endpoint is a failed Deferred."""
        self.local.listen("tcp:8051", Factory())
        self.assertEqual(self.reactor.tcpServers[0][2], DEFAULT_BACKLOG)
        failure = self.failureResultOf(self.local.listen("nonsense:1", Factory()), ValueError)
        self.assertIn("nonsense:1", str(failure.value))

    def test_forget_ports(self) -> None:
        """forget_ports forgets every port and hands over those the network opened itself."""
        own, reported = FakePort("0.0.0.0", 8051), FakePort("0.0.0.0", 8052)
        self.local.port_opened(own, own=True)
        self.local.port_opened(reported)
        self.assertEqual(self.local.forget_ports(), [own])
        self.assertEqual((self.local.forget_ports(), self.local.listening_port), ([], 0))

    def test_own_port_closed(self) -> None:
        """An own port reported closed is no longer handed over to be stopped."""
        own = FakePort("0.0.0.0", 8051)
        self.local.port_opened(own, own=True)
        self.local.port_closed(own)
        self.assertEqual(self.local.forget_ports(), [])
