# -*- test-case-name: tests.test_channel -*-
"""
Tests for L{p2pnet_tx.channel}: the trust gate, handler dispatch, data-received observers,
every timer of L{ChannelLimits}, hostile input and the channel's life cycle.

Everything runs on a L{Clock} with L{StringTransport}s or in-memory pairs
(L{p2pnet_tx.testing.connected_channels}); nothing touches a socket.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from p2pnet_tx.channel import (
    KEEPALIVE_MESSAGE,
    ChannelLimits,
    ChannelOwner,
    ChannelWriter,
    PeerChannel,
)
from p2pnet_tx.errors import ChannelClosed, HandshakeTimeout, SendBufferFull, TrustPolicyConflict
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.interfaces import IPeerChannelOwner
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.testing import RecordingHandler, connected_channels
from p2pnet_tx.wire import get_codec

PEER_ADDRESS = IPv4Address("TCP", "10.0.0.7", 40001)
HOST_ADDRESS = IPv4Address("TCP", "10.0.0.1", 8001)

T0 = datetime(2026, 11, 23, 18, 56, 42, 123456, tzinfo=timezone.utc)
"""A fixed packet time, so that decoded packets compare equal to the ones sent."""

SAMPLES: dict[PacketType, Packet] = {
    PacketType.IDENTITY: IdentifierPacket("discovery", 8001, "10.0.0.7", source_origin_time=T0),
    PacketType.DISCONNECT: DisconnectPacket(
        "10.0.0.7", 8001, T0, {"Reason": "bye"}, source_origin_time=T0
    ),
    PacketType.PEER_GROUP: CollectionSharePacket(
        100, [GenericPeer("10.0.0.8", 8002)], source_origin_time=T0
    ),
    PacketType.DATA_TRANSMIT: DataTransmissionPacket(
        b"some data", DataPayloadFormat.MISC_DATA, source_origin_time=T0
    ),
    PacketType.MESSAGE: PureMessagePacket("hello", source_origin_time=T0),
}
"""One packet of each of the five types, in PacketType order."""

DEFAULT_KINDS = {PacketType.MESSAGE, PacketType.DISCONNECT}


class AbortableTransport(StringTransport):
    """A L{StringTransport} that tells a graceful close from an abort."""

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class RecordingOwner(ChannelOwner):
    """A channel owner that records every call it gets as C{(method, *args)}."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def channel_connected(self, channel: PeerChannel) -> None:
        self.calls.append(("channel_connected", channel))

    # Not owner methods: the registry defaults of HandlerDispatchTests route to these.
    def add_peer(self, channel: PeerChannel, packet: IdentifierPacket) -> None:
        self.calls.append(("add_peer", channel, packet))

    def process_peer_list(self, channel: PeerChannel, packet: Any) -> None:
        self.calls.append(("process_peer_list", channel, packet))

    def data_received(self, channel: PeerChannel, packet: Any) -> None:
        self.calls.append(("data_received", channel, packet))

    def channel_trusted(self, channel: PeerChannel) -> None:
        self.calls.append(("channel_trusted", channel))

    def peer_misbehaved(self, channel: PeerChannel, error: Exception) -> None:
        self.calls.append(("peer_misbehaved", channel, error))

    def channel_closed(self, channel: PeerChannel, reason: str) -> None:
        self.calls.append(("channel_closed", channel, reason))


def message(text: str) -> PureMessagePacket:
    """Return a Message with the fixed time L{T0}."""
    return PureMessagePacket(text, source_origin_time=T0)


def frame(packet: Packet, codec: str = "p2pnet") -> bytes:
    """Return the wire bytes of C{packet}."""
    return get_codec(codec).encode(packet)


def raw_frame(body: bytes) -> bytes:
    """Return a C{p2pnet} frame around an arbitrary body."""
    return len(body).to_bytes(4, "big") + body


def sent_packets(transport: StringTransport, codec: str = "p2pnet") -> list[Any]:
    """Decode everything written to C{transport}."""
    return get_codec(codec).decoder().feed(transport.value())


def recording_handlers() -> tuple[PacketHandleProtocol, RecordingHandler]:
    """Return a registry whose every packet type goes to one L{RecordingHandler}."""
    handlers = PacketHandleProtocol()
    recorder = RecordingHandler()
    for kind in PacketType:
        handlers.set_handler(kind, recorder)
    return handlers, recorder


def connect(
    trust_protocol: Any = None,
    *,
    clock: Clock | None = None,
    codec: str = "p2pnet",
    **kwargs: Any,
) -> tuple[PeerChannel, AbortableTransport, Clock]:
    """Return a channel connected to a fresh L{AbortableTransport}, and its clock."""
    clock = Clock() if clock is None else clock
    channel = PeerChannel(codec, kwargs.pop("handlers", None), trust_protocol, clock=clock,
                          **kwargs)
    transport = AbortableTransport(hostAddress=HOST_ADDRESS, peerAddress=PEER_ADDRESS)
    channel.makeConnection(transport)
    return channel, transport, clock


def lose(channel: PeerChannel, reason: type[Exception] = ConnectionDone) -> None:
    """Tell C{channel} its connection is gone, as the reactor would."""
    channel.connectionLost(Failure(reason()))


class InterfaceTests(SynchronousTestCase):
    """The channel and the default owner provide the interfaces they declare."""

    def test_writer_is_a_push_producer(self) -> None:
        """The channel's writer provides IPushProducer, so the transport can pause it."""
        channel, transport, _ = connect()
        self.assertTrue(verifyObject(IPushProducer, transport.producer))

    def test_channel_owner(self) -> None:
        """ChannelOwner provides IPeerChannelOwner."""
        self.assertTrue(verifyObject(IPeerChannelOwner, ChannelOwner()))

    def test_registered_as_streaming_producer(self) -> None:
        """On connection the channel registers its writer as the transport's streaming
        producer."""
        channel, transport, _ = connect()
        self.assertIsInstance(transport.producer, ChannelWriter)
        self.assertTrue(transport.streaming)


class TrustGateTests(SynchronousTestCase):
    """
    Message and Disconnect pass when the peer is trusted or allow_default_communication;
    Identity, PeerGroup and DataTransmit when it is trusted or allow_enhanced_packet_exchange.
    A refused packet is dropped and counted, never an error.
    """

    def check_gate(self, trusted: bool, default: bool, enhanced: bool) -> None:
        policy = IncomingPeerTrustPolicy(
            allow_default_communication=default, allow_enhanced_packet_exchange=enhanced
        )
        handlers, recorder = recording_handlers()
        channel, transport, _ = connect(handlers=handlers, policy=policy)
        if trusted:
            channel.trust()
        expected = [
            kind
            for kind in PacketType
            if trusted or (default if kind in DEFAULT_KINDS else enhanced)
        ]
        for kind in PacketType:
            self.assertEqual(channel.allows(kind), kind in expected, kind)
        channel.dataReceived(b"".join(frame(packet) for packet in SAMPLES.values()))
        self.assertEqual([packet.kind for packet in recorder.packets], expected)
        self.assertEqual(recorder.packets, [SAMPLES[kind] for kind in expected])
        self.assertEqual(channel.counters["refused"], len(PacketType) - len(expected))
        self.assertEqual(channel.counters["handler_errors"], 0)
        self.assertFalse(transport.disconnecting)
        self.assertFalse(channel.is_closed)

    def test_trusted_default_and_enhanced(self) -> None:
        """A trusted peer's five packet types all pass, with both flags on."""
        self.check_gate(trusted=True, default=True, enhanced=True)

    def test_trusted_default_only(self) -> None:
        """A trusted peer's five packet types all pass, with only default communication."""
        self.check_gate(trusted=True, default=True, enhanced=False)

    def test_trusted_nothing_allowed(self) -> None:
        """A trusted peer's five packet types all pass, with both flags off."""
        self.check_gate(trusted=True, default=False, enhanced=False)

    def test_untrusted_default_and_enhanced(self) -> None:
        """With both flags on, every packet of an untrusted peer passes."""
        self.check_gate(trusted=False, default=True, enhanced=True)

    def test_untrusted_default_only(self) -> None:
        """
        With only default communication, an untrusted peer's Message and Disconnect pass and
        its Identity, PeerGroup and DataTransmit are refused.
        """
        self.check_gate(trusted=False, default=True, enhanced=False)

    def test_untrusted_nothing_allowed(self) -> None:
        """With both flags off, every packet of an untrusted peer is refused."""
        self.check_gate(trusted=False, default=False, enhanced=False)

    def test_enhanced_without_default_is_a_conflict(self) -> None:
        """The fourth combination (enhanced without default) cannot be configured."""
        with self.assertRaises(TrustPolicyConflict):
            IncomingPeerTrustPolicy(
                allow_default_communication=False, allow_enhanced_packet_exchange=True
            )

    def test_untrust_closes_the_gate_again(self) -> None:
        """After untrust(), the untrusted rules apply again."""
        handlers, recorder = recording_handlers()
        channel, _, _ = connect(handlers=handlers)
        channel.trust()
        channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        channel.untrust()
        channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        self.assertEqual(len(recorder.packets), 1)
        self.assertEqual(channel.counters["refused"], 1)


