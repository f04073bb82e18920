"""
Tests for L{p2pnet_tx.service}: the node service, its listeners, its kept peers and its saved
state.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from p2pnet_tx.datadir import DataDirError, NodeDataDir
from p2pnet_tx.errors import NetworkClosed, PeerBlocked, SelfConnection
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.peer import GenericPeer, HostnamePeer
from p2pnet_tx.service import (
    SAVE_DELAY,
    ControlService,
    ListenerService,
    PeerConnectionService,
    PeerKeeper,
    PeerListenerService,
    PeerNetworkService,
    doubling_backoff,
)
from p2pnet_tx.testing import complete_tcp_connection
from p2pnet_tx.trust import always_trust

PEER = GenericPeer("10.0.0.9", 8051)


# -- Fakes --------------------------------------------------------------------------------------


class FakeChannel:
    """A channel as a kept peer sees it: trust and close events, and a close() call."""

    def __init__(self) -> None:
        self.trusted_waiters: list[Deferred[FakeChannel]] = []
        self.closed_waiters: list[Deferred[str]] = []
        self.close_reasons: list[str] = []

    def when_trusted(self) -> Deferred[FakeChannel]:
        self.trusted_waiters.append(Deferred())
        return self.trusted_waiters[-1]

    def when_closed(self) -> Deferred[str]:
        self.closed_waiters.append(Deferred())
        return self.closed_waiters[-1]

    def close(self, reason: str) -> Deferred[str]:
        self.close_reasons.append(reason)
        return self.when_closed()

    def trust(self) -> None:
        waiting, self.trusted_waiters = self.trusted_waiters, []
        for waiter in waiting:
            waiter.callback(self)

    def lose(self, reason: str = "lost") -> None:
        from p2pnet_tx.errors import ChannelClosed

        waiting, self.trusted_waiters = self.trusted_waiters, []
        for waiter in waiting:
            waiter.errback(ChannelClosed(reason))
        closing, self.closed_waiters = self.closed_waiters, []
        for waiter in closing:
            waiter.callback(reason)


class FakeNetwork:
    """A dialer that records each connect() and lets the test decide how it ends."""

    def __init__(self) -> None:
        self.dials: list[Deferred[Any]] = []
        self.cancelled = 0
        self.answer: Deferred[Any] | None = None

    def connect(self, peer: GenericPeer) -> Deferred[Any]:
        if self.answer is not None:
            return self.answer

        def cancel(d: Deferred[Any]) -> None:
            self.cancelled += 1

        self.dials.append(Deferred(cancel))
        return self.dials[-1]


def pending_delays(clock: Clock) -> list[float]:
    return [call.getTime() - clock.seconds() for call in clock.getDelayedCalls()]


# -- Kept peers ---------------------------------------------------------------------------------


class PeerConnectionServiceTests(SynchronousTestCase):
    """A kept peer is redialled with backoff, reset by trust, let go on stop."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.network = FakeNetwork()
        self.service = PeerConnectionService(
            self.network, PEER, self.clock, doubling_backoff(1.0, 8.0)
        )
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def fail_dial(self, error: Exception | None = None) -> float:
        """Fail the latest dial; return the delay before the next one."""
        self.network.dials[-1].errback(error or ConnectionRefusedError())
        [delay] = pending_delays(self.clock)
        return delay

    def connect(self) -> FakeChannel:
        channel = FakeChannel()
        self.network.dials[-1].callback(channel)
        return channel

    def test_backoff_sequence(self) -> None:
        """Failed dials are retried after 1, 2, 4, 8, 8 seconds, one dial at a time."""
        self.service.startService()
        delays = []
        for attempt in range(1, 6):
            self.assertEqual(len(self.network.dials), attempt)
            delays.append(self.fail_dial())
            self.clock.advance(delays[-1] / 2)
            self.assertEqual(len(self.network.dials), attempt)
            self.clock.advance(delays[-1] / 2)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 8.0])

    def test_connection_alone_does_not_reset(self) -> None:
        """A peer that accepts and closes before trusting us is redialled ever slower."""
        self.service.startService()
        delays = []
        for _ in range(3):
            channel = self.connect()
            self.assertIs(self.service.channel, channel)
            channel.lose("refused")
            [delay] = pending_delays(self.clock)
            delays.append(delay)
            self.clock.advance(delay)
        self.assertEqual(delays, [1.0, 2.0, 4.0])
        self.assertIsNone(self.service.channel)

    def test_trust_resets_backoff(self) -> None:
        """Once the peer trusts us, losing it is retried after the initial delay again."""
        self.service.startService()
        self.clock.advance(self.fail_dial())
        self.clock.advance(self.fail_dial())
        channel = self.connect()
        channel.trust()
        channel.lose()
        self.assertEqual(pending_delays(self.clock), [1.0])

    def test_late_trust_of_old_channel_ignored(self) -> None:
        """A trust event of a channel no longer kept (delivered late) resets nothing, whether
        it arrives while dialling or while another channel is kept."""
        self.service.startService()
        channel = self.connect()
        stale = [channel.when_trusted(), channel.when_trusted()]
        channel.trusted_waiters.clear()  # as if delivered on a later turn
        channel.lose()
        self.clock.advance(1.0)
        stale[0].callback(channel)
        self.assertEqual(self.fail_dial(), 2.0)
        self.clock.advance(2.0)
        newer = self.connect()
        stale[1].callback(channel)
        newer.lose()
        self.assertEqual(pending_delays(self.clock), [4.0])

    def test_gives_up_on_self_and_blocked(self) -> None:
        """SelfConnection and PeerBlocked end the dialling, with an error logged."""
        for error in (SelfConnection("me", PEER), PeerBlocked("blocked", PEER)):
            self.service.startService()
            waiting = self.service.when_connected()
            self.network.dials[-1].errback(error)
            self.assertEqual(self.clock.getDelayedCalls(), [])
            self.failureResultOf(waiting, type(error))
            self.failureResultOf(self.service.when_connected(), type(error))
            errors = [e for e in self.logged if e["log_level"] == LogLevel.error]
            self.assertEqual(errors[-1]["why"], str(error))
            self.assertEqual(errors[-1]["peer"], PEER)
            self.clock.advance(1000)
            self.successResultOf(self.service.stopService())
        self.assertEqual(len(self.network.dials), 2)

    def test_restart_after_giving_up(self) -> None:
        """A peer given up on is dialled again when the service starts again."""
        self.service.startService()
        self.network.dials[-1].errback(PeerBlocked("blocked", PEER))
        self.successResultOf(self.service.stopService())
        self.service.startService()
        self.assertEqual(len(self.network.dials), 2)

    def test_stop_while_waiting(self) -> None:
        """Stopping during the wait cancels the retry and fires at once."""
        self.service.startService()
        self.fail_dial()
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(self.network.dials), 1)

    def test_stop_while_dialling(self) -> None:
        """Stopping during a dial cancels it; no retry follows."""
        self.service.startService()
        waiting = self.service.when_connected()
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.network.cancelled, 1)
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.service.running)

    def test_stop_while_connected(self) -> None:
        """Stopping closes the kept channel and fires once it is gone; no retry follows."""
        self.service.startService()
        channel = self.connect()
        self.assertIs(self.successResultOf(self.service.when_connected()), channel)
        stopped = self.service.stopService()
        self.assertEqual(channel.close_reasons, ["no longer kept"])
        self.assertNoResult(stopped)
        second = self.service.stopService()
        channel.lose("no longer kept")
        self.successResultOf(stopped)
        self.successResultOf(second)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.service.channel)
        self.assertEqual(len(self.network.dials), 1)

    def test_channel_delivered_despite_cancel(self) -> None:
        """A dial that delivers a channel although it was cancelled gets that channel closed,
        and the stop fires once it is gone."""
        channel = FakeChannel()
        self.network.answer = Deferred(lambda d: d.callback(channel))
        self.service.startService()
        stopped = self.service.stopService()
        self.assertEqual(channel.close_reasons, ["no longer kept"])
        self.assertNoResult(stopped)
        channel.lose()
        self.successResultOf(stopped)
        self.assertIsNone(self.service.channel)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_start_while_stopping(self) -> None:
        """A start during the close dials again once the channel is gone."""
        self.service.startService()
        channel = self.connect()
        stopped = self.service.stopService()
        self.service.startService()
        self.assertEqual(len(self.network.dials), 1)
        channel.lose()
        self.successResultOf(stopped)
        self.assertEqual(len(self.network.dials), 2)

    def test_restart_after_stop(self) -> None:
        """A stopped keeper starts again with a fresh backoff."""
        self.service.startService()
        self.clock.advance(self.fail_dial())
        self.clock.advance(self.fail_dial())
        self.successResultOf(self.service.stopService())
        self.service.startService()
        self.assertEqual(len(self.network.dials), 4)
        self.assertEqual(self.fail_dial(), 1.0)

    def test_existing_channel(self) -> None:
        """A dial answered at once with an open channel keeps that channel."""
        channel = FakeChannel()
        self.network.answer = succeed(channel)
        self.service.startService()
        self.assertIs(self.service.channel, channel)
        self.assertIs(self.successResultOf(self.service.when_connected()), channel)

    def test_refusal_answered_at_once(self) -> None:
        """A dial that fails at once (a fail() from connect) is given up on or retried."""
        self.network.answer = fail(SelfConnection("me", PEER))
        self.service.startService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(self.service.when_connected(), SelfConnection)
        self.network.answer = fail(NetworkClosed("closed"))
        self.successResultOf(self.service.stopService())
        self.service.startService()
        self.assertEqual(pending_delays(self.clock), [1.0])
        self.successResultOf(self.service.stopService())


