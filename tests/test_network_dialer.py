"""
Tests for L{p2pnet_tx.network.dialer}: connect(), its dedupe and cancellation, the dial budget,
and the retry of put-off dials on one timer, on a L{MemoryReactorClock}, no sockets.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet._resolver import HostResolution
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import IHostnameResolver, IReactorPluggableNameResolver
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from p2pnet_tx.errors import (
    ChannelClosed,
    NetworkClosed,
    PeerBlocked,
    SelfConnection,
    TooManyPeers,
)
from p2pnet_tx.network.dialer import Dialer
from p2pnet_tx.network.limits import NetworkLimits
from p2pnet_tx.network.local import LocalNode
from p2pnet_tx.network.table import PeerTable
from p2pnet_tx.peer import GenericPeer, HostnamePeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.wire_mode import P2PNET

from .network_fakes import FakeChannel


class DialledChannel(FakeChannel, Protocol):
    """A fake channel that a client endpoint can connect; C{on_connection} is called then."""

    on_connection: Any = None

    def connectionMade(self) -> None:
        if self.on_connection is not None:
            self.on_connection(self)


class FakeMembership:
    """Records the channels whose acceptance is awaited; the test decides each outcome."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Any, Deferred[Any]]] = []

    def when_accepted(self, channel: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append((channel, d))
        return d


class FakeChannelMaker:
    """Builds L{DialledChannel}s and records them; marks them outbound in the table."""

    def __init__(self, table: PeerTable) -> None:
        self.table = table
        self.made: list[tuple[bool, Any]] = []

    on_connection: Any = None

    def make(self, outbound: bool, peer: Any = None) -> DialledChannel:
        channel = DialledChannel(peer)
        channel.on_connection = self.on_connection
        self.made.append((outbound, peer))
        if outbound:
            self.table.mark_outbound(channel)
        return channel


def peer(n: int, identifier: str | None = None) -> GenericPeer:
    return GenericPeer(f"10.0.0.{n}", 8000 + n, identifier)


class DialerTestCase(SynchronousTestCase):
    limits = NetworkLimits()

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.table = PeerTable(max_known_peers=100)
        self.policy = IncomingPeerTrustPolicy()
        self.local = LocalNode(self.reactor, "me", P2PNET)
        self.membership = FakeMembership()
        self.channels = FakeChannelMaker(self.table)
        self.counters: Counter[str] = Counter()
        self.dialer = Dialer(
            self.reactor, limits=self.limits, policy=self.policy, local=self.local,
            table=self.table, membership=self.membership,  # type: ignore[arg-type]
            channels=self.channels, counters=self.counters,  # type: ignore[arg-type]
        )

    def dialled(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def complete(self, index: int = 0) -> DialledChannel:
        """Make the connection of a pending dial; return the channel built for it."""
        host, port, factory, _, _ = self.reactor.tcpClients[index]
        wrapper = factory.buildProtocol(IPv4Address("TCP", host, port))
        wrapper.makeConnection(StringTransport())
        return wrapper._wrappedProtocol

    def refuse(self, index: int = 0) -> None:
        """Fail the connection of a pending dial."""
        _, _, factory, _, _ = self.reactor.tcpClients[index]
        factory.clientConnectionFailed(
            self.reactor.connectors[index], Failure(ConnectionRefusedError())
        )


class ConnectTests(DialerTestCase):
    """connect() validates, dedupes, waits for acceptance, and can be cancelled."""

    def test_refusals_fail_without_dialling(self) -> None:
        """Non-peers, blocked peers and this node fail at once; nothing is dialled."""
        self.policy.blocked_ips.add("10.0.0.7")
        self.local.port_opened(_Port("0.0.0.0", 8051))
        self.failureResultOf(self.dialer.connect(("10.0.0.1", 1)), TypeError)  # type: ignore
        self.failureResultOf(self.dialer.connect(peer(7)), PeerBlocked)
        self.failureResultOf(self.dialer.connect(GenericPeer("10.0.0.1", 1, "me")), SelfConnection)
        self.failureResultOf(self.dialer.connect(GenericPeer("127.0.0.1", 8051)), SelfConnection)
        self.assertEqual(self.dialled(), [])

    def test_waits_for_acceptance(self) -> None:
        """The result is the channel once membership accepts its peer, not on connection."""
        d = self.dialer.connect(peer(1))
        channel = self.complete()
        self.assertNoResult(d)
        [(waited, accepted)] = self.membership.waiting
        self.assertIs(waited, channel)
        self.assertEqual(self.channels.made, [(True, peer(1))])
        accepted.callback(channel)
        self.assertIs(self.successResultOf(d), channel)
        self.assertFalse(self.dialer.is_dialing(peer(1)))

    def test_callers_share_one_dial(self) -> None:
        """Concurrent callers share one dial; cancelling one leaves the other waiting."""
        first, second = self.dialer.connect(peer(1)), self.dialer.connect(peer(1))
        self.assertEqual(len(self.dialled()), 1)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        self.assertNoResult(second)
        second.cancel()
        self.failureResultOf(second, CancelledError, ConnectingCancelledError)
        self.assertFalse(self.dialer.is_dialing(peer(1)))

    def test_cancel_after_connection_aborts_channel(self) -> None:
        """Cancelling once connected (peer not yet accepted) aborts the channel."""
        d = self.dialer.connect(peer(1))
        channel = self.complete()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(channel.events, [("abort", "connection attempt cancelled")])

    def test_failed_dial_forgotten_before_callers_hear(self) -> None:
        """A caller whose errback reconnects starts a new dial, not the dead one."""
        again: list[Deferred[Any]] = []
        d = self.dialer.connect(peer(1))
        d.addErrback(lambda f: again.append(self.dialer.connect(peer(1))))
        channel = self.complete()
        self.membership.waiting[0][1].errback(ChannelClosed("gone"))
        self.assertEqual(channel.events, [])
        self.assertEqual(len(again), 1)
        self.assertNoResult(again[0])
        self.assertEqual(self.dialled(), [("10.0.0.1", 8001)] * 2)

    def test_connected_peer_returned(self) -> None:
        """A peer with an active channel gets that channel, no dial."""
        channel = FakeChannel(peer(1, "one"))
        self.table.connect(channel, None)
        self.table.activate(channel)
        self.assertIs(self.successResultOf(self.dialer.connect(peer(1))), channel)
        self.assertEqual(self.dialled(), [])


class OutboundLimitTests(DialerTestCase):
    """The outbound limit counts channels and dials still in flight."""

    limits = NetworkLimits(max_outbound=1)

    def test_dials_in_flight_count(self) -> None:
        """With one dial in flight and max_outbound=1, a second connect() is refused."""
        self.dialer.connect(peer(1))
        self.failureResultOf(self.dialer.connect(peer(2)), TooManyPeers)
        counted: list[int] = []
        self.channels.on_connection = lambda channel: counted.append(self.dialer.outbound_count)
        self.complete()
        self.assertEqual(counted, [1])  # while connecting: a channel, no longer also a dial
        self.assertEqual(self.dialer.outbound_count, 1)
        self.failureResultOf(self.dialer.connect(peer(2)), TooManyPeers)


class DeferredDialTests(DialerTestCase):
    """Dials put off by the budget are retried by one timer, at the bucket's next token."""

    limits = NetworkLimits(dial_burst=1, dial_rate=0.5, max_deferred_dials=3)

    def test_retried_when_a_token_is_due(self) -> None:
        """One timer, due when the next token is; put-off dials go oldest first, one a token."""
        self.assertTrue(self.dialer.maybe_dial(peer(1)))
        self.assertFalse(self.dialer.maybe_dial(peer(2)))
        self.assertFalse(self.dialer.maybe_dial(peer(3)))
        self.assertEqual(self.counters["dials_deferred"], 2)
        [call] = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), 2.0)
        self.reactor.advance(2.0)
        self.assertEqual(self.dialled(), [("10.0.0.1", 8001), ("10.0.0.2", 8002)])
        [call] = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), 4.0)
        self.reactor.advance(2.0)
        self.assertEqual(len(self.dialled()), 3)
        self.assertEqual(self.counters["dials_retried"], 2)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_put_off_again_is_one_entry(self) -> None:
        """A peer put off twice is retried once; the put-off list is bounded, oldest dropped."""
        self.dialer.maybe_dial(peer(1))
        for n in (2, 3, 2, 4, 5):
            self.dialer.maybe_dial(peer(n))
        self.assertEqual(self.dialer.put_off, [peer(2), peer(4), peer(5)])
        self.assertEqual(self.counters["deferred_dials_dropped"], 1)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)

    def test_retry_skips_what_changed(self) -> None:
        """A put-off peer since connected or blocked is not dialled; the token is kept."""
        self.dialer.maybe_dial(peer(1))
        for n in (2, 3, 4):
            self.dialer.maybe_dial(peer(n))
        connected = FakeChannel(peer(2))
        self.table.connect(connected, None)
        self.table.activate(connected)
        self.policy.blocked_ips.add("10.0.0.3")
        self.reactor.advance(2.0)
        self.assertEqual(self.dialled()[1:], [("10.0.0.4", 8004)])
        self.assertEqual(self.dialer.put_off, [])

    def test_cancel_all(self) -> None:
        """cancel_all() cancels the timer, the put-off dials and the dials in flight; the
        dialer still works afterwards."""
        self.assertTrue(self.dialer.maybe_dial(peer(1)))
        d = self.dialer.connect(peer(1))
        self.assertFalse(self.dialer.maybe_dial(peer(2)))
        self.dialer.cancel_all()
        self.failureResultOf(d, CancelledError, ConnectingCancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.dialer.put_off, [])
        self.reactor.advance(10)
        self.assertEqual(len(self.dialled()), 1)
        self.assertNoResult(self.dialer.connect(peer(3)))

    def test_close(self) -> None:
        """A closed dialer refuses connect() and puts nothing off."""
        self.dialer.maybe_dial(peer(1))
        self.dialer.maybe_dial(peer(2))
        self.dialer.close()
        self.failureResultOf(self.dialer.connect(peer(3)), NetworkClosed)
        self.assertFalse(self.dialer.maybe_dial(peer(4)))
        self.assertEqual((self.dialer.put_off, self.reactor.getDelayedCalls()), ([], []))


