# -*- test-case-name: tests.test_handlers -*-
"""
Tests for L{p2pnet_tx.handlers}: the per-network registry of packet handlers and the default
handlers of the reference implementation.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.handlers import (
    DEFAULT_HANDLERS,
    PacketHandleProtocol,
    handle_data_transmit,
    handle_disconnect,
    handle_identity,
    handle_message,
    handle_peer_group,
    ignore,
)
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    PacketType,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer


class FakeOwner:
    """Records the owner calls the default handlers make."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def add_peer(self, channel: Any, packet: Any) -> None:
        self.calls.append(("add_peer", channel, packet))

    def process_peer_list(self, channel: Any, packet: Any) -> None:
        self.calls.append(("process_peer_list", channel, packet))

    def data_received(self, channel: Any, packet: Any) -> None:
        self.calls.append(("data_received", channel, packet))


class FakeChannel:
    """The little of a channel the default handlers use."""

    def __init__(self) -> None:
        self.owner = FakeOwner()
        self.peer = GenericPeer("10.0.0.7", 8001)
        self.disconnected: list[DisconnectPacket] = []

    def peer_disconnected(self, packet: DisconnectPacket) -> None:
        self.disconnected.append(packet)


class PacketHandleProtocolTests(SynchronousTestCase):
    """A registry maps each packet type to one handler and runs it."""

    def setUp(self) -> None:
        self.handlers = PacketHandleProtocol()
        self.channel = FakeChannel()
        self.packet = PureMessagePacket("hello")

    def test_starts_with_defaults(self) -> None:
        """A new registry has the reference's handler for each of the five types."""
        self.assertEqual(set(DEFAULT_HANDLERS), set(PacketType))
        for kind in PacketType:
            self.assertIs(self.handlers.get_handler(kind), DEFAULT_HANDLERS[kind])

    def test_set_get_reset(self) -> None:
        """set_handler replaces a type's handler; reset gives the default back."""

        def mine(channel: Any, packet: Any) -> None:
            pass

        self.handlers.set_handler(PacketType.MESSAGE, mine)
        self.assertIs(self.handlers.get_handler(PacketType.MESSAGE), mine)
        self.assertIs(self.handlers.get_handler(PacketType.IDENTITY), handle_identity)
        self.handlers.reset(PacketType.MESSAGE)
        self.assertIs(self.handlers.get_handler(PacketType.MESSAGE), handle_message)

    def test_none_means_ignore(self) -> None:
        """set_handler(kind, None) installs the handler that does nothing."""
        self.handlers.set_handler(PacketType.DATA_TRANSMIT, None)
        self.assertIs(self.handlers.get_handler(PacketType.DATA_TRANSMIT), ignore)
        self.assertIsNone(ignore(self.channel, self.packet))  # type: ignore[arg-type]

    def test_bad_arguments(self) -> None:
        """A kind that is not a PacketType or a handler that is not callable is refused."""
        with self.assertRaises(TypeError):
            self.handlers.set_handler("Message", ignore)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            self.handlers.set_handler(PacketType.MESSAGE, "not callable")  # type: ignore
        self.assertIs(self.handlers.get_handler(PacketType.MESSAGE), handle_message)

    def test_registries_are_independent(self) -> None:
        """Two registries (two networks) never share handlers."""
        other = PacketHandleProtocol()
        self.handlers.set_handler(PacketType.MESSAGE, None)
        self.assertIs(other.get_handler(PacketType.MESSAGE), handle_message)

    def test_handle_sync(self) -> None:
        """handle() runs the handler with the channel and packet; its result is a Deferred."""
        calls: list[tuple[Any, Any]] = []
        self.handlers.set_handler(PacketType.MESSAGE,
                                  lambda channel, packet: calls.append((channel, packet)) or 7)
        result = self.handlers.handle(self.channel, self.packet)  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(result), 7)
        self.assertEqual(calls, [(self.channel, self.packet)])

    def test_handle_raising(self) -> None:
        """A handler that raises gives a failed Deferred, never an exception."""

        def broken(channel: Any, packet: Any) -> None:
            raise ZeroDivisionError()

        self.handlers.set_handler(PacketType.MESSAGE, broken)
        result = self.handlers.handle(self.channel, self.packet)  # type: ignore[arg-type]
        self.failureResultOf(result, ZeroDivisionError)

    def test_handle_deferred(self) -> None:
        """A handler's Deferred is waited for."""
        later: Deferred[str] = Deferred()
        self.handlers.set_handler(PacketType.MESSAGE, lambda channel, packet: later)
        result = self.handlers.handle(self.channel, self.packet)  # type: ignore[arg-type]
        self.assertNoResult(result)
        later.callback("done")
        self.assertEqual(self.successResultOf(result), "done")

    def test_handle_coroutine(self) -> None:
        """A coroutine function is a handler; its outcome is the Deferred's."""
        gate: Deferred[None] = Deferred()

        async def handler(channel: Any, packet: Any) -> str:
            await gate
            return packet.message

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        result = self.handlers.handle(self.channel, self.packet)  # type: ignore[arg-type]
        self.assertNoResult(result)
        gate.callback(None)
        self.assertEqual(self.successResultOf(result), "hello")

    def test_handle_failing_coroutine(self) -> None:
        """A coroutine handler that raises gives a failed Deferred."""

        async def handler(channel: Any, packet: Any) -> None:
            await succeed(None)
            raise KeyError("nope")

        self.handlers.set_handler(PacketType.MESSAGE, handler)
        result = self.handlers.handle(self.channel, self.packet)  # type: ignore[arg-type]
        self.failureResultOf(result, KeyError)


class DefaultHandlerTests(SynchronousTestCase):
    """The reference's handlers: each hands its packet to the channel or its owner."""

    def setUp(self) -> None:
        self.channel = FakeChannel()

    def test_identity(self) -> None:
        """An Identity packet asks the owner to add the peer it names."""
        packet = IdentifierPacket("hello", 8001, "10.0.0.9")
        handle_identity(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual(self.channel.owner.calls, [("add_peer", self.channel, packet)])

    def test_disconnect(self) -> None:
        """A Disconnect closes the channel it came on, whatever address it names."""
        packet = DisconnectPacket("10.0.0.99", 9999)
        handle_disconnect(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual(self.channel.disconnected, [packet])
        self.assertEqual(self.channel.owner.calls, [])

    def test_peer_group(self) -> None:
        """A PeerGroup packet goes to the owner's peer-list processing."""
        packet = CollectionSharePacket(100, [GenericPeer("10.0.0.8", 8002)])
        handle_peer_group(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual(self.channel.owner.calls, [("process_peer_list", self.channel, packet)])

    def test_data_transmit(self) -> None:
        """A DataTransmit packet goes to the owner's distribution hook."""
        packet = DataTransmissionPacket(b"x", DataPayloadFormat.FILE)
        handle_data_transmit(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual(self.channel.owner.calls, [("data_received", self.channel, packet)])

    def test_message_logged_truncated(self) -> None:
        """A Message is logged at debug level, its text cut to 200 characters."""
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        handle_message(self.channel, PureMessagePacket("m" * 1000))  # type: ignore[arg-type]
        [event] = [e for e in logged if "text" in e]
        self.assertEqual(event["text"], "m" * 200)
        self.assertEqual(event["log_level"].name, "debug")
        self.assertEqual(self.channel.owner.calls, [])