class HandlerDispatchTests(SynchronousTestCase):
    """Accepted packets go to the handler registered for their type, which may change."""

    def setUp(self) -> None:
        self.owner = RecordingOwner()
        # The routing a network sets up: its own defaults for these three types.
        self.handlers = PacketHandleProtocol(defaults={
            PacketType.IDENTITY: self.owner.add_peer,
            PacketType.PEER_GROUP: self.owner.process_peer_list,
            PacketType.DATA_TRANSMIT: self.owner.data_received,
        })
        self.channel, self.transport, self.clock = connect(
            handlers=self.handlers, owner=self.owner
        )
        self.channel.trust()

    def test_set_handler_replaces(self) -> None:
        """A handler set for a type receives the channel and the packets of that type."""
        first, second = RecordingHandler(), RecordingHandler()
        self.handlers.set_handler(PacketType.MESSAGE, first)
        self.channel.dataReceived(frame(message("one")))
        self.handlers.set_handler(PacketType.MESSAGE, second)
        self.channel.dataReceived(frame(message("two")))
        self.assertEqual(first.calls, [(self.channel, message("one"))])
        self.assertEqual([p.message for p in second.packets], ["two"])

    def test_none_handler_ignores(self) -> None:
        """set_handler(kind, None) drops the packets of that type without any error."""
        self.handlers.set_handler(PacketType.DATA_TRANSMIT, None)
        self.channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        self.assertNotIn("data_received", self.owner.names())
        self.assertEqual(self.channel.counters["handler_errors"], 0)
        self.assertEqual(self.channel.counters["packets_in.DataTransmit"], 1)

    def test_reset_restores_default(self) -> None:
        """reset(kind) gives the type back to its default handler."""
        recorder = RecordingHandler()
        self.handlers.set_handler(PacketType.DATA_TRANSMIT, recorder)
        self.handlers.reset(PacketType.DATA_TRANSMIT)
        self.channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        self.assertEqual(recorder.calls, [])
        self.assertIn("data_received", self.owner.names())

    def test_identity_default_handler(self) -> None:
        """An accepted Identity packet goes to the registry's default Identity handler."""
        self.channel.dataReceived(frame(SAMPLES[PacketType.IDENTITY]))
        self.assertIn(("add_peer", self.channel, SAMPLES[PacketType.IDENTITY]), self.owner.calls)

    def test_peer_group_default_handler(self) -> None:
        """An accepted PeerGroup packet goes to the registry's default PeerGroup handler."""
        self.channel.dataReceived(frame(SAMPLES[PacketType.PEER_GROUP]))
        self.assertIn(
            ("process_peer_list", self.channel, SAMPLES[PacketType.PEER_GROUP]), self.owner.calls
        )

    def test_data_transmit_default_handler(self) -> None:
        """An accepted DataTransmit packet goes to the registry's default DataTransmit handler."""
        self.channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        self.assertIn(
            ("data_received", self.channel, SAMPLES[PacketType.DATA_TRANSMIT]), self.owner.calls
        )

    def test_message_default_handler(self) -> None:
        """An accepted Message is only logged by default: nothing reaches the owner."""
        before = list(self.owner.calls)
        self.channel.dataReceived(frame(SAMPLES[PacketType.MESSAGE]))
        self.assertEqual(self.owner.calls, before)
        self.assertEqual(self.channel.counters["handler_errors"], 0)

    def test_disconnect_closes_only_this_channel(self) -> None:
        """
        A Disconnect closes the channel it arrived on, without answering, even when it names
        another peer's address; other channels of the same owner stay open.
        """
        other, other_transport, _ = connect(
            clock=self.clock, handlers=self.handlers, owner=self.owner
        )
        self.transport.clear()
        naming_other = DisconnectPacket("10.0.0.7", 40001, data={"Reason": "go away"})
        self.channel.dataReceived(frame(naming_other))
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.aborted)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.channel.close_reason, "disconnected by peer")
        self.assertFalse(other_transport.disconnecting)
        lose(self.channel)
        self.assertEqual(self.owner.calls[-1], ("channel_closed", self.channel,
                                                "disconnected by peer"))
        self.assertTrue(other.send_message("still here"))
        self.assertFalse(other.is_closed)

    def test_untrusted_disconnect_closes_the_channel(self) -> None:
        """An untrusted peer may say goodbye when default communication is allowed."""
        channel, transport, _ = connect(handlers=self.handlers)
        self.assertFalse(channel.is_trusted)
        channel.dataReceived(frame(SAMPLES[PacketType.DISCONNECT]))
        self.assertTrue(transport.disconnecting)