class DeferredByLimitTests(DialerTestCase):
    """Dials put off by the outbound limit wait for a slot, not for a timer."""

    limits = NetworkLimits(max_outbound=1)

    def test_retried_when_slot_frees(self) -> None:
        """No timer while the limit is reached; a failed dial frees the slot and the next goes."""
        self.dialer.maybe_dial(peer(1))
        self.dialer.maybe_dial(peer(2))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.refuse(0)
        self.assertEqual(self.counters["dials_failed"], 1)
        [call] = self.reactor.getDelayedCalls()
        self.reactor.advance(0)
        self.assertEqual(self.dialled()[-1], ("10.0.0.2", 8002))

    def test_slot_freed_by_closed_channel(self) -> None:
        """slot_freed(), on a closed outbound channel, lets a put-off dial go."""
        d = self.dialer.connect(peer(1))
        channel = self.complete()
        self.membership.waiting[0][1].callback(channel)
        self.successResultOf(d)
        self.dialer.maybe_dial(peer(2))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.table.remove(channel)
        self.dialer.slot_freed()
        self.reactor.advance(0)
        self.assertEqual(self.dialled()[-1], ("10.0.0.2", 8002))


class NeverRefillingBudgetTests(DialerTestCase):
    """A budget of burst 0 never dials on its own and sets no timer."""

    limits = NetworkLimits(dial_burst=0)

    def test_no_timer(self) -> None:
        """Put off for good: no timer is left that would never do anything."""
        self.assertFalse(self.dialer.maybe_dial(peer(1)))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.dialer.put_off, [peer(1)])