class DotnetRefusalTests(SynchronousTestCase):
    """
    Issue 9, finding 4: after any close, an unmodified .NET node refuses our IP until it is
    restarted (PeerNetwork.cs: KnownPeers is never pruned; handleInboundConnection disposes
    a known IP's client at once).  The keeper of a dotnet network must not hammer it.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.network = FakeNetwork()
        self.network.wire = "dotnet"  # type: ignore[attr-defined]
        self.service = PeerConnectionService(
            self.network, PEER, self.clock, doubling_backoff(1.0, 8.0)
        )
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def refused(self, after: float = 0.0) -> float:
        """The latest dial connects; the peer closes after C{after} s; return the wait."""
        channel = FakeChannel()
        self.network.dials[-1].callback(channel)
        self.clock.advance(after)
        channel.lose("connection lost: Connection was closed cleanly.")
        [delay] = pending_delays(self.clock)
        self.clock.advance(delay)
        return delay

    def warnings(self) -> list[Any]:
        return [e for e in self.logged if e["log_level"] == LogLevel.warn]

    def test_backed_off_to_longest_and_logged_once(self) -> None:
        """From the 3rd refusal in a row on, the wait is the policy's longest (8 s here, not
        4), and one warning explains why, however many refusals follow."""
        self.service.startService()
        delays = [self.refused() for _ in range(6)]
        self.assertEqual(delays, [1.0, 2.0, 8.0, 8.0, 8.0, 8.0])
        [warning] = self.warnings()
        self.assertEqual((warning["peer"], warning["count"], warning["delay"]), (PEER, 3, 8.0))
        self.assertIn("KnownPeers", warning["log_format"])
        self.assertIn("restart", warning["log_format"])

    def test_trust_resets(self) -> None:
        """A peer that trusts us again (restarted) resets the count and the warning."""
        self.service.startService()
        for _ in range(3):
            self.refused()
        channel = FakeChannel()
        self.network.dials[-1].callback(channel)
        channel.trust()
        self.clock.advance(60)
        channel.lose()
        self.assertEqual(pending_delays(self.clock), [1.0])
        self.clock.advance(1.0)
        self.assertEqual([self.refused() for _ in range(3)], [2.0, 4.0, 8.0])
        self.assertEqual(len(self.warnings()), 2)

    def test_late_close_is_no_refusal(self) -> None:
        """A connection that lived past the refusal window before closing is no refusal: the
        ordinary backoff applies, and nothing is logged."""
        self.service.startService()
        delays = [self.refused(after=5.0) for _ in range(4)]
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0])
        self.assertEqual(self.warnings(), [])

    def test_dial_failures_are_no_refusals(self) -> None:
        """A .NET node that is down (the dial fails) is dialled with the ordinary backoff."""
        self.service.startService()
        delays = []
        for _ in range(3):
            self.network.dials[-1].errback(ConnectionRefusedError())
            [delay] = pending_delays(self.clock)
            delays.append(delay)
            self.clock.advance(delay)
        self.assertEqual(delays, [1.0, 2.0, 4.0])
        self.assertEqual(self.warnings(), [])

    def test_p2pnet_network_unchanged(self) -> None:
        """The p2pnet wire keeps its ordinary backoff for the same closes."""
        self.network.wire = "p2pnet"  # type: ignore[attr-defined]
        self.service = PeerConnectionService(
            self.network, PEER, self.clock, doubling_backoff(1.0, 8.0)
        )
        self.service.startService()
        self.assertEqual([self.refused() for _ in range(4)], [1.0, 2.0, 4.0, 8.0])
        self.assertEqual(self.warnings(), [])

    def test_real_networks(self) -> None:
        """The rule follows the network's wire: on for a dotnet network, off for p2pnet."""
        from twisted.internet.testing import MemoryReactorClock

        from p2pnet_tx.network import PeerNetwork

        reactor = MemoryReactorClock()
        dotnet = PeerNetwork(reactor, wire="dotnet", trust_protocol="ping")
        p2pnet = PeerNetwork(reactor)
        self.assertEqual(PeerConnectionService(dotnet, PEER, reactor)._core.refusal_limit, 3)
        self.assertIsNone(PeerConnectionService(p2pnet, PEER, reactor)._core.refusal_limit)