class HandlerFailureTests(SynchronousTestCase):
    """
    A handler that raises, returns a failing Deferred or is a failing coroutine is logged and
    counted, and the channel goes on handling the next packet.
    """

    def setUp(self) -> None:
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.handlers = PacketHandleProtocol()
        self.channel, self.transport, self.clock = connect(handlers=self.handlers)
        self.channel.trust()
        self.handled: list[str] = []

    def failures(self) -> list[dict[str, Any]]:
        return [event for event in self.logged if "log_failure" in event]

    def assert_failure_logged(self, error: type[Exception]) -> None:
        """Exactly one handler failure of type C{error} was logged and counted."""
        failures = self.failures()
        self.assertEqual(len(failures), 1)
        self.assertTrue(failures[0]["log_failure"].check(error))
        self.assertEqual(failures[0]["kind"], "Message")
        self.assertEqual(self.channel.counters["handler_errors"], 1)
        self.assertEqual(len(self.flushLoggedErrors(error)), 1)

    def assert_still_working(self) -> None:
        self.channel.dataReceived(frame(message("next")))
        self.assertEqual(self.handled[-1], "next")
        self.assertFalse(self.transport.disconnecting)
        self.assertFalse(self.channel.is_closed)

    def test_raising_handler(self) -> None:
        """A handler that raises is logged and counted; the next packet is handled."""

        def handler(channel: PeerChannel, packet: PureMessagePacket) -> None:
            self.handled.append(packet.message)
            if packet.message == "boom":
                raise ZeroDivisionError()

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        self.channel.dataReceived(frame(message("boom")))
        self.assert_failure_logged(ZeroDivisionError)
        self.assert_still_working()

    def test_failing_deferred(self) -> None:
        """A handler's Deferred that fails later is logged and counted when it fails."""
        later: Deferred[None] = Deferred()

        def handler(channel: PeerChannel, packet: PureMessagePacket) -> Deferred[None] | None:
            self.handled.append(packet.message)
            return later if packet.message == "slow" else None

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        self.channel.dataReceived(frame(message("slow")))
        self.assertEqual(self.channel.counters["handler_errors"], 0)
        self.assert_still_working()
        later.errback(ValueError("late failure"))
        self.assert_failure_logged(ValueError)
        self.assert_still_working()

    def test_failing_coroutine(self) -> None:
        """A coroutine handler that raises after awaiting is logged and counted."""
        gate: Deferred[None] = Deferred()

        async def handler(channel: PeerChannel, packet: PureMessagePacket) -> None:
            self.handled.append(packet.message)
            if packet.message == "coro":
                await gate
                raise KeyError("coroutine failure")

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        self.channel.dataReceived(frame(message("coro")))
        self.assertEqual(self.channel.counters["handler_errors"], 0)
        gate.callback(None)
        self.assert_failure_logged(KeyError)
        self.assert_still_working()

    def test_already_failed_deferred(self) -> None:
        """A handler returning an already-failed Deferred is logged and counted at once."""

        def handler(channel: PeerChannel, packet: PureMessagePacket) -> Deferred[None] | None:
            self.handled.append(packet.message)
            return fail(ValueError("failed already")) if packet.message == "x" else None

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        self.channel.dataReceived(frame(message("x")))
        self.assert_failure_logged(ValueError)
        self.assert_still_working()

    def test_coroutine_failing_at_once(self) -> None:
        """A coroutine handler that raises before its first await is logged and counted."""

        async def handler(channel: PeerChannel, packet: PureMessagePacket) -> None:
            self.handled.append(packet.message)
            if packet.message == "x":
                raise ValueError("at once")

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        self.channel.dataReceived(frame(message("x")))
        self.assert_failure_logged(ValueError)
        self.assert_still_working()

    def test_handler_results_ignored(self) -> None:
        """Whatever a handler returns (a value, a Deferred's result) is no error."""
        results: list[Any] = [7, succeed("done"), "text", None]

        def handler(channel: PeerChannel, packet: PureMessagePacket) -> Any:
            self.handled.append(packet.message)
            return results.pop(0)

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        self.channel.dataReceived(frame(message("a")) * 3)
        self.assert_still_working()
        self.assertEqual(self.channel.counters["handler_errors"], 0)
        self.assertEqual(self.failures(), [])
        self.assertEqual(self.channel._receiver.pending, 0)

    def test_pending_handler_cancelled_on_close(self) -> None:
        """
        A handler still running when the connection goes away is cancelled; that is not a
        handler error and is not logged as one.
        """
        cancelled: list[Deferred[None]] = []
        pending: Deferred[None] = Deferred(cancelled.append)
        self.handlers.set_handler(PacketType.MESSAGE, lambda channel, packet: pending)
        self.channel.dataReceived(frame(message("slow")))
        lose(self.channel)
        self.assertEqual(cancelled, [pending])
        self.assertEqual(self.channel.counters["handler_errors"], 0)
        self.assertEqual(self.failures(), [])


class DataReceivedObserverTests(SynchronousTestCase):
    """
    on_data_received observers see every decoded packet, before the gate and in order; an
    observer that returns True consumes the packet.
    """

    def setUp(self) -> None:
        self.handlers, self.recorder = recording_handlers()
        policy = IncomingPeerTrustPolicy(allow_default_communication=False)
        self.channel, self.transport, _ = connect(handlers=self.handlers, policy=policy)
        self.seen: list[tuple[str, Packet]] = []

    def observer(self, name: str, result: Any = None) -> Any:
        def observe(channel: PeerChannel, packet: Packet) -> Any:
            self.assertIs(channel, self.channel)
            self.seen.append((name, packet))
            return result

        return observe

    def test_sees_refused_packets_in_order(self) -> None:
        """Observers see packets the gate then refuses, in the order they arrived."""
        self.channel.on_data_received.add(self.observer("a"))
        self.channel.dataReceived(b"".join(frame(p) for p in SAMPLES.values()))
        self.assertEqual(self.seen, [("a", p) for p in SAMPLES.values()])
        self.assertEqual(self.channel.counters["refused"], 5)
        self.assertEqual(self.recorder.calls, [])

    def test_observers_run_in_registration_order(self) -> None:
        """Each packet goes to every observer, in the order they were added."""
        self.channel.on_data_received.add(self.observer("a"))
        self.channel.on_data_received.add(self.observer("b"))
        message = SAMPLES[PacketType.MESSAGE]
        self.channel.dataReceived(frame(message) * 2)
        self.assertEqual(self.seen, [("a", message), ("b", message)] * 2)

    def test_remove(self) -> None:
        """A removed observer is not called again."""
        observe = self.observer("a")
        self.channel.on_data_received.add(observe)
        self.channel.dataReceived(frame(SAMPLES[PacketType.MESSAGE]))
        self.channel.on_data_received.remove(observe)
        self.channel.dataReceived(frame(SAMPLES[PacketType.MESSAGE]))
        self.assertEqual(len(self.seen), 1)

    def test_raising_observer_does_not_break_others(self) -> None:
        """An observer that raises is logged; the others and the handlers still run."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.channel.trust()

        def broken(channel: PeerChannel, packet: Packet) -> None:
            raise RuntimeError("observer bug")

        self.channel.on_data_received.add(broken)
        self.channel.on_data_received.add(self.observer("b"))
        self.channel.dataReceived(frame(SAMPLES[PacketType.MESSAGE]))
        self.assertEqual(self.seen, [("b", SAMPLES[PacketType.MESSAGE])])
        self.assertEqual(self.recorder.packets, [SAMPLES[PacketType.MESSAGE]])
        failures = [event for event in logged if "log_failure" in event]
        self.assertEqual(len(failures), 1)
        self.assertTrue(failures[0]["log_failure"].check(RuntimeError))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(self.transport.disconnecting)

    def test_true_consumes(self) -> None:
        """
        A packet an observer returns True for is neither gated nor handled; later observers
        still see it.
        """
        self.channel.trust()
        self.channel.on_data_received.add(self.observer("a", True))
        self.channel.on_data_received.add(self.observer("b"))
        self.channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        self.assertEqual([name for name, _ in self.seen], ["a", "b"])
        self.assertEqual(self.recorder.calls, [])
        self.assertEqual(self.channel.counters["refused"], 0)

    def test_consumed_untrusted_packet_is_not_refused(self) -> None:
        """A consumed packet from an untrusted peer is not counted as refused."""
        self.channel.on_data_received.add(self.observer("a", True))
        self.channel.dataReceived(frame(SAMPLES[PacketType.MESSAGE]))
        self.assertEqual(self.channel.counters["refused"], 0)
        self.assertEqual(len(self.seen), 1)


class HandshakeTimeoutTests(SynchronousTestCase):
    """A peer not trusted within handshake_timeout is dropped, and nothing is left behind."""

    def setUp(self) -> None:
        self.channel, self.transport, self.clock = connect(lambda channel: Deferred())

    def test_silent_peer_is_dropped(self) -> None:
        """A peer whose trust protocol never answers is dropped after handshake_timeout."""
        trusted = self.channel.when_trusted()
        self.clock.advance(self.channel.limits.handshake_timeout)
        failure = self.failureResultOf(trusted, HandshakeTimeout)
        self.assertEqual(failure.value.timeout, 10.0)
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        [goodbye] = sent_packets(self.transport)
        self.assertIsInstance(goodbye, DisconnectPacket)
        self.assertEqual(goodbye.data, {"Reason": "handshake timeout"})
        self.assertEqual(self.channel.counters["handshakes_failed"], 1)

    def test_alive_just_before_the_deadline(self) -> None:
        """Just before the deadline the peer is still being waited for."""
        trusted = self.channel.when_trusted()
        self.clock.advance(self.channel.limits.handshake_timeout - 0.001)
        self.assertNoResult(trusted)
        self.assertFalse(self.transport.disconnecting)
        self.channel.trust()
        self.assertIs(self.successResultOf(trusted), self.channel)

    def test_configurable(self) -> None:
        """The deadline comes from ChannelLimits.handshake_timeout."""
        channel, transport, clock = connect(
            lambda channel: Deferred(), limits=ChannelLimits(handshake_timeout=2.5)
        )
        trusted = channel.when_trusted()
        clock.advance(2.5)
        self.failureResultOf(trusted, HandshakeTimeout)
        self.assertTrue(transport.aborted)

    def test_no_deadline_without_trust_protocol(self) -> None:
        """A channel with no trust protocol waits for trust() without a deadline."""
        channel, transport, clock = connect(limits=ChannelLimits(idle_timeout=None,
                                                                 keepalive_interval=None))
        clock.advance(3600)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timed_out_handshake_is_cancelled(self) -> None:
        """The trust protocol's Deferred is cancelled when the deadline passes."""
        cancelled: list[Deferred[bool]] = []
        channel, _, clock = connect(lambda channel: Deferred(cancelled.append))
        clock.advance(10)
        self.assertEqual(len(cancelled), 1)
        self.failureResultOf(channel.when_trusted(), HandshakeTimeout)