class _Port:
    """A listening port at C{host}:C{port}."""

    def __init__(self, host: str, port: int) -> None:
        self._address = IPv4Address("TCP", host, port)

    def getHost(self) -> IPv4Address:
        return self._address


@implementer(IHostnameResolver)
class FakeResolver:
    """Resolves the names in C{table} to their addresses at once; any other name to nothing."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def resolveHostName(self, receiver: Any, hostName: str, portNumber: int = 0,
                        addressTypes: Any = None, transportSemantics: str = "TCP") -> Any:
        self.asked.append(hostName)
        resolution = HostResolution(hostName)
        receiver.resolutionBegan(resolution)
        for address in self.table.get(hostName, []):
            kind = IPv6Address if ":" in address else IPv4Address
            receiver.addressResolved(kind("TCP", address, portNumber))
        receiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver)
class ResolvingReactor(MemoryReactorClock):
    """A memory reactor whose resolver is a L{FakeResolver}."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        super().__init__()
        self.nameResolver = FakeResolver(table)

    def installNameResolver(self, resolver: Any) -> Any:
        previous, self.nameResolver = self.nameResolver, resolver
        return previous


class HostnameDialTests(DialerTestCase):
    """A L{HostnamePeer} is resolved through the reactor's resolver when dialled, and its
    channel knows the peer by the address reached, never by the name."""

    def setUp(self) -> None:
        super().setUp()
        self.reactor = ResolvingReactor({"node.test": ["10.0.0.5"], "me.test": ["127.0.0.1"]})
        self.local = LocalNode(self.reactor, "me", P2PNET)
        self.dialer = Dialer(
            self.reactor, limits=self.limits, policy=self.policy, local=self.local,
            table=self.table, membership=self.membership,  # type: ignore[arg-type]
            channels=self.channels, counters=self.counters,  # type: ignore[arg-type]
        )

    def test_name_resolved_and_peer_is_the_address(self) -> None:
        """The name is looked up once; the address it names is dialled; the channel's peer is
        a GenericPeer of that address (with the identifier the name was given)."""
        d = self.dialer.connect(HostnamePeer("node.test", 8051, "id-5"))
        self.assertEqual(self.reactor.nameResolver.asked, ["node.test"])
        self.assertEqual(self.dialled(), [("10.0.0.5", 8051)])
        channel = self.complete()
        self.assertEqual(self.channels.made, [(True, GenericPeer("10.0.0.5", 8051, "id-5"))])
        self.membership.waiting[0][1].callback(channel)
        self.assertIs(self.successResultOf(d), channel)

    def test_unknown_name_fails_with_dns_error(self) -> None:
        """A name that resolves to nothing fails the dial with DNSLookupError; nothing is
        dialled and nothing is left pending."""
        d = self.dialer.connect(HostnamePeer("nowhere.test", 8051))
        failure = self.failureResultOf(d, DNSLookupError)
        self.assertIn("nowhere.test", failure.getErrorMessage())
        self.assertEqual(self.dialled(), [])
        self.assertFalse(self.dialer.is_dialing(HostnamePeer("nowhere.test", 8051)))

    def test_blocked_address_refused_before_a_byte(self) -> None:
        """A name that resolves to a blocked address fails with PeerBlocked: no channel is
        built, so nothing is sent."""
        self.policy.blocked_ips.add("10.0.0.5")
        d = self.dialer.connect(HostnamePeer("node.test", 8051))
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        transport = StringTransport()
        wrapper = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.assertIsNone(wrapper)
        self.reactor.advance(1)  # HostnameEndpoint's next attempt: there is none
        failure = self.failureResultOf(d, PeerBlocked)
        self.assertIn("10.0.0.5", failure.getErrorMessage())
        self.assertEqual(self.channels.made, [])
        self.assertEqual(transport.value(), b"")

    def test_name_of_this_node_refused(self) -> None:
        """A name that resolves to this node's own listening address fails with
        SelfConnection (a kept peer then gives up)."""
        self.local.port_opened(_Port("0.0.0.0", 8051))
        d = self.dialer.connect(HostnamePeer("me.test", 8051))
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", host, port)))
        self.reactor.advance(1)
        self.failureResultOf(d, SelfConnection)