class HoldTests(SynchronousTestCase):
    """A kept peer removed by hand is held (not redialled) until it is released."""

    setUp = PeerConnectionServiceTests.setUp
    fail_dial = PeerConnectionServiceTests.fail_dial
    connect = PeerConnectionServiceTests.connect

    def test_hold_stops_redialling_until_release(self) -> None:
        """hold() closes the kept channel and dials no more, however long we wait; release()
        dials again at once."""
        self.service.startService()
        channel = self.connect()
        self.service.hold()
        self.assertEqual(channel.close_reasons, ["no longer kept"])
        channel.lose("removed")
        self.assertTrue(self.service.held)
        self.clock.advance(3600)
        self.assertEqual(len(self.network.dials), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.service.release()
        self.assertFalse(self.service.held)
        self.assertEqual(len(self.network.dials), 2)

    def test_hold_while_waiting_cancels_the_retry(self) -> None:
        """A held peer whose retry was pending is not dialled; a restart re-arms it."""
        self.service.startService()
        self.fail_dial()
        self.service.hold()
        self.clock.advance(60)
        self.assertEqual(len(self.network.dials), 1)
        self.successResultOf(self.service.stopService())
        self.service.startService()
        self.assertFalse(self.service.held)
        self.assertEqual(len(self.network.dials), 2)

    def test_keeps(self) -> None:
        """keeps() matches the kept channel, the same address and port, or the identifier."""
        self.service.startService()
        channel = self.connect()
        self.assertTrue(self.service.keeps(None, channel))
        self.assertTrue(self.service.keeps(GenericPeer("10.0.0.9", 8051, "x")))
        self.assertFalse(self.service.keeps(GenericPeer("10.0.0.9", 8052)))
        named = PeerConnectionService(self.network, HostnamePeer("node.test", 1, "id"),
                                      self.clock)
        self.assertTrue(named.keeps(GenericPeer("10.0.0.1", 2, "id")))
        self.assertTrue(named.keeps(HostnamePeer("node.test", 1)))
        self.assertFalse(named.keeps(GenericPeer("10.0.0.1", 1)))


class ServiceHoldTests(SynchronousTestCase):
    """The node holds the configured peers that keep a removed peer, and releases them when
    the peer is dialled by hand."""

    def test_hold_and_release_by_peer(self) -> None:
        clock = Clock()
        network = FakeNetwork()
        node = PeerNetworkService(PeerNetwork(MemoryReactorClock()), listen=FakeEndpoint())
        kept = PeerConnectionService(network, PEER, clock)
        other = PeerConnectionService(network, GenericPeer("10.0.0.10", 8051), clock)
        node.keepers = [kept, other]
        kept.startService()
        other.startService()
        channel = FakeChannel()
        network.dials[0].callback(channel)
        removed = type("Removed", (), {"peer": GenericPeer("10.0.0.9", 8051, "nine")})()
        self.assertEqual(node.hold_kept_peer(removed), 1)  # type: ignore[arg-type]
        channel.lose("removed")
        self.assertEqual((kept.held, other.held), (True, False))
        self.assertEqual(node.hold_kept_peer(removed), 0)  # type: ignore[arg-type]
        node.release_kept_peer(GenericPeer("10.0.0.10", 8051))
        self.assertTrue(kept.held)
        node.release_kept_peer(GenericPeer("10.0.0.9", 8051))
        self.assertFalse(kept.held)
        self.assertEqual(len(network.dials), 3)


class DeprecatedPeerKeeperTests(SynchronousTestCase):
    """PeerKeeper still builds a kept peer, and says it is deprecated."""

    def test_deprecated_alias(self) -> None:
        """PeerKeeper(network, peer, ...) warns and is a PeerConnectionService on the
        network's reactor."""
        reactor = MemoryReactorClock()
        network = PeerNetwork(reactor, display_name="me")
        keeper = PeerKeeper(network, PEER, max_delay=4.0)
        [warning] = self.flushWarnings([self.test_deprecated_alias])
        self.assertIs(warning["category"], DeprecationWarning)
        self.assertIn("use PeerConnectionService", warning["message"])
        self.assertIsInstance(keeper, PeerConnectionService)
        self.assertIs(keeper.clock, reactor)


class PeerConnectionServiceNetworkTests(SynchronousTestCase):
    """A kept peer against real networks in memory."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, display_name="me")

    def attempts(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def test_refused_connections_back_off(self) -> None:
        """Refused TCP connections are retried after 1, 2, 4, 4 seconds."""
        keeper = PeerConnectionService(self.network, PEER, self.reactor,
                                       doubling_backoff(max_delay=4.0))
        keeper.startService()
        completer = ConnectionCompleter(self.reactor)
        delays = []
        for _ in range(4):
            self.assertEqual(self.attempts(), [("10.0.0.9", 8051)])
            completer.failOnce()
            [delay] = pending_delays(self.reactor)
            delays.append(delay)
            self.reactor.advance(delay)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 4.0])
        self.successResultOf(keeper.stopService())

    def test_reconnects_after_loss(self) -> None:
        """A kept peer whose channel closes is dialled again after the initial delay."""
        server = PeerNetwork(self.reactor, display_name="server")
        server.listen("tcp:8051")
        keeper = PeerConnectionService(self.network, PEER, self.reactor)
        keeper.startService()
        pump = complete_tcp_connection(self.reactor)
        pump.flush()
        channel = keeper.channel
        self.assertIsNotNone(channel)
        self.assertTrue(channel.is_trusted)
        channel.close("test")
        pump.flush()
        self.assertIsNone(keeper.channel)
        self.reactor.advance(0.999)
        self.assertEqual(self.attempts(), [])
        self.reactor.advance(0.001)
        self.assertEqual(self.attempts(), [("10.0.0.9", 8051)])
        self.successResultOf(keeper.stopService())

    def test_untrusted_connection_does_not_reset_backoff(self) -> None:
        """A peer that accepts the connection but never trusts us is redialled ever slower."""
        server = PeerNetwork(self.reactor, transport="tcp", identifier="server",
                             trust_protocol="none")
        server.listen("tcp:8051")
        network = PeerNetwork(self.reactor, transport="tcp", identifier="me", trust_protocol="none")
        keeper = PeerConnectionService(network, PEER, self.reactor)
        keeper.startService()
        for delay in (1.0, 2.0, 4.0):
            pump = complete_tcp_connection(self.reactor)
            pump.flush()
            keeper.channel.close("refused")
            pump.flush()
            self.reactor.advance(delay - 0.001)
            self.assertEqual(self.attempts(), [])
            self.reactor.advance(0.001)
            self.assertEqual(len(self.attempts()), 1)
        self.successResultOf(keeper.stopService())

    def test_gives_up_on_self(self) -> None:
        """A kept peer that is this node is not dialled, nor retried."""
        keeper = PeerConnectionService(
            self.network, GenericPeer("10.0.0.1", 1, self.network.identifier), self.reactor)
        keeper.startService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.attempts(), [])
        self.assertIsNone(keeper.channel)
        self.failureResultOf(keeper.when_connected(), SelfConnection)


# -- Listeners ----------------------------------------------------------------------------------


class FakePort:
    """A listening port whose stopListening the test completes."""

    def __init__(self, port: int) -> None:
        self.address = IPv4Address("TCP", "127.0.0.1", port)
        self.stopping: Deferred[None] | None = None

    def getHost(self) -> IPv4Address:
        return self.address

    def stopListening(self) -> Deferred[None]:
        self.stopping = Deferred()
        return self.stopping


@implementer(IStreamServerEndpoint)
class FakeEndpoint:
    """An endpoint that answers each listen() with the next of C{answers}."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.listens = 0

    def listen(self, factory: Any) -> Deferred[Any]:
        self.listens += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Deferred):
            return answer
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)