class IdleAndKeepaliveTests(SynchronousTestCase):
    """Idle channels close at idle_timeout; quiet ones send a keep-alive ping."""

    def setUp(self) -> None:
        self.channel, self.transport, self.clock = connect()
        self.channel.trust()
        self.transport.clear()

    def test_idle_timeout_exactly(self) -> None:
        """With nothing received, the channel closes at exactly 90 s, not before."""
        self.clock.advance(89.5)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.5)
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.aborted)
        self.assertEqual(self.channel.close_reason, "idle timeout")
        self.assertIsInstance(sent_packets(self.transport)[-1], DisconnectPacket)

    def test_data_resets_idle_timeout(self) -> None:
        """Each received packet restarts the idle timeout."""
        self.clock.advance(60)
        self.channel.dataReceived(frame(message("still here")))
        self.clock.advance(89)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_idle_timeout_disabled(self) -> None:
        """idle_timeout=None never closes an idle channel."""
        channel, transport, clock = connect(limits=ChannelLimits(idle_timeout=None))
        clock.advance(3600)
        self.assertFalse(transport.disconnecting)

    def test_keepalive_after_silence(self) -> None:
        """After 30 s without sending, the channel sends a keep-alive Message."""
        self.clock.advance(29)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(1)
        [ping] = sent_packets(self.transport)
        self.assertEqual(ping, PureMessagePacket(KEEPALIVE_MESSAGE,
                                                 source_origin_time=ping.source_origin_time))

    def test_sending_postpones_keepalive(self) -> None:
        """Anything sent restarts the keep-alive interval."""
        self.clock.advance(20)
        self.channel.send_message("hello")
        self.transport.clear()
        self.clock.advance(29)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual([p.message for p in sent_packets(self.transport)], [KEEPALIVE_MESSAGE])

    def test_keepalive_repeats(self) -> None:
        """A quiet channel keeps pinging every interval."""
        for _ in range(3):
            self.clock.advance(30)
            self.channel.dataReceived(frame(message("answer")))
        self.assertEqual(len(sent_packets(self.transport)), 3)

    def test_keepalives_are_not_messages(self) -> None:
        """Keepalives, sent and received, are counted as keepalives, not as Messages, and
        the default handler logs no line for them (a real message still gets its debug
        line)."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.clock.advance(30)
        self.channel.dataReceived(frame(message(KEEPALIVE_MESSAGE)))
        counters = self.channel.counters
        self.assertEqual((counters["keepalives_out"], counters["keepalives_in"]), (1, 1))
        self.assertEqual(counters["packets_out.Message"], 0)
        self.assertEqual(counters["packets_in.Message"], 0)
        self.assertEqual([e for e in logged if "message from" in e.get("log_format", "")], [])
        self.channel.dataReceived(frame(message("hello")))
        self.assertEqual(counters["packets_in.Message"], 1)
        self.assertEqual(len([e for e in logged if "message from" in e.get("log_format", "")]),
                         1)

    def test_keepalive_disabled(self) -> None:
        """keepalive_interval=None sends nothing."""
        channel, transport, clock = connect(limits=ChannelLimits(keepalive_interval=None))
        clock.advance(60)
        self.assertEqual(transport.value(), b"")


class PartialFrameTests(SynchronousTestCase):
    """A frame must complete within partial_frame_timeout of its first byte (slowloris)."""

    def setUp(self) -> None:
        self.handlers, self.recorder = recording_handlers()
        self.channel, self.transport, self.clock = connect(handlers=self.handlers)
        self.channel.trust()
        self.bytes = frame(message("slow"))

    def test_incomplete_frame_aborts_at_deadline(self) -> None:
        """30 s after the first byte of a frame that never completes, the peer is aborted."""
        self.channel.dataReceived(self.bytes[:3])
        self.clock.advance(29.5)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.5)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.channel.counters["partial_frame_timeouts"], 1)

    def test_dripping_bytes_does_not_help(self) -> None:
        """A byte every second does not move the deadline of the frame it belongs to."""
        for byte in range(len(self.bytes) - 1)[:29]:
            self.channel.dataReceived(self.bytes[byte : byte + 1])
            self.clock.advance(1)
        self.assertFalse(self.transport.disconnecting)
        self.channel.dataReceived(self.bytes[29:30])
        self.clock.advance(1)
        self.assertTrue(self.transport.aborted)

    def test_completed_frames_reset_the_deadline(self) -> None:
        """A completed frame ends its deadline; the next partial frame gets a fresh one."""
        self.channel.dataReceived(self.bytes[:3])
        self.clock.advance(20)
        self.channel.dataReceived(self.bytes[3:] + self.bytes[:3])
        self.clock.advance(29)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.recorder.packets), 1)
        self.clock.advance(1)
        self.assertTrue(self.transport.aborted)

    def test_completed_frame_cancels_the_deadline(self) -> None:
        """Once every frame is complete, nothing is pending any more."""
        self.channel.dataReceived(self.bytes[:3])
        self.clock.advance(10)
        self.channel.dataReceived(self.bytes[3:])
        self.clock.advance(60)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.channel.counters["partial_frame_timeouts"], 0)


class CloseTests(SynchronousTestCase):
    """close() says goodbye and closes; a close that never drains is aborted."""

    def setUp(self) -> None:
        self.channel, self.transport, self.clock = connect()
        self.transport.clear()

    def test_close_sends_disconnect(self) -> None:
        """close() writes a Disconnect carrying the reason, then loses the connection."""
        closed = self.channel.close("bye now")
        [goodbye] = sent_packets(self.transport)
        self.assertEqual(goodbye.data, {"Reason": "bye now"})
        self.assertEqual(goodbye.ip, "10.0.0.1")
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.aborted)
        self.assertNoResult(closed)
        lose(self.channel)
        self.assertEqual(self.successResultOf(closed), "bye now")

    def test_close_timeout_aborts(self) -> None:
        """If the peer never lets the close drain, the connection is aborted at close_timeout."""
        self.channel.close()
        self.clock.advance(4.9)
        self.assertFalse(self.transport.aborted)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.aborted)
        lose(self.channel, ConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_is_idempotent(self) -> None:
        """A second close() sends nothing more and returns the same outcome."""
        first = self.channel.close("first")
        self.transport.clear()
        second = self.channel.close("second")
        self.assertEqual(self.transport.value(), b"")
        lose(self.channel)
        self.assertEqual(self.successResultOf(first), "first")
        self.assertEqual(self.successResultOf(second), "first")

    def test_abort_uses_abort_connection(self) -> None:
        """abort() writes a best-effort Disconnect and aborts, without waiting."""
        self.channel.abort("rude")
        self.assertTrue(self.transport.aborted)
        self.assertEqual(sent_packets(self.transport)[0].data, {"Reason": "rude"})
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WriteStallTests(SynchronousTestCase):
    """
    When the transport's buffer fills it pauses the channel's writer: frames queue in the
    channel, the channel keeps reading, and only a peer that drains nothing for
    write_stall_timeout is dropped.
    """

    def setUp(self) -> None:
        self.channel, self.transport, self.clock = connect(
            limits=ChannelLimits(max_queued_bytes=1000)
        )
        self.channel.trust()
        self.writer = self.transport.producer

    def test_pause_keeps_reading(self) -> None:
        """A full transport does not stop the channel reading: two peers writing to each other
        must never deadlock."""
        self.writer.pauseProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertFalse(self.channel.is_writable)
        recorder = RecordingHandler()
        self.channel.handlers.set_handler(PacketType.MESSAGE, recorder)
        self.channel.dataReceived(frame(message("still read")))
        self.assertEqual([p.message for p in recorder.packets], ["still read"])
        self.writer.resumeProducing()
        self.assertTrue(self.channel.is_writable)

    def test_stall_aborts(self) -> None:
        """Writes stalled for 20 s abort the connection."""
        self.writer.pauseProducing()
        self.clock.advance(19.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.channel.close_reason, "write stall")
        lose(self.channel, ConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resume_in_time_cancels(self) -> None:
        """A transport that drains in time cancels the stall deadline."""
        self.writer.pauseProducing()
        self.clock.advance(19)
        self.writer.resumeProducing()
        self.clock.advance(30)
        self.channel.dataReceived(frame(message("keeps idle at bay")))
        self.clock.advance(30)
        self.assertFalse(self.transport.disconnecting)

    def test_send_past_the_cap_is_loud(self) -> None:
        """A send past max_queued_bytes raises SendBufferFull; nothing is dropped, the
        channel stays open, and what was queued is delivered once the transport drains."""
        self.writer.pauseProducing()
        self.transport.clear()
        self.assertTrue(self.channel.send_message("a" * 300))
        self.assertTrue(self.channel.send_message("b" * 300))
        error = self.assertRaises(SendBufferFull, self.channel.send_message, "c" * 500)
        self.assertEqual(error.limit, 1000)
        self.assertGreater(error.queued, 600)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"")
        self.writer.resumeProducing()
        self.assertEqual([p.message[0] for p in sent_packets(self.transport)], ["a", "b"])
        self.assertEqual(self.channel.queued_bytes, 0)

    def test_queue_counted_only_while_paused(self) -> None:
        """Bytes written while the transport drains freely do not count toward the cap."""
        for _ in range(5):
            self.channel.send_message("x" * 500)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.channel.queued_bytes, 0)

    def test_drain(self) -> None:
        """drain() fires at once when writable, else once the queue is in the transport."""
        self.assertIs(self.successResultOf(self.channel.drain()), self.channel)
        self.writer.pauseProducing()
        self.channel.send_message("queued")
        first, second = self.channel.drain(), self.channel.when_writable()
        self.assertIsNot(first, second)
        self.assertNoResult(first)
        self.writer.resumeProducing()
        self.assertIs(self.successResultOf(first), self.channel)
        self.assertIs(self.successResultOf(second), self.channel)

    def test_drain_fails_on_close(self) -> None:
        """A writer still waiting when the connection goes away gets ChannelClosed."""
        self.writer.pauseProducing()
        waiting = self.channel.drain()
        lose(self.channel)
        self.failureResultOf(waiting, ChannelClosed)
        self.failureResultOf(self.channel.drain(), ChannelClosed)

    def test_close_flushes_the_queue_first(self) -> None:
        """close() hands everything queued to the transport before the Disconnect: nothing the
        application sent is lost to a graceful close."""
        self.writer.pauseProducing()
        self.transport.clear()
        self.channel.send_message("one")
        self.channel.send_message("two")
        self.channel.close("done")
        kinds = [(type(p).__name__, getattr(p, "message", None))
                 for p in sent_packets(self.transport)]
        self.assertEqual(kinds, [("PureMessagePacket", "one"), ("PureMessagePacket", "two"),
                                 ("DisconnectPacket", None)])
        self.assertTrue(self.transport.disconnecting)


class HostileInputTests(SynchronousTestCase):
    """Malformed or oversized input closes only the offending channel."""

    def setUp(self) -> None:
        self.handlers, self.recorder = recording_handlers()
        self.owner = RecordingOwner()

    def connect(self, **kwargs: Any) -> tuple[PeerChannel, AbortableTransport, Clock]:
        return connect(handlers=self.handlers, owner=self.owner, **kwargs)

    def test_junk_closes_only_the_offender(self) -> None:
        """A malformed frame aborts its channel; another channel keeps working."""
        bad, bad_transport, clock = self.connect()
        good, good_transport, _ = self.connect(clock=clock)
        bad.dataReceived(raw_frame(b"{not json"))
        self.assertTrue(bad_transport.aborted)
        self.assertEqual(bad.counters["malformed"], 1)
        self.assertIn(("peer_misbehaved", bad), [call[:2] for call in self.owner.calls])
        good.dataReceived(frame(message("fine")))
        self.assertFalse(good_transport.disconnecting)
        self.assertEqual(self.recorder.calls, [(good, message("fine"))])

    def test_no_packet_after_the_offence(self) -> None:
        """Frames after a fatal malformed one in the same read are not handled."""
        channel, transport, _ = self.connect()
        channel.dataReceived(raw_frame(b"[]") + frame(message("after")))
        self.assertTrue(transport.aborted)
        self.assertEqual(self.recorder.calls, [])

    def test_max_malformed(self) -> None:
        """With max_malformed=3, the third malformed frame drops the peer."""
        channel, transport, _ = self.connect(limits=ChannelLimits(max_malformed=3))
        channel.dataReceived(raw_frame(b"{") + raw_frame(b"null"))
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(frame(message("between")))
        self.assertEqual(len(self.recorder.calls), 1)
        channel.dataReceived(raw_frame(b'{"type": "Message", "packet": 7}'))
        self.assertTrue(transport.aborted)
        self.assertEqual(channel.counters["malformed"], 3)

    def test_untrusted_frame_cap(self) -> None:
        """Before trust, a frame declaring more than 4 KiB aborts at once."""
        self.assertEqual(ChannelLimits().max_untrusted_frame_size, 4096)
        channel, transport, _ = self.connect()
        channel.dataReceived((4 * 1024 + 1).to_bytes(4, "big"))
        self.assertTrue(transport.aborted)
        self.assertEqual(channel.counters["framing_errors"], 1)

    def test_untrusted_frame_at_cap_accepted(self) -> None:
        """Before trust, a frame of exactly 4 KiB is accepted."""
        channel, transport, _ = self.connect()
        packet = self.message_of_size(4 * 1024)
        channel.dataReceived(frame(packet))
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.recorder.packets, [packet])

    def test_trusted_frame_cap(self) -> None:
        """After trust, frames up to 1 MiB pass and a larger one aborts."""
        channel, transport, _ = self.connect()
        channel.trust()
        packet = self.message_of_size(1024 * 1024)
        channel.dataReceived(frame(packet))
        self.assertEqual(self.recorder.packets, [packet])
        channel.dataReceived((1024 * 1024 + 1).to_bytes(4, "big"))
        self.assertTrue(transport.aborted)

    def test_untrust_restores_small_cap(self) -> None:
        """untrust() brings the pre-trust cap back."""
        channel, transport, _ = self.connect()
        channel.trust()
        channel.untrust()
        channel.dataReceived((4 * 1024 + 1).to_bytes(4, "big"))
        self.assertTrue(transport.aborted)

    def test_caps_configurable(self) -> None:
        """Both caps come from ChannelLimits."""
        limits = ChannelLimits(max_untrusted_frame_size=200, max_frame_size=2000)
        channel, transport, _ = self.connect(limits=limits)
        channel.dataReceived(frame(self.message_of_size(200)))
        channel.trust()
        channel.dataReceived(frame(self.message_of_size(2000)))
        self.assertEqual(len(self.recorder.packets), 2)
        channel.dataReceived((2001).to_bytes(4, "big"))
        self.assertTrue(transport.aborted)
        other, other_transport, _ = self.connect(limits=limits)
        other.dataReceived((201).to_bytes(4, "big"))
        self.assertTrue(other_transport.aborted)

    def test_dotnet_oversized_frame(self) -> None:
        """In the dotnet format an unterminated frame past the untrusted cap aborts."""
        limits = ChannelLimits(max_untrusted_frame_size=100)
        channel, transport, _ = self.connect(codec="dotnet", limits=limits)
        channel.dataReceived(b"<Message>" + b"x" * 120)
        self.assertTrue(transport.aborted)

    def test_unknown_packet_type_ignored(self) -> None:
        """By default an unknown packet type is counted and ignored; the channel goes on."""
        channel, transport, _ = self.connect()
        channel.trust()
        channel.dataReceived(raw_frame(b'{"type": "FuturePacket", "packet": {}}') * 3)
        self.assertEqual(channel.counters["unknown"], 3)
        self.assertEqual(channel.counters["malformed"], 0)
        channel.dataReceived(frame(message("next")))
        self.assertEqual(len(self.recorder.packets), 1)
        self.assertFalse(transport.disconnecting)

    def test_unknown_packet_type_dropped(self) -> None:
        """With drop_unknown_packets, an unknown packet type drops the peer."""
        channel, transport, _ = self.connect(limits=ChannelLimits(drop_unknown_packets=True))
        channel.dataReceived(raw_frame(b'{"type": 5, "packet": {}}'))
        self.assertEqual(channel.counters["unknown"], 1)
        self.assertTrue(transport.aborted)

    def test_misbehaviour_reported_to_owner(self) -> None:
        """The owner hears of the misbehaviour before the channel closes."""
        channel, _, _ = self.connect()
        channel.dataReceived(b"\xff\xff\xff\xff")
        lose(channel, ConnectionLost)
        self.assertEqual([name for name in self.owner.names() if name != "channel_connected"],
                         ["peer_misbehaved", "channel_closed"])
        self.assertTrue(channel.close_reason.startswith("misbehaving"))

    def test_input_after_abort_ignored(self) -> None:
        """Bytes arriving after the channel decided to close are not decoded."""
        channel, _, _ = self.connect()
        channel.trust()
        channel.abort("bye")
        channel.dataReceived(frame(message("late")))
        self.assertEqual(self.recorder.calls, [])

    @staticmethod
    def message_of_size(size: int) -> PureMessagePacket:
        """Return a Message whose p2pnet frame body is exactly C{size} bytes."""
        empty = len(frame(message(""))) - 4
        return message("m" * (size - empty))


class SplitInputTests(SynchronousTestCase):
    """Packets are handled the same, in order, however the byte stream is split."""

    def check(self, codec: str, chunked: bool) -> None:
        handlers, recorder = recording_handlers()
        channel, transport, _ = connect(handlers=handlers, codec=codec)
        channel.trust()
        stream = b"".join(frame(packet, codec) for packet in SAMPLES.values()) * 3
        if chunked:
            for index in range(len(stream)):
                channel.dataReceived(stream[index : index + 1])
        else:
            channel.dataReceived(stream)
        self.assertEqual(recorder.packets, list(SAMPLES.values()) * 3)
        self.assertFalse(transport.disconnecting)

    def test_p2pnet_one_byte_at_a_time(self) -> None:
        """p2pnet frames fed a byte at a time are all handled, in order."""
        self.check("p2pnet", chunked=True)

    def test_p2pnet_all_at_once(self) -> None:
        """p2pnet frames fed in one read are all handled, in order."""
        self.check("p2pnet", chunked=False)

    def test_dotnet_one_byte_at_a_time(self) -> None:
        """dotnet frames fed a byte at a time are all handled, in order."""
        self.check("dotnet", chunked=True)

    def test_dotnet_all_at_once(self) -> None:
        """dotnet frames fed in one read are all handled, in order."""
        self.check("dotnet", chunked=False)


class LifecycleTests(SynchronousTestCase):
    """when_trusted(), when_closed(), trust(), send() and the channel's public state."""

    def test_when_trusted_fresh_deferreds(self) -> None:
        """Each when_trusted() call returns a new Deferred; all fire with the channel."""
        channel, _, _ = connect()
        first, second = channel.when_trusted(), channel.when_trusted()
        self.assertIsNot(first, second)
        self.assertNoResult(first)
        channel.trust()
        self.assertIs(self.successResultOf(first), channel)
        self.assertIs(self.successResultOf(second), channel)
        self.assertIs(self.successResultOf(channel.when_trusted()), channel)

    def test_when_trusted_fails_if_closed_first(self) -> None:
        """A channel that closes before trust fails its when_trusted() with ChannelClosed."""
        channel, _, _ = connect(lambda channel: Deferred())
        trusted = channel.when_trusted()
        lose(channel)
        self.failureResultOf(trusted, ChannelClosed)
        self.failureResultOf(channel.when_trusted(), ChannelClosed)

    def test_when_closed(self) -> None:
        """when_closed() hands each caller a new Deferred firing with the close reason."""
        channel, _, _ = connect()
        first, second = channel.when_closed(), channel.when_closed()
        self.assertIsNot(first, second)
        self.assertNoResult(first)
        lose(channel, ConnectionLost)
        reason = self.successResultOf(first)
        self.assertTrue(reason.startswith("connection lost"), reason)
        self.assertEqual(self.successResultOf(second), reason)
        self.assertEqual(self.successResultOf(channel.when_closed()), reason)
        self.assertEqual(channel.close_reason, reason)
        self.assertTrue(channel.is_closed)

    def test_trust_and_untrust(self) -> None:
        """trust() opens the gate and the large frame cap; untrust() reverses both."""
        owner = RecordingOwner()
        channel, _, _ = connect(owner=owner)
        decoder = channel._receiver.decoder
        self.assertEqual(decoder.max_frame_size, 4 * 1024)
        self.assertFalse(channel.allows(PacketType.DATA_TRANSMIT))
        channel.trust()
        self.assertTrue(channel.is_trusted)
        self.assertTrue(channel.allows(PacketType.DATA_TRANSMIT))
        self.assertEqual(decoder.max_frame_size, 1024 * 1024)
        self.assertEqual(owner.names().count("channel_trusted"), 1)
        channel.trust()
        self.assertEqual(owner.names().count("channel_trusted"), 1)
        channel.untrust()
        self.assertFalse(channel.is_trusted)
        self.assertFalse(channel.allows(PacketType.DATA_TRANSMIT))
        self.assertEqual(decoder.max_frame_size, 4 * 1024)
        trusted_again = channel.when_trusted()
        self.assertNoResult(trusted_again)
        channel.trust()
        self.successResultOf(trusted_again)

    def test_closed_channel_untrusted(self) -> None:
        """A closed channel is no longer trusted, and trust() cannot trust it again."""
        channel, _, _ = connect()
        channel.trust()
        lose(channel)
        self.assertFalse(channel.is_trusted)
        self.failureResultOf(channel.when_trusted(), ChannelClosed)
        channel.trust()
        self.assertFalse(channel.is_trusted)

    def test_send(self) -> None:
        """send() writes one frame and returns True while open, False once closed."""
        channel, transport, _ = connect()
        packet = message("hi")
        self.assertTrue(channel.send(packet))
        self.assertEqual(transport.value(), frame(packet))
        self.assertEqual(channel.counters["packets_out.Message"], 1)
        lose(channel)
        transport.clear()
        self.assertFalse(channel.send(packet))
        self.assertFalse(channel.send_message("hi"))
        self.assertEqual(transport.value(), b"")

    def test_send_while_closing(self) -> None:
        """Nothing is sent after close() has been called."""
        channel, transport, _ = connect()
        channel.close()
        transport.clear()
        self.assertFalse(channel.send_message("too late"))
        self.assertEqual(transport.value(), b"")

    def test_send_message_identifier(self) -> None:
        """send_message() stamps the channel's local identifier."""
        channel, transport, _ = connect(local_identifier="node-a")
        channel.send_message("hi")
        [packet] = sent_packets(transport)
        self.assertEqual((packet.message, packet.source_origin_identifier), ("hi", "node-a"))

    def test_properties(self) -> None:
        """properties is a per-channel dict for custom data."""
        first, _, _ = connect()
        second, _, _ = connect()
        self.assertEqual(first.properties, {})
        first.properties["role"] = "relay"
        self.assertEqual(second.properties, {})
        self.assertEqual(first.properties, {"role": "relay"})

    def test_last_incoming_data_received(self) -> None:
        """last_incoming_data_received is the clock's time of the latest read."""
        channel, _, clock = connect()
        clock.advance(12)
        self.assertEqual(channel.last_incoming_data_received, 0)
        channel.dataReceived(frame(message("x"))[:2])
        self.assertEqual(channel.last_incoming_data_received, 12)
        clock.advance(3)
        channel.dataReceived(frame(message("x"))[2:])
        self.assertEqual(channel.last_incoming_data_received, 15)

    def test_peer_from_address(self) -> None:
        """Without a given peer, the channel's peer is the connection's remote address."""
        channel, _, _ = connect()
        self.assertEqual(channel.peer, GenericPeer("10.0.0.7", 40001))

    def test_nothing_pending_after_close(self) -> None:
        """After connectionLost no DelayedCall of the channel is left, whatever was running."""
        channel, _, clock = connect(lambda channel: Deferred())
        channel.dataReceived(frame(message("x"))[:3])
        channel.transport.producer.pauseProducing()
        channel.close()
        self.assertNotEqual(clock.getDelayedCalls(), [])
        lose(channel)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.failureResultOf(channel.when_trusted(), ChannelClosed)

    def test_connection_lost_clears_observers(self) -> None:
        """The data-received observers are dropped with the connection."""
        channel, _, _ = connect()
        channel.on_data_received.add(lambda channel, packet: None)
        lose(channel)
        self.assertEqual(len(channel.on_data_received), 0)

    def test_owner_sees_lifecycle(self) -> None:
        """The owner hears of connection, trust and close, in that order."""
        owner = RecordingOwner()
        channel, _, _ = connect(lambda channel: succeed(True), owner=owner)
        lose(channel)
        self.assertEqual(owner.names(), ["channel_connected", "channel_trusted",
                                         "channel_closed"])

    def test_local_identity_sent_first(self) -> None:
        """A channel given a local identity sends it as its first packet."""
        identity = IdentifierPacket("hello", 8001, "10.0.0.1", source_origin_identifier="me")
        channel, transport, _ = connect(local_identity=identity)
        self.assertEqual(sent_packets(transport), [identity])
        self.assertEqual(channel.local_identifier, "me")


