# -*- test-case-name: tests.test_trust -*-
"""
Tests for L{p2pnet_tx.trust} and for the contract between a channel and its trust protocol:
the key and ping handshakes between two channels in memory, hostile and silent peers, trust
protocols that misbehave, and the custom trust protocol of docs/examples/custom_trust.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.errors import (
    ChannelClosed,
    HandshakeTimeout,
    InvalidPeerCertificate,
    TrustRefused,
)
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.packets import (
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
    PureMessagePacket,
)
from p2pnet_tx.pins import NamePins, PinMismatch
from p2pnet_tx.testing import RecordingHandler, connected_channels
from p2pnet_tx.tls import NodeTLS, ProvenKey
from p2pnet_tx.trust import (
    KeyTrust,
    PingCore,
    always_trust,
    identifier_for_public_key,
    key_trust,
    never_trust,
    new_ping_trust,
    ping_trust,
    public_key_bytes,
)
from p2pnet_tx.wire import get_codec
from tests.tls_support import join, tls_client

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "custom_trust.py"
PEER_ADDRESS = IPv4Address("TCP", "10.0.0.7", 40001)
HOST_ADDRESS = IPv4Address("TCP", "10.0.0.1", 8001)


def load_example() -> ModuleType:
    """Import docs/examples/custom_trust.py, which is not in a package."""
    spec = importlib.util.spec_from_file_location("custom_trust_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class AbortableTransport(StringTransport):
    """A L{StringTransport} that tells a graceful close from an abort."""

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


def frame(packet: Packet, codec: str = "p2pnet") -> bytes:
    return get_codec(codec).encode(packet)


def sent_packets(transport: StringTransport, codec: str = "p2pnet") -> list[Any]:
    return get_codec(codec).decoder().feed(transport.value())


def connect(
    trust_protocol: Any, codec: str = "p2pnet", **kwargs: Any
) -> tuple[PeerChannel, AbortableTransport, Clock]:
    """A channel running C{trust_protocol}, connected to a transport the test plays peer on."""
    clock = Clock()
    channel = PeerChannel(codec, kwargs.pop("handlers", None), trust_protocol, clock=clock,
                          **kwargs)
    transport = AbortableTransport(hostAddress=HOST_ADDRESS, peerAddress=PEER_ADDRESS)
    channel.makeConnection(transport)
    return channel, transport, clock


def lose(channel: PeerChannel) -> None:
    channel.connectionLost(Failure(ConnectionDone()))


class Pair:
    """Two channels joined in memory, each running its own trust protocol."""

    def __init__(
        self,
        server_trust: Any,
        client_trust: Any,
        codec: str = "p2pnet",
        server_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.clock = Clock()
        self.handlers = PacketHandleProtocol()
        self.recorder = RecordingHandler()
        for kind in PacketType:
            self.handlers.set_handler(kind, self.recorder)

        self.trusted: list[Deferred[PeerChannel]] = []

        def make(trust: Any, extra: dict[str, Any] | None) -> Any:
            def build() -> PeerChannel:
                channel = PeerChannel(codec, self.handlers, trust, clock=self.clock,
                                      **kwargs, **(extra or {}))
                # Ask before connecting: the handshake may end during the greeting flush.
                self.trusted.append(channel.when_trusted())
                return channel

            return build

        # connected_channels builds the client first.
        self.server, self.client, self.pump = connected_channels(
            make(server_trust, server_kwargs), make(client_trust, client_kwargs), self.clock
        )
        self.client_trusted, self.server_trusted = self.trusted

    def run(self, seconds: int, step: float = 1.0) -> None:
        """Let C{seconds} pass, moving bytes after every C{step}."""
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            self.pump.flush()


class SimpleTrustTests(SynchronousTestCase):
    """always_trust and never_trust decide at once."""

    def test_always_trust(self) -> None:
        """always_trust trusts the peer as soon as the channel opens."""
        channel, transport, clock = connect(always_trust)
        self.assertIs(self.successResultOf(channel.when_trusted()), channel)
        self.assertFalse(transport.disconnecting)
        self.assertEqual([c for c in clock.getDelayedCalls()
                          if "handshake" in repr(c)], [])

    def test_never_trust(self) -> None:
        """never_trust refuses the peer at once, with a Disconnect and an abort."""
        channel, transport, _ = connect(never_trust)
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertTrue(transport.aborted)
        self.assertIsInstance(sent_packets(transport)[-1], DisconnectPacket)


class TrustProtocolContractTests(SynchronousTestCase):
    """
    A trust protocol returns a Deferred of (or a coroutine returning) a bool; anything else,
    an exception or False means the peer is not trusted and is dropped.
    """

    def test_raises(self) -> None:
        """A trust protocol that raises is logged; the peer is refused and dropped."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        def broken(channel: PeerChannel) -> Deferred[bool]:
            raise RuntimeError("trust bug")

        channel, transport, clock = connect(broken)
        failure = self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertIn("trust bug", str(failure.value))
        self.assertTrue(transport.aborted)
        failures = [e for e in logged if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertTrue(failures[0]["log_failure"].check(RuntimeError))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_non_bool(self) -> None:
        """A trust protocol that returns something other than a bool refuses the peer."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        channel, transport, _ = connect(lambda channel: succeed("yes"))
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertTrue(transport.aborted)
        self.assertFalse(channel.is_trusted)
        self.assertEqual([e["result"] for e in logged if "result" in e], ["yes"])

    def test_truthy_is_not_true(self) -> None:
        """Only True trusts: 1 is refused."""
        channel, _, _ = connect(lambda channel: succeed(1))
        self.failureResultOf(channel.when_trusted(), TrustRefused)

    def test_false(self) -> None:
        """False refuses the peer: Disconnect written, connection aborted, counted."""
        channel, transport, _ = connect(lambda channel: succeed(False))
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertTrue(transport.aborted)
        goodbye = sent_packets(transport)[-1]
        self.assertIsInstance(goodbye, DisconnectPacket)
        self.assertIn("trust refused", goodbye.data["Reason"])
        self.assertEqual(channel.counters["handshakes_failed"], 1)

    def test_failing_deferred(self) -> None:
        """A Deferred that fails with TrustRefused refuses the peer without logging a bug."""
        channel, transport, _ = connect(lambda channel: Deferred.fromCoroutine(self.refuse()))
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.flushLoggedErrors(), [])

    async def refuse(self) -> bool:
        raise TrustRefused("not you")

    def test_coroutine_function(self) -> None:
        """A coroutine function is a trust protocol; its return value decides."""
        answer: Deferred[bool] = Deferred()

        async def trust(channel: PeerChannel) -> bool:
            return await answer

        channel, transport, _ = connect(trust)
        trusted = channel.when_trusted()
        self.assertNoResult(trusted)
        answer.callback(True)
        self.assertIs(self.successResultOf(trusted), channel)
        self.assertFalse(transport.disconnecting)

    def test_coroutine_returning_false(self) -> None:
        """A coroutine returning False refuses the peer."""

        async def trust(channel: PeerChannel) -> bool:
            return False

        channel, transport, _ = connect(trust)
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertTrue(transport.aborted)

    def test_coroutine_cancelled_on_close(self) -> None:
        """
        When the connection goes away, the channel cancels the trust protocol: a coroutine's
        await raises CancelledError and its cleanup runs.
        """
        cleaned: list[bool] = []

        async def trust(channel: PeerChannel) -> bool:
            try:
                return await Deferred()
            finally:
                cleaned.append(True)

        channel, _, clock = connect(trust)
        lose(channel)
        self.assertEqual(cleaned, [True])
        self.failureResultOf(channel.when_trusted(), ChannelClosed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_coroutine_cancelled_at_deadline(self) -> None:
        """A coroutine still waiting at the handshake deadline is cancelled."""
        cleaned: list[bool] = []

        async def trust(channel: PeerChannel) -> bool:
            try:
                return await Deferred()
            finally:
                cleaned.append(True)

        channel, transport, clock = connect(trust)
        clock.advance(10)
        self.assertEqual(cleaned, [True])
        self.failureResultOf(channel.when_trusted(), HandshakeTimeout)
        self.assertTrue(transport.aborted)

    def test_decision_after_close_ignored(self) -> None:
        """A trust protocol answering after the channel closed cannot trust it."""
        answer: Deferred[bool] = Deferred()
        channel, _, _ = connect(lambda channel: answer)
        lose(channel)
        answer.callback(True)
        self.assertFalse(channel.is_trusted)
        self.failureResultOf(channel.when_trusted(), ChannelClosed)

    def test_no_trust_protocol_when_policy_says_so(self) -> None:
        """With run_default_trust_protocol off, the trust protocol is not run."""
        from p2pnet_tx.policy import IncomingPeerTrustPolicy

        ran: list[PeerChannel] = []
        policy = IncomingPeerTrustPolicy(run_default_trust_protocol=False)
        channel, _, clock = connect(lambda channel: ran.append(channel) or succeed(True),
                                    policy=policy)
        self.assertEqual(ran, [])
        self.assertFalse(channel.is_trusted)
        clock.advance(10)
        self.assertFalse(channel.is_closed)


class PingTrustMachineTests(SynchronousTestCase):
    """The ping-trust machine alone, against a clock and recording callables."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.pings: list[float] = []
        self.trusted: list[bool] = []
        self.machine = new_ping_trust(
            PingCore(
                clock=self.clock,
                send_ping=lambda: self.pings.append(self.clock.seconds()),
                trusted=lambda: self.trusted.append(True),
            )
        )

    def test_pings_every_three_seconds(self) -> None:
        """Once started, the machine pings at once and then every 3 s."""
        self.machine.start()
        self.clock.advance(3)
        self.clock.advance(3)
        self.assertEqual(self.pings, [0, 3, 6])

    def test_three_pings_trust(self) -> None:
        """The third ping received trusts the peer, once, and stops the pinging."""
        self.machine.start()
        self.machine.ping_received()
        self.machine.ping_received()
        self.assertEqual(self.trusted, [])
        self.machine.ping_received()
        self.assertEqual(self.trusted, [True])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_trusted_answers_are_bounded(self) -> None:
        """Once trusted, the machine answers at most 3 pings, then stays quiet."""
        self.machine.start()
        for _ in range(3):
            self.machine.ping_received()
        sent = len(self.pings)
        for _ in range(10):
            self.machine.ping_received()
        self.assertEqual(len(self.pings), sent + 3)
        self.assertEqual(self.trusted, [True])

    def test_stop_while_pinging(self) -> None:
        """Stopping the machine stops its timer; later pings do nothing."""
        self.machine.start()
        self.machine.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        for _ in range(3):
            self.machine.ping_received()
        self.assertEqual(self.trusted, [])
        self.assertEqual(self.pings, [0])

    def test_stop_before_start(self) -> None:
        """A machine stopped before it started never pings."""
        self.machine.stop()
        self.clock.advance(10)
        self.assertEqual(self.pings, [])


class PingTrustTests(SynchronousTestCase):
    """The reference's "three pings" trust protocol, between channels."""

    limits = ChannelLimits(keepalive_interval=None, idle_timeout=None)

    def check_success(self, codec: str) -> None:
        pair = Pair(ping_trust, ping_trust, codec=codec)
        self.assertNoResult(pair.server_trusted)
        pair.run(6)
        self.assertIs(self.successResultOf(pair.server_trusted), pair.server)
        self.assertIs(self.successResultOf(pair.client_trusted), pair.client)
        self.assertEqual(pair.recorder.calls, [])  # pings are consumed by the protocol

    def test_success(self) -> None:
        """Two ping-trust channels trust each other after three pings each (~6 s)."""
        self.check_success("p2pnet")

    def test_success_dotnet(self) -> None:
        """Ping trust works in the dotnet wire format, as with a .NET peer."""
        self.check_success("dotnet")

    def test_ping_text(self) -> None:
        """The ping is a Message "Ping from <our address>", sent at once."""
        channel, transport, _ = connect(ping_trust, codec="dotnet")
        self.assertEqual(transport.value()[:40], b'<Message>{"Message":"Ping from 10.0.0.1"')

    def messages_sent(self, pair: Pair) -> int:
        return (pair.server.counters["packets_out.Message"]
                + pair.client.counters["packets_out.Message"])

    def test_no_endless_ping_pong(self) -> None:
        """
        After both sides trust, pings stop; a stray ping after trust (a .NET peer keeps
        pinging) is answered a bounded number of times, however long the clock runs.
        """
        pair = Pair(ping_trust, ping_trust, limits=self.limits)
        pair.run(10)
        self.successResultOf(pair.server_trusted)
        self.successResultOf(pair.client_trusted)
        sent = self.messages_sent(pair)
        self.assertLessEqual(sent, 12)
        pair.run(600, step=5)
        self.assertEqual(self.messages_sent(pair), sent)
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.client.send_message("Ping from 127.0.0.2")
        pair.run(600, step=5)
        self.assertLessEqual(self.messages_sent(pair), sent + 1 + 3 + 3)
        self.assertEqual(pair.recorder.calls, [])

    def test_answers_a_slower_peer_boundedly(self) -> None:
        """A trusted side answers a still-counting peer's pings, at most 3 times."""
        channel, transport, _ = connect(ping_trust, limits=self.limits)
        ping = frame(PureMessagePacket("Ping from 10.0.0.7"))
        channel.dataReceived(ping * 3)
        self.successResultOf(channel.when_trusted())
        transport.clear()
        channel.dataReceived(ping * 10)
        self.assertEqual(len(sent_packets(transport)), 3)

    def test_reports_peer_trust_at_third_ping_sent(self) -> None:
        """
        The peer counts our pings as we count its: ping trust tells the channel the peer
        trusts us once it has sent its 3rd ping, whether or not we trust the peer yet
        (issue 9, finding 7).
        """
        channel, _, clock = connect(ping_trust)
        peer_trusts = channel.when_peer_trusts_us()
        clock.advance(3)
        self.assertFalse(channel.is_trusted_by_peer)
        self.assertNoResult(peer_trusts)
        clock.advance(3)
        self.assertIs(self.successResultOf(peer_trusts), channel)
        self.assertTrue(channel.is_trusted_by_peer and not channel.is_trusted)
        self.assertEqual(channel.counters["packets_out.Message"], 3)
        self.assertIs(self.successResultOf(channel.when_peer_trusts_us()), channel)

    def test_peer_trust_by_answers(self) -> None:
        """Trusted after our 1st ping, we stop pinging; our answers to the peer's pings are
        our 2nd and 3rd: the 3rd reports the peer's trust."""
        channel, _, clock = connect(ping_trust, limits=self.limits)
        ping = frame(PureMessagePacket("Ping from 10.0.0.7"))
        channel.dataReceived(ping * 3)
        self.assertTrue(channel.is_trusted)
        clock.advance(30)
        self.assertFalse(channel.is_trusted_by_peer)
        channel.dataReceived(ping)
        self.assertFalse(channel.is_trusted_by_peer)
        channel.dataReceived(ping)
        self.assertTrue(channel.is_trusted_by_peer)

    def test_peer_trust_waiter_fails_on_close(self) -> None:
        """A when_peer_trusts_us() waiter fails with ChannelClosed when the channel closes
        first; one asked afterwards fails at once."""
        channel, _, _ = connect(ping_trust)
        waiter = channel.when_peer_trusts_us()
        lose(channel)
        self.failureResultOf(waiter, ChannelClosed)
        self.failureResultOf(channel.when_peer_trusts_us(), ChannelClosed)
        channel.peer_trusts_us()
        self.assertFalse(channel.is_trusted_by_peer)

    def test_authenticates_nothing(self) -> None:
        """Anyone who sends three pings is trusted: it is for .NET interop only."""
        channel, _, _ = connect(ping_trust)
        channel.dataReceived(frame(PureMessagePacket("Ping from 6.6.6.6")) * 3)
        self.assertTrue(channel.is_trusted)

    def test_silence(self) -> None:
        """A peer that never pings is dropped at the deadline; the pinging stops."""
        channel, transport, clock = connect(ping_trust)
        for _ in range(10):
            clock.advance(1)
        self.failureResultOf(channel.when_trusted(), HandshakeTimeout)
        self.assertTrue(transport.aborted)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(channel.counters["packets_out.Message"], 4)  # 0, 3, 6, 9 s

    def test_disconnect_mid_handshake(self) -> None:
        """
        A connection lost mid-handshake fails when_trusted with ChannelClosed on both sides
        and leaves no DelayedCall and no LoopingCall running.
        """
        pair = Pair(ping_trust, ping_trust)
        pair.run(3)
        self.assertNoResult(pair.server_trusted)
        pair.client.transport.loseConnection()
        pair.pump.flush()
        self.failureResultOf(pair.server_trusted, ChannelClosed)
        self.failureResultOf(pair.client_trusted, ChannelClosed)
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.run(30)
        self.assertEqual(pair.server.counters["packets_out.Message"], 2)


class KeyTrustTests(SynchronousTestCase):
    """
    Key trust: the verdict on the Ed25519 key the peer's TLS handshake proved on this
    connection, two bare channels joined over TLS in memory.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.server_key = Ed25519PrivateKey.generate()
        self.client_key = Ed25519PrivateKey.generate()
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def reasons(self) -> list[str]:
        """The reasons key trust logged for refusing."""
        return [event["why"] for event in self.logged if "why" in event]

    def channel(self, trust: Any, identifier: str, port: int) -> PeerChannel:
        return PeerChannel(
            "p2pnet", None, trust, clock=self.clock, await_identity=True,
            local_identity=IdentifierPacket("connect", port, "",
                                            source_origin_identifier=identifier),
        )

    def pair(
        self, server_trust: Any, client_trust: Any, client_claims: str | None = None,
        client_key: Ed25519PrivateKey | None = None, client_name: str | None = None,
    ) -> tuple[PeerChannel, PeerChannel, list[Deferred[PeerChannel]]]:
        """
        A server channel with the server key and a client channel with the client key (or
        C{client_key}), claiming their derived identifiers (or C{client_claims}), joined over
        TLS.  With C{client_name}, the server sees that display name, as a network's
        membership would leave it when the client announces it.

        @return: the two channels and their when_trusted() Deferreds.
        """
        client_key = self.client_key if client_key is None else client_key
        server = self.channel(server_trust, identifier_for_public_key(self.server_key), 8051)
        client = self.channel(
            client_trust, client_claims or identifier_for_public_key(client_key), 40001)
        if client_name is not None:
            server.properties["display_name"] = client_name
        trusted = [server.when_trusted(), client.when_trusted()]
        server_side = NodeTLS(self.server_key, self.clock).server_factory(
            Factory.forProtocol(lambda: server)).buildProtocol(PEER_ADDRESS)
        join(server_side, tls_client(client, NodeTLS(client_key, self.clock), self.clock),
             self.clock, "10.0.0.7", 40001)
        return server, client, trusted

    def test_success(self) -> None:
        """Both sides trust each other and keep the key the other's TLS handshake proved."""
        server, client, (server_trusted, client_trusted) = self.pair(key_trust(), key_trust())
        self.assertIs(self.successResultOf(server_trusted), server)
        self.assertIs(self.successResultOf(client_trusted), client)
        self.assertEqual(server.properties["public_key"], public_key_bytes(self.client_key))
        self.assertEqual(client.properties["public_key"], public_key_bytes(self.server_key))

    def test_known_keys(self) -> None:
        """Peers whose key is in known_keys are trusted."""
        _, _, trusted = self.pair(key_trust([public_key_bytes(self.client_key)]),
                                  KeyTrust([public_key_bytes(self.server_key)]))
        for d in trusted:
            self.successResultOf(d)

    def test_unknown_key(self) -> None:
        """A peer whose proven key is not in known_keys is refused and dropped."""
        server, client, (server_trusted, _) = self.pair(
            key_trust([public_key_bytes(Ed25519PrivateKey.generate())]), key_trust())
        self.failureResultOf(server_trusted, TrustRefused)
        self.assertFalse(server.is_trusted)
        self.assertTrue(server.is_closed)
        self.assertTrue(client.is_closed)
        self.assertEqual(server.counters["handshakes_failed"], 1)
        self.assertEqual(self.reasons(), ["unknown public key"])
        self.assertNotIn("public_key", server.properties)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_identifier_not_derived(self) -> None:
        """
        Identifier theft: a fresh key claiming another node's identifier is refused, whatever
        the channel's owner: key trust always binds the identifier to the proven key.
        """
        stolen = identifier_for_public_key(Ed25519PrivateKey.generate())
        server, _, (server_trusted, _) = self.pair(key_trust(), key_trust(), client_claims=stolen)
        self.failureResultOf(server_trusted, TrustRefused)
        self.assertTrue(server.is_closed)
        [reason] = self.reasons()
        self.assertIn("is not the one its key derives", reason)

    def test_relayed_identity(self) -> None:
        """
        Relay: an attacker with its own TLS session forwards C's Identity (C's identifier,
        even C's listening port): the key this connection proved is the attacker's, so it is
        not trusted as C.
        """
        c_key = Ed25519PrivateKey.generate()
        server, _, (server_trusted, _) = self.pair(
            key_trust([public_key_bytes(c_key)]), key_trust(),
            client_claims=identifier_for_public_key(c_key))
        self.failureResultOf(server_trusted, TrustRefused)
        self.assertFalse(server.is_trusted)

    def test_name_pinned_on_first_use(self) -> None:
        """With name pins, the first key seen under a display name is pinned to it."""
        pins = NamePins()
        _, _, (server_trusted, _) = self.pair(key_trust(name_pins=pins), key_trust(),
                                              client_name="alice")
        self.successResultOf(server_trusted)
        self.assertEqual(pins.get("alice"), identifier_for_public_key(self.client_key))

    def test_pinned_name_with_the_same_key(self) -> None:
        """The pinned key may come back under its name as often as it likes."""
        pins = NamePins({"alice": identifier_for_public_key(self.client_key)})
        _, _, (server_trusted, _) = self.pair(key_trust(name_pins=pins), key_trust(),
                                              client_name="alice")
        self.successResultOf(server_trusted)

    def test_pinned_name_with_a_new_key(self) -> None:
        """
        A peer announcing a pinned name with another key is refused with PinMismatch, which
        names both identities and says how to accept a real key change; the pin stays.
        """
        pinned = identifier_for_public_key(Ed25519PrivateKey.generate())
        pins = NamePins({"alice": pinned})
        server, _, (server_trusted, _) = self.pair(key_trust(name_pins=pins), key_trust(),
                                                   client_name="alice")
        mismatch = self.failureResultOf(server_trusted, PinMismatch).value
        self.assertEqual(mismatch.shown, identifier_for_public_key(self.client_key))
        self.assertIn("remove the pin", str(mismatch))
        self.assertTrue(server.is_closed)
        self.assertEqual(pins.get("alice"), pinned)
        [error] = [e for e in self.logged if e.get("log_level") == LogLevel.error]
        self.assertIn(pinned, error["why"])

    def test_no_name_no_pin(self) -> None:
        """A peer that announces no name is trusted on its key alone, and pins nothing."""
        pins = NamePins({"alice": "bciqsomeoneelse"})
        _, _, (server_trusted, _) = self.pair(key_trust(name_pins=pins), key_trust())
        self.successResultOf(server_trusted)
        self.assertEqual(len(pins), 1)

    def test_proven_key_kept(self) -> None:
        """
        A channel keeps the key its TLS peer proved and the identifier it derives, made once
        for its connection, whoever asks.
        """
        server, client, trusted = self.pair(key_trust(), key_trust())
        for d in trusted:
            self.successResultOf(d)
        proven = server.proven_key()
        self.assertIsInstance(proven, ProvenKey)
        self.assertIs(server.proven_key(), proven)
        self.assertEqual(proven, ProvenKey(public_key_bytes(self.client_key),
                                           identifier_for_public_key(self.client_key)))
        self.assertEqual(client.proven_key().identifier,
                         identifier_for_public_key(self.server_key))

    def test_proven_key_not_tls(self) -> None:
        """Over plaintext there is no proven key: an error each time, nothing kept."""
        channel, _, _ = connect(None)
        for _ in range(2):
            with self.assertRaises(InvalidPeerCertificate) as caught:
                channel.proven_key()
            self.assertIn("not TLS", str(caught.exception))

    def test_not_tls(self) -> None:
        """Over a plaintext transport key trust refuses every peer."""
        channel, transport, _ = connect(key_trust(), await_identity=True)
        identifier = identifier_for_public_key(self.client_key)
        channel.dataReceived(frame(IdentifierPacket("connect", 40001, "",
                                                    source_origin_identifier=identifier)))
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.reasons(), ["the connection is not TLS"])

    def test_silence(self) -> None:
        """A TLS peer that never answers is dropped at the deadline; nothing is left behind."""
        server = self.channel(key_trust(), identifier_for_public_key(self.server_key), 8051)
        server_side = NodeTLS(self.server_key, self.clock).server_factory(
            Factory.forProtocol(lambda: server)).buildProtocol(PEER_ADDRESS)
        transport = AbortableTransport(hostAddress=HOST_ADDRESS, peerAddress=PEER_ADDRESS)
        server_side.makeConnection(transport)
        self.clock.advance(10)
        self.failureResultOf(server.when_trusted(), HandshakeTimeout)
        self.assertTrue(transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fresh(self) -> None:
        """key_trust() trusts any proven key; known_keys restricts it."""
        self.assertIsNone(key_trust().known_keys)
        self.assertEqual(key_trust([bytes(32)]).known_keys, frozenset([bytes(32)]))


class CustomTrustExampleTests(SynchronousTestCase):
    """docs/examples/custom_trust.py: a shared-secret HMAC challenge as a coroutine."""

    def setUp(self) -> None:
        self.example = load_example()

    def test_documented(self) -> None:
        """docs/trust.md shows the example's trust protocol exactly as the file has it."""
        page = (EXAMPLE.parent.parent / "trust.md").read_text()
        start = page.index("def shared_secret_trust(")
        snippet = page[start : page.index("```", start)]
        self.assertIn("async def trust(channel: PeerChannel) -> bool:", snippet)
        self.assertIn(snippet.split('"""', 1)[1], EXAMPLE.read_text())

    def test_same_secret(self) -> None:
        """Two peers that know the same secret trust each other."""
        trust = self.example.shared_secret_trust(b"network key")
        pair = Pair(trust, trust)
        self.assertIs(self.successResultOf(pair.server_trusted), pair.server)
        self.assertIs(self.successResultOf(pair.client_trusted), pair.client)
        self.assertEqual(pair.recorder.calls, [])
        self.assertEqual(len(pair.server.on_data_received), 0)

    def test_different_secrets(self) -> None:
        """Peers with different secrets refuse each other and both channels close."""
        pair = Pair(self.example.shared_secret_trust(b"one"),
                    self.example.shared_secret_trust(b"two"))
        self.failureResultOf(pair.server_trusted, TrustRefused)
        self.failureResultOf(pair.client_trusted, TrustRefused)
        self.assertTrue(pair.server.is_closed)
        self.assertTrue(pair.client.is_closed)
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_answer_reflection(self) -> None:
        """
        An attacker that makes us answer its challenge cannot use our answer as its own.
        """
        channel, transport, _ = connect(self.example.shared_secret_trust(b"secret"))
        [challenge] = sent_packets(transport)
        transport.clear()
        ours = challenge.message[len(self.example.CHALLENGE):]
        channel.dataReceived(frame(PureMessagePacket(self.example.CHALLENGE + "ab" * 16)))
        [answer] = sent_packets(transport)
        self.assertTrue(answer.message.startswith(self.example.ANSWER))
        channel.dataReceived(frame(answer))
        self.failureResultOf(channel.when_trusted(), TrustRefused)
        self.assertNotEqual(ours, "ab" * 16)

    def test_reflected_challenge_not_answered(self) -> None:
        """Our own challenge sent back to us is not answered, and the peer is refused."""
        channel, transport, _ = connect(self.example.shared_secret_trust(b"secret"))
        [challenge] = sent_packets(transport)
        transport.clear()
        channel.dataReceived(frame(challenge))
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(frame(PureMessagePacket(self.example.ANSWER + "00")))
        self.failureResultOf(channel.when_trusted(), TrustRefused)

    def test_silence(self) -> None:
        """A peer that never answers is dropped at the handshake deadline."""
        channel, transport, clock = connect(self.example.shared_secret_trust(b"secret"))
        clock.advance(10)
        self.failureResultOf(channel.when_trusted(), HandshakeTimeout)
        self.assertTrue(transport.aborted)
        self.assertEqual(len(channel.on_data_received), 0)
