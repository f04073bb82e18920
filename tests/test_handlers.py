# -*- test-case-name: tests.test_handlers -*-
"""
Tests for L{p2pnet_tx.handlers}: the per-network registry of packet handlers and the default
handlers of the reference implementation.
"""

from __future__ import annotations

from typing import Any

import attrs

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger, LogLevel, globalLogPublisher
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
from p2pnet_tx.testing import RecordingHandler


class FakeChannel:
    """The little of a channel the default handlers use."""

    def __init__(self) -> None:
        self.peer = GenericPeer("10.0.0.7", 8001)
        self.disconnected: list[DisconnectPacket] = []

    def peer_disconnected(self, packet: DisconnectPacket) -> None:
        self.disconnected.append(packet)

    def log_peer(self, log: Logger, level: LogLevel, format: str, **fields: Any) -> bool:
        log.emit(level, format, **fields)
        return True


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
    """The handlers a registry starts with: Disconnect closes the channel, the rest is logged."""

    def setUp(self) -> None:
        self.channel = FakeChannel()
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_identity(self) -> None:
        """An Identity packet is only logged: a standalone channel remembers no peers."""
        packet = IdentifierPacket("hello", 8001, "10.0.0.9")
        handle_identity(self.channel, packet)  # type: ignore[arg-type]
        [event] = [e for e in self.logged if e.get("ip") == "10.0.0.9"]
        self.assertEqual(event["port"], 8001)

    def test_disconnect(self) -> None:
        """A Disconnect closes the channel it came on, whatever address it names."""
        packet = DisconnectPacket("10.0.0.99", 9999)
        handle_disconnect(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual(self.channel.disconnected, [packet])

    def test_peer_group(self) -> None:
        """A PeerGroup packet is logged with its size."""
        packet = CollectionSharePacket(100, [GenericPeer("10.0.0.8", 8002)])
        handle_peer_group(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual([e["count"] for e in self.logged if "count" in e], [1])

    def test_data_transmit(self) -> None:
        """A DataTransmit packet is logged with its size."""
        packet = DataTransmissionPacket(b"xyz", DataPayloadFormat.FILE)
        handle_data_transmit(self.channel, packet)  # type: ignore[arg-type]
        self.assertEqual([e["size"] for e in self.logged if "size" in e], [3])

    def test_message_logged_truncated(self) -> None:
        """
        A Message is logged at debug level, its text cut to 100 characters and escaped, with
        a marker saying how much was cut.
        """
        handle_message(self.channel, PureMessagePacket("m\n" * 500))  # type: ignore[arg-type]
        [event] = [e for e in self.logged if "text" in e]
        self.assertEqual(event["text"], "m\\n" * 33 + "m...[933 more chars]")
        self.assertEqual(event["log_level"].name, "debug")

    def test_identity_address_escaped(self) -> None:
        """The address an Identity names is the peer's text: it is logged escaped."""
        packet = IdentifierPacket("hello", 8001, "fe80::1%\x1b[2J")
        handle_identity(self.channel, packet)  # type: ignore[arg-type]
        [event] = [e for e in self.logged if "ip" in e]
        self.assertEqual(event["ip"], "fe80::1%\\x1b[2J")


@attrs.frozen
class StampedMessage(PureMessagePacket):
    """An application's own kind of Message."""


class SubclassDispatchTests(SynchronousTestCase):
    """A packet of a subclass goes to the handler of its packet type."""

    def test_subclass_dispatched_by_kind(self) -> None:
        """dispatch() finds the handler of a PureMessagePacket subclass by its kind."""
        recorder = RecordingHandler()
        handlers = PacketHandleProtocol()
        handlers.set_handler(PacketType.MESSAGE, recorder)
        packet = StampedMessage("hi")
        handlers.dispatch(None, packet)  # type: ignore[arg-type]
        self.assertEqual(recorder.packets, [packet])


class RegistryDefaultsTests(SynchronousTestCase):
    """A registry can be given its own defaults, which reset() returns to."""

    def test_given_defaults_replace_module_defaults(self) -> None:
        """The handlers given as defaults are used, and the others stay the module's."""
        mine = RecordingHandler()
        handlers = PacketHandleProtocol(defaults={PacketType.PEER_GROUP: mine})
        self.assertIs(handlers.get_handler(PacketType.PEER_GROUP), mine)
        self.assertIs(handlers.get_handler(PacketType.MESSAGE), handle_message)

    def test_reset_returns_to_given_default(self) -> None:
        """reset() restores the registry's own default, not the module's."""
        mine = RecordingHandler()
        handlers = PacketHandleProtocol(defaults={PacketType.PEER_GROUP: mine})
        handlers.set_handler(PacketType.PEER_GROUP, None)
        handlers.reset(PacketType.PEER_GROUP)
        self.assertIs(handlers.get_handler(PacketType.PEER_GROUP), mine)

    def test_bad_defaults_refused(self) -> None:
        """Defaults are checked like set_handler: a wrong key or a non-callable is a TypeError."""
        with self.assertRaises(TypeError):
            PacketHandleProtocol(defaults={"Message": ignore})  # type: ignore[dict-item]
        with self.assertRaises(TypeError):
            PacketHandleProtocol(defaults={PacketType.MESSAGE: 3})  # type: ignore[dict-item]