class AwaitIdentityTests(SynchronousTestCase):
    """With await_identity, the peer's first packet must be its Identity."""

    def test_identity_first(self) -> None:
        """The Identity goes to owner.identity_received, names the peer, then trust starts."""
        started: list[PeerChannel] = []

        def trust(channel: PeerChannel) -> Deferred[bool]:
            started.append(channel)
            return succeed(True)

        owner = RecordingOwner()
        channel, _, _ = connect(trust, owner=owner, await_identity=True)
        self.assertEqual(started, [])
        identity = IdentifierPacket("hi", 8123, "10.0.0.7", source_origin_identifier="peer-7")
        channel.dataReceived(frame(identity))
        self.assertEqual(started, [channel])
        self.assertEqual(channel.peer, GenericPeer("10.0.0.7", 8123, "peer-7"))
        self.assertTrue(channel.is_trusted)

    def test_other_first_packet(self) -> None:
        """Any other first packet drops the peer."""
        channel, transport, _ = connect(await_identity=True)
        channel.dataReceived(frame(message("hi")))
        self.assertTrue(transport.aborted)

    def test_refused_identity(self) -> None:
        """An identity the owner refuses closes the channel."""

        class Refusing(ChannelOwner):
            def identity_received(self, channel: PeerChannel, packet: Any) -> bool:
                return False

        channel, transport, _ = connect(owner=Refusing(), await_identity=True)
        channel.dataReceived(frame(SAMPLES[PacketType.IDENTITY]))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(channel.counters["refused_identities"], 1)

    def test_identity_deadline(self) -> None:
        """A peer that never says who it is is dropped at the handshake deadline."""
        channel, transport, clock = connect(await_identity=True)
        clock.advance(10)
        self.assertTrue(transport.aborted)
        self.failureResultOf(channel.when_trusted(), HandshakeTimeout)