class PeerListenerServiceTests(SynchronousTestCase):
    """The peer listener is a restartable StreamServerEndpointService that fails loudly."""

    def setUp(self) -> None:
        self.network = PeerNetwork(MemoryReactorClock(), transport="tcp",
                                   trust_protocol=always_trust, identifier="node")
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_is_a_stream_server_endpoint_service(self) -> None:
        """It is Twisted's own endpoint service."""
        listener = PeerListenerService(self.network, FakeEndpoint())
        self.assertIsInstance(listener, StreamServerEndpointService)
        self.assertIsInstance(listener, ListenerService)

    def test_failure_raised_at_every_start(self) -> None:
        """A listen that fails at once fails startService and privilegedStartService, each
        time; a later start listens again."""
        taken = CannotListenError("127.0.0.1", 8051, OSError(98, "Address already in use"))
        endpoint = FakeEndpoint(taken, taken, FakePort(8051))
        listener = PeerListenerService(self.network, endpoint, "tcp:8051")
        self.assertRaises(CannotListenError, listener.startService)
        self.assertFalse(listener.running)
        self.assertRaises(CannotListenError, listener.privilegedStartService)
        self.assertEqual(self.network.listening_port, 0)
        self.successResultOf(listener.stopService())
        listener.startService()
        self.assertEqual(endpoint.listens, 3)
        self.assertEqual(self.network.listening_port, 8051)

    def test_privileged_start_listens_once(self) -> None:
        """twistd's privilegedStartService then startService listen once."""
        endpoint = FakeEndpoint(FakePort(8051))
        listener = PeerListenerService(self.network, endpoint)
        listener.privilegedStartService()
        listener.startService()
        self.assertEqual(endpoint.listens, 1)

    def test_late_failure_reported(self) -> None:
        """A listen that fails after start returned is logged as an error naming the endpoint
        and fails when_listening."""
        later: Deferred[Any] = Deferred()
        listener = PeerListenerService(self.network, FakeEndpoint(later), "onion:80")
        listener.startService()
        waiting = listener.when_listening()
        self.assertNoResult(waiting)
        later.errback(CannotListenError("", 80, OSError("no tor")))
        self.failureResultOf(waiting, CannotListenError)
        [event] = [e for e in self.logged if e["log_level"] == LogLevel.error]
        self.assertEqual(event["endpoint"], "onion:80")
        self.assertIn("no tor", event["why"])
        self.successResultOf(listener.stopService())

    def test_stop_before_listening(self) -> None:
        """Stopping while the listen is under way cancels it, quietly."""
        cancelled = []
        later: Deferred[Any] = Deferred(cancelled.append)
        listener = PeerListenerService(self.network, FakeEndpoint(later))
        listener.startService()
        waiting = listener.when_listening()
        self.successResultOf(listener.stopService())
        self.assertEqual(cancelled, [later])
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual([e for e in self.logged if e["log_level"] >= LogLevel.error], [])

    def test_network_learns_of_port(self) -> None:
        """The network hears of the port once listening, and of its closing once it is
        closed; a restart listens again."""
        first, second = FakePort(8051), FakePort(8052)
        listener = PeerListenerService(self.network, FakeEndpoint(first, second))
        listener.startService()
        self.assertIs(self.successResultOf(listener.when_listening()), first)
        self.assertEqual(self.network.listening_port, 8051)
        stopped = listener.stopService()
        self.assertEqual(self.network.listening_port, 8051)  # until the port is closed
        self.assertNoResult(stopped)
        first.stopping.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(self.network.listening_port, 0)
        self.assertIsNone(listener.port)
        listener.startService()
        self.assertEqual(self.network.listening_port, 8052)