class ConnectedChannelsTests(SynchronousTestCase):
    """Two channels joined in memory talk to each other and close together."""

    def test_message_both_ways(self) -> None:
        """A message sent on one channel reaches the other's handler."""
        clock = Clock()
        handlers, recorder = recording_handlers()

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", handlers, clock=clock)

        server, client, pump = connected_channels(make, make, clock)
        client.send_message("to server")
        server.send_message("to client")
        pump.flush()
        self.assertEqual(
            sorted((channel is server, packet.message) for channel, packet in recorder.calls),
            [(False, "to client"), (True, "to server")],
        )

    def test_close_reaches_both(self) -> None:
        """close() on one side closes both; neither leaves a timer behind."""
        clock = Clock()

        def make() -> PeerChannel:
            return PeerChannel("p2pnet", clock=clock)

        server, client, pump = connected_channels(make, make, clock)
        closed = client.close("done")
        pump.flush()
        self.assertEqual(self.successResultOf(closed), "done")
        self.assertEqual(self.successResultOf(server.when_closed()), "disconnected by peer")
        self.assertEqual(clock.getDelayedCalls(), [])


class TrustMidReadTests(SynchronousTestCase):
    """
    A peer that becomes trusted part-way through a read gets the trusted frame limit for the
    rest of that read: a large packet right behind the last handshake packet is accepted.
    """

    def make_channel(self, wire: str) -> tuple[PeerChannel, list[Packet]]:
        def trust_on_password(channel: PeerChannel) -> Deferred[bool]:
            decided: Deferred[bool] = Deferred()

            def observe(channel: PeerChannel, packet: object) -> bool:
                if isinstance(packet, PureMessagePacket) and packet.message == "open sesame":
                    decided.callback(True)
                    return True
                return False

            channel.on_data_received.add(observe)
            return decided

        received: list[Packet] = []
        handlers = PacketHandleProtocol()
        handlers.set_handler(PacketType.DATA_TRANSMIT, lambda ch, p: received.append(p))
        channel = PeerChannel(wire, handlers, trust_on_password, clock=Clock())
        channel.makeConnection(StringTransport())
        return channel, received

    def test_large_frame_behind_trust(self) -> None:
        """Handshake and a 100 KB frame in one read: trusted, then the frame is handled."""
        for wire in ("p2pnet", "dotnet"):
            channel, received = self.make_channel(wire)
            big = DataTransmissionPacket(b"x" * 100_000, DataPayloadFormat.MISC_DATA)
            channel.dataReceived(channel.codec.encode(PureMessagePacket("open sesame"))
                                 + channel.codec.encode(big))
            self.assertTrue(channel.is_trusted, wire)
            self.assertEqual([p.payload for p in received], [big.payload], wire)
            self.assertFalse(channel.transport.disconnecting, wire)

    def test_large_frame_without_trust_is_dropped(self) -> None:
        """The same frame from a peer that stays untrusted is over the limit: dropped."""
        for wire in ("p2pnet", "dotnet"):
            channel, received = self.make_channel(wire)
            big = DataTransmissionPacket(b"x" * 100_000, DataPayloadFormat.MISC_DATA)
            channel.dataReceived(channel.codec.encode(PureMessagePacket("wrong"))
                                 + channel.codec.encode(big))
            self.assertFalse(channel.is_trusted, wire)
            self.assertEqual(received, [], wire)
            self.assertTrue(channel.transport.disconnecting, wire)
            self.assertEqual(channel.counters["framing_errors"], 1, wire)


class PausingTransport(StringTransport):
    """A transport that, like Twisted's TCP transports, pauses its producer inside write()
    once its buffer passes C{buffer_size}; L{drain_all} plays the reactor emptying it."""

    buffer_size = 65536

    def __init__(self) -> None:
        super().__init__()
        self.delivered = b""

    def write(self, data: bytes) -> None:
        super().write(data)
        self._maybe_pause()

    def writeSequence(self, data: Any) -> None:
        super().writeSequence(data)
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if self.io.tell() > self.buffer_size and self.producer is not None:
            self.producer.pauseProducing()

    def drain_all(self) -> None:
        """The peer read everything: empty the buffer and resume the producer, until quiet."""
        chunks = [self.delivered]
        for _ in range(100_000):
            chunks.append(self.value())
            self.clear()
            self.producer.resumeProducing()
            if not self.io.tell():
                break
        self.delivered = b"".join(chunks)


class SendBufferTests(SynchronousTestCase):
    """A burst from a plain loop reaches a peer that reads, whole and in order."""

    def test_one_large_frame_is_not_a_stall(self) -> None:
        """A single frame larger than max_queued_bytes is sent; the next send waits behind it."""
        channel = PeerChannel("p2pnet", clock=Clock(), limits=ChannelLimits(max_queued_bytes=1000))
        transport = PausingTransport()
        channel.makeConnection(transport)
        big = DataTransmissionPacket(b"x" * 100_000, DataPayloadFormat.MISC_DATA)
        self.assertTrue(channel.send(big))
        self.assertFalse(channel.is_writable)
        self.assertTrue(channel.send_message("a" * 900))
        self.assertFalse(channel.transport.disconnecting)
        self.assertRaises(SendBufferFull, channel.send_message, "b" * 200)
        self.assertIsNone(channel.close_reason)

    def test_plain_loop_burst_arrives_whole_and_in_order(self) -> None:
        """
        50 MiB of small messages sent in one plain loop, to a transport that pauses like TCP and
        a peer that reads, all arrive, in order, with no error and no abort.
        """
        clock = Clock()
        channel = PeerChannel("p2pnet", clock=clock)
        transport = PausingTransport()
        channel.makeConnection(transport)
        text = "m" * 200
        count = 50 * 1024 * 1024 // len(frame(message(text)))
        for number in range(count):
            channel.send_message(f"{number:08d}{text[8:]}")
        self.assertFalse(transport.disconnecting)
        self.assertGreater(channel.queued_bytes, 40 * 1024 * 1024)
        transport.drain_all()
        decoder = get_codec("p2pnet").decoder(1024 * 1024)
        received = decoder.feed(transport.delivered)
        self.assertEqual(len(received), count)
        self.assertEqual([int(p.message[:8]) for p in received[:: count // 50]],
                         list(range(0, count, count // 50)))
        self.assertEqual(int(received[-1].message[:8]), count - 1)
        self.assertEqual(channel.queued_bytes, 0)
        self.assertTrue(channel.is_writable)
        self.assertEqual([call.func.__name__ for call in clock.getDelayedCalls()],
                         ["_fire"])  # only the deadline queue: no stall timer left


class KeepaliveWhileQueuedTests(SynchronousTestCase):
    """The keep-alive ping never competes with queued data, and no timer outlives the channel."""

    def test_no_keepalive_behind_a_queue(self) -> None:
        """With data queued for the peer, the keep-alive is not sent: the data is on its way."""
        clock = Clock()
        channel = PeerChannel("p2pnet", clock=clock,
                              limits=ChannelLimits(idle_timeout=None, write_stall_timeout=100.0))
        transport = StringTransport()
        channel.makeConnection(transport)
        transport.producer.pauseProducing()  # the transport says its buffer is full
        channel.send_message("queued")
        transport.clear()
        clock.advance(channel.limits.keepalive_interval)
        self.assertEqual(channel.counters["packets_out.Message"], 1)
        transport.producer.resumeProducing()
        self.assertEqual([p.message for p in sent_packets(transport)], ["queued"])
        channel.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(clock.getDelayedCalls(), [])


class MessageTimestampTests(SynchronousTestCase):
    """send_message stamps messages from the channel's clock, to the millisecond."""

    def test_stamped_from_the_channel_clock(self) -> None:
        """The time is the injected clock's, truncated to the millisecond; messages of one
        millisecond share it, the next millisecond gets a new one."""
        channel, transport, clock = connect(
            limits=ChannelLimits(idle_timeout=None, keepalive_interval=None)
        )
        clock.advance(1_764_000_000.1234567 - clock.seconds())
        channel.send_message("one")
        channel.send_message("two")
        clock.advance(0.001)
        channel.send_message("three")
        times = [p.source_origin_time for p in sent_packets(transport)
                 if isinstance(p, PureMessagePacket)]
        expected = datetime.fromtimestamp(1_764_000_000.123, timezone.utc)
        self.assertEqual(times[:2], [expected, expected])
        self.assertEqual(times[2], datetime.fromtimestamp(1_764_000_000.124, timezone.utc))

    def test_message_must_be_text(self) -> None:
        """A message that is not a str is refused at once, as the packet would refuse it."""
        channel, transport, _ = connect()
        transport.clear()
        self.assertRaises(TypeError, channel.send_message, b"bytes")
        self.assertEqual(transport.value(), b"")


class EvictionFactsTests(SynchronousTestCase):
    """
    A channel keeps what eviction weighs: since when its peer is trusted, and when it last
    sent a useful packet (one a handler took; a keep-alive, a refused or consumed one is not).
    """

    def test_trusted_since(self) -> None:
        """Set on the clock when trust is entered, cleared when it is left, set anew after."""
        channel, _, clock = connect()
        self.assertIsNone(channel.trusted_since)
        clock.advance(7)
        channel.trust()
        self.assertEqual(channel.trusted_since, 7.0)
        clock.advance(5)
        channel.trust()  # already trusted: the time stays
        self.assertEqual(channel.trusted_since, 7.0)
        channel.untrust()
        self.assertIsNone(channel.trusted_since)
        clock.advance(1)
        channel.trust()
        self.assertEqual(channel.trusted_since, 13.0)

    def test_last_useful_packet(self) -> None:
        """A dispatched packet stamps the time, trusted or not; a keep-alive does not."""
        handlers, recorder = recording_handlers()
        channel, _, clock = connect(handlers=handlers)
        self.assertIsNone(channel.last_useful_packet)
        clock.advance(3)
        channel.dataReceived(frame(message(KEEPALIVE_MESSAGE)))
        self.assertEqual((len(recorder.packets), channel.last_useful_packet), (1, None))
        channel.dataReceived(frame(message("hello")))
        self.assertEqual(channel.last_useful_packet, 3.0)
        channel.trust()
        clock.advance(2)
        channel.dataReceived(frame(SAMPLES[PacketType.DATA_TRANSMIT]))
        self.assertEqual(channel.last_useful_packet, 5.0)
        clock.advance(2)
        channel.dataReceived(frame(message(KEEPALIVE_MESSAGE)))
        self.assertEqual((len(recorder.packets), channel.last_useful_packet), (4, 5.0))

    def test_refused_or_consumed_is_not_useful(self) -> None:
        """A packet the gate refuses, or an observer consumes, reached no handler."""
        handlers, recorder = recording_handlers()
        channel, _, clock = connect(handlers=handlers, policy=IncomingPeerTrustPolicy(
            allow_default_communication=False))
        clock.advance(1)
        channel.dataReceived(frame(message("hello")))
        channel.on_data_received.add(lambda ch, packet: True)
        channel.trust()
        channel.dataReceived(frame(message("consumed")))
        self.assertEqual((recorder.packets, channel.counters["refused"]), ([], 1))
        self.assertIsNone(channel.last_useful_packet)