class ControlServiceTests(SynchronousTestCase):
    """The control API listener falls back when its default port is taken, and says where."""

    def make(self, reactor: Any, fallback: bool) -> tuple[ControlService, NodeDataDir]:
        from p2pnet_tx.control import ControlAPI, MessageLog

        data_dir = NodeDataDir(self.mktemp()).ensure()
        network = PeerNetwork(reactor, display_name="node")
        api = ControlAPI(network, "t", MessageLog(reactor))
        return ControlService(reactor, "tcp:8765:interface=127.0.0.1", api, data_dir,
                              fallback), data_dir

    def taken_reactor(self) -> MemoryReactorClock:
        class Taken(MemoryReactorClock):
            def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                          interface: str = "") -> Any:
                if port == 8765:
                    raise CannotListenError(interface, port, OSError(98, "in use"))
                return super().listenTCP(port, factory, backlog, interface)

        return Taken()

    def test_fallback(self) -> None:
        """A taken default endpoint falls back to a free loopback port, whose URL is written
        to the data directory (and removed on stop)."""
        reactor = self.taken_reactor()
        control, data_dir = self.make(reactor, fallback=True)
        control.startService()
        self.assertEqual([(p, i) for p, _, _, i in reactor.tcpServers], [(0, "127.0.0.1")])
        self.assertEqual(data_dir.control_url(), control.url)
        self.assertTrue(control.url.startswith("http://127.0.0.1:"))
        self.successResultOf(control.stopService())
        self.assertIsNone(data_dir.control_url())
        self.assertIsNone(control.url)

    def test_unwritable_url_fails_start(self) -> None:
        """If the URL cannot be written, the start fails and the port is closed again."""
        stopped = []

        class Recording(MemoryReactorClock):
            def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
                port = super().listenTCP(*args, **kwargs)
                port.stopListening = lambda: stopped.append(port)
                return port

        control, data_dir = self.make(Recording(), fallback=False)

        def broken(url: object) -> None:
            raise OSError("read-only file system")

        data_dir.save_control_url = broken  # type: ignore[method-assign]
        waiting = control.when_listening()
        self.assertRaises(OSError, control.startService)
        self.failureResultOf(waiting, OSError)
        self.assertEqual(len(stopped), 1)
        self.assertIsNone(control.port)
        self.assertFalse(control.running)

    def test_no_fallback(self) -> None:
        """Without fallback, a taken endpoint fails the start and writes no URL."""
        control, data_dir = self.make(self.taken_reactor(), fallback=False)
        self.assertRaises(CannotListenError, control.startService)
        self.assertIsNone(data_dir.control_url())


# -- The node -----------------------------------------------------------------------------------


class PeerNetworkServiceTests(SynchronousTestCase):
    """Starting the node listens and restores state; stopping closes and saves it."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.data_dir = NodeDataDir(self.mktemp()).ensure()
        self.network = PeerNetwork(self.reactor, display_name="node")

    def service(self, **kwargs: object) -> PeerNetworkService:
        return PeerNetworkService(self.network, listen="tcp:8051", data_dir=self.data_dir,
                                  **kwargs)  # type: ignore[arg-type]

    def test_listens_and_serves_control(self) -> None:
        """Starting listens for peers and for the control API, and writes the control URL."""
        service = self.service(control="tcp:8765:interface=127.0.0.1", control_token="t")
        service.startService()
        ports = sorted(port for port, *_ in self.reactor.tcpServers)
        self.assertEqual(ports, [8051, 8765])
        self.assertEqual(self.network.listening_port, 8051)
        self.assertEqual(self.data_dir.control_url(), "http://127.0.0.1:8765")
        self.successResultOf(service.stopService())
        self.assertIsNone(self.data_dir.control_url())

    def test_add_part(self) -> None:
        """A part is a named child service, started and stopped with the node, and its
        status shows in /api/status; a name is taken once."""
        service = self.service(control="tcp:8765:interface=127.0.0.1", control_token="t")
        part = Service()
        service.add_part("discovery", part, status=lambda: {"sent": 1})
        self.assertIs(service.getServiceNamed("discovery"), part)
        service.startService()
        self.assertTrue(part.running)
        assert service.api is not None
        status = service.api.get_status(DummyRequest([b"api", b"status"]), None)
        self.assertEqual(status["discovery"], {"sent": 1})
        self.assertRaises(ValueError, service.add_part, "discovery", Service())
        self.assertRaises(ValueError, service.add_part, "listener", Service())
        self.successResultOf(service.stopService())
        self.assertFalse(part.running)

    def test_backlog(self) -> None:
        """A TCP listen endpoint gets the default backlog unless it names one."""
        self.service().startService()
        PeerNetworkService(PeerNetwork(self.reactor), listen="tcp:8052:backlog=7").startService()
        self.assertEqual([(p, b) for p, _, b, _ in self.reactor.tcpServers],
                         [(8051, 1024), (8052, 7)])

    def test_bad_listen_endpoint(self) -> None:
        """A listen string that is no endpoint is refused at construction."""
        self.assertRaises(ValueError, PeerNetworkService, self.network, listen="nonsense:1")

    def test_control_needs_token(self) -> None:
        """A control API without a token is refused at construction."""
        self.assertRaises(ValueError, self.service, control="tcp:8765")

    def test_listen_failure_fails_start(self) -> None:
        """A peer port that cannot be bound fails startService with the endpoint's error."""

        class Taken(MemoryReactorClock):
            def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
                raise CannotListenError("", 8051, OSError(98, "in use"))

        service = PeerNetworkService(PeerNetwork(Taken()), listen="tcp:8051")
        self.assertRaises(CannotListenError, service.startService)
        self.assertRaises(CannotListenError, service.privilegedStartService)
        self.successResultOf(service.stopService())

    def test_stop_then_start_again(self) -> None:
        """A stopped node closes its channels and port but not its network, and starts
        again: it listens, and a peer connects and is trusted again."""
        service = self.service()
        service.startService()
        peer = PeerNetwork(self.reactor, display_name="peer")
        for round_ in range(2):
            self.assertEqual(self.network.listening_port, 8051)
            dialled = peer.connect(GenericPeer("127.0.0.1", 8051))
            pump = complete_tcp_connection(self.reactor)
            pump.flush()
            channel = self.successResultOf(dialled)
            self.assertTrue(channel.is_trusted)
            self.assertEqual(len(self.network.trusted_peer_channels), 1)
            stopped = service.stopService()
            pump.flush()
            self.successResultOf(stopped)
            self.assertEqual(self.network.active_peer_channels, [])
            self.assertTrue(channel.is_closed)
            self.assertEqual(self.network.listening_port, 0)
            service.startService()
        self.assertEqual([port for port, *_ in self.reactor.tcpServers], [8051, 8051, 8051])
        self.successResultOf(service.stopService())

    def test_restart_redials_kept_peers(self) -> None:
        """The configured peers are dialled on each start and let go on each stop."""
        service = self.service(peers=[PEER])
        for _ in range(2):
            service.startService()
            self.assertEqual([(h, p) for h, p, *_ in self.reactor.tcpClients],
                             [("10.0.0.9", 8051)])
            self.successResultOf(service.stopService())
            self.assertTrue(self.reactor.connectors[-1].stoppedConnecting)
            self.assertEqual(self.reactor.getDelayedCalls(), [])
            self.reactor.tcpClients.clear()

    def test_restores_and_saves_state(self) -> None:
        """Blocks and known peers from the data dir are restored; changes are saved."""
        self.data_dir.save_blocked(["10.0.0.7"], ["bad"])
        self.data_dir.save_known_peers([GenericPeer("10.0.0.8", 8051, "old")])
        service = self.service()
        service.startService()
        self.assertTrue(self.network.policy.is_blocked_ip("10.0.0.7"))
        self.assertTrue(self.network.policy.is_blocked_identifier("bad"))
        self.assertIn(("10.0.0.8", 8051), self.network.known_peers)
        # A restarted node dials the peers it knew.
        self.assertEqual([(h, p) for h, p, *_ in self.reactor.tcpClients], [("10.0.0.8", 8051)])
        self.network.block(ip="10.0.0.9")
        self.reactor.advance(0)  # a block is written on the next turn
        self.assertEqual(self.data_dir.blocked()[0], ["10.0.0.7", "10.0.0.9"])
        self.network.remember(GenericPeer("10.0.0.10", 1))
        self.successResultOf(service.stopService())
        saved = json.loads((self.data_dir.path / "known_peers.json").read_text())
        self.assertEqual([entry["address"] for entry in saved], ["10.0.0.8", "10.0.0.10"])


class SaveDebounceTests(SynchronousTestCase):
    """Known peers are written once per burst of newly trusted peers, not once per peer."""

    def test_one_write_per_burst(self) -> None:
        """Many trusted peers within a second make one pending save; stop saves at once."""
        reactor = MemoryReactorClock()
        data_dir = NodeDataDir(self.mktemp()).ensure()
        network = PeerNetwork(reactor, display_name="node")
        service = PeerNetworkService(network, listen="tcp:8051", data_dir=data_dir)
        service.startService()
        for n in range(1, 4):
            network.remember(GenericPeer("10.0.0.1", n))
            network.peer_trusted.notify(None)
        self.assertEqual(len(reactor.getDelayedCalls()), 1)
        self.assertEqual(data_dir.known_peers(), [])
        reactor.advance(SAVE_DELAY)
        self.assertEqual(len(data_dir.known_peers()), 3)
        network.remember(GenericPeer("10.0.0.1", 4))
        network.peer_trusted.notify(None)
        self.successResultOf(service.stopService())
        self.assertEqual(len(data_dir.known_peers()), 4)
        self.assertEqual(reactor.getDelayedCalls(), [])


class _FullDisk(NodeDataDir):
    """A data directory whose disk filled up once the node was running: every write of
    state fails as L{NodeDataDir} reports it."""

    writes: list[str]

    def _write(self, name: str, data: bytes, mode: int = 0o600) -> None:
        if name == "control.url":
            return super()._write(name, data, mode)
        self.writes.append(name)
        raise DataDirError(f"cannot write {self.path / name}: No space left on device")


class _Counting(NodeDataDir):
    """A data directory that counts its writes."""

    writes: list[str]

    def _write(self, name: str, data: bytes, mode: int = 0o600) -> None:
        self.writes.append(name)
        super()._write(name, data, mode)


class SaveFailureTests(SynchronousTestCase):
    """A save that fails is an error: a 500 for the control API call that needed it, an
    error line (no traceback) for a background save, never a silent loss."""

    def node(self, data_dir: NodeDataDir) -> tuple[PeerNetworkService, StubTreq]:
        data_dir.ensure()
        data_dir.writes = []  # type: ignore[attr-defined]
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, display_name="node")
        service = PeerNetworkService(self.network, listen="tcp:8051", data_dir=data_dir,
                                     control="tcp:8765:interface=127.0.0.1", control_token="t")
        assert service.control is not None
        return service, StubTreq(service.control.site.resource)

    def block(self, http: StubTreq, ip: str) -> tuple[int, Any]:
        d = http.request("POST", "http://127.0.0.1/api/block", json={"ip": ip},
                         headers={b"Authorization": [b"Bearer t"]})
        http.flush()
        response = self.successResultOf(d)
        return response.code, json.loads(self.successResultOf(response.content()))

    def test_block_written_once_before_answer(self) -> None:
        """POST /api/block answers 200 once the block list is on disk, written once."""
        data_dir = _Counting(self.mktemp())
        _, http = self.node(data_dir)
        code, _ = self.block(http, "10.0.0.7")
        self.assertEqual(code, 200)
        self.assertEqual(data_dir.blocked(), (["10.0.0.7"], []))
        self.reactor.advance(SAVE_DELAY)
        self.assertEqual(data_dir.writes.count("blocked.json"), 1)  # type: ignore[attr-defined]

    def test_block_on_full_disk_is_500(self) -> None:
        """On a full disk POST /api/block answers 500 with JSON naming the file, and logs
        one error line; it never answers 200."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        data_dir = _FullDisk(self.mktemp())
        _, http = self.node(data_dir)
        code, body = self.block(http, "10.0.0.7")
        self.assertEqual(code, 500)
        self.assertIn("blocked.json: No space left on device", body["error"])
        errors = [e for e in logged if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertNotIn("log_failure", errors[0])
        self.reactor.advance(SAVE_DELAY)
        self.assertEqual(data_dir.writes, ["blocked.json"])  # type: ignore[attr-defined]

    def test_block_list_path_is_a_directory(self) -> None:
        """With a directory where blocked.json goes, the real write fails and so does the
        call; no temporary file is left behind."""
        data_dir = NodeDataDir(self.mktemp())
        _, http = self.node(data_dir)
        (data_dir.path / "blocked.json").mkdir()
        code, body = self.block(http, "10.0.0.7")
        self.assertEqual(code, 500)
        self.assertIn("blocked.json: Is a directory", body["error"])
        self.assertEqual(sorted(p.name for p in data_dir.path.iterdir()), ["blocked.json"])

    def test_background_save_failure_logged(self) -> None:
        """A debounced save or the save at stop that fails logs an error line and the node
        goes on (no unhandled error, no traceback)."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service, _ = self.node(_FullDisk(self.mktemp()))
        service.startService()
        self.network.peer_trusted.notify(None)
        self.reactor.advance(SAVE_DELAY)
        self.successResultOf(service.stopService())
        errors = [e for e in logged if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 2)
        for event in errors:
            self.assertIn("No space left on device", event["why"])
            self.assertNotIn("log_failure", event)
        self.assertEqual(self.flushLoggedErrors(), [])
