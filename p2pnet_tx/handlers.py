# -*- test-case-name: tests.test_handlers -*-
"""
L{PacketHandleProtocol}: the registry of what a network does with each accepted packet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Union

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger, LogLevel

from p2pnet_tx.logtext import peer_text
from p2pnet_tx.packets import (
    PACKET_CLASSES,
    CollectionSharePacket,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
    PureMessagePacket,
)

if TYPE_CHECKING:
    from p2pnet_tx.channel import PeerChannel

PacketHandler = Callable[["PeerChannel", Any], Union[None, Deferred[Any], Awaitable[Any]]]
"""A handler: C{fn(channel, packet)}, returning nothing, a Deferred, or a coroutine."""

log = Logger(namespace="p2pnet_tx.handlers")


# The default handlers log one debug line per packet: through the channel's log budget, so
# that a peer cannot fill a log that keeps debug lines (twistd's does).


def handle_identity(channel: PeerChannel, packet: IdentifierPacket) -> None:
    """Log the peer an Identity packet names (a network remembers it instead)."""
    channel.log_peer(log, LogLevel.debug, "{peer} named a peer at {ip}:{port}",
                     peer=channel.peer, ip=peer_text(packet.ip), port=packet.data)


def handle_disconnect(channel: PeerChannel, packet: DisconnectPacket) -> None:
    """Close this channel, and only this one: a peer can never close another's channel."""
    channel.peer_disconnected(packet)


def handle_peer_group(channel: PeerChannel, packet: CollectionSharePacket) -> None:
    """Log the size of a shared peer list (a network processes it instead)."""
    channel.log_peer(log, LogLevel.debug, "{peer} shared {count} peers", peer=channel.peer,
                     count=len(packet.peers))


def handle_data_transmit(channel: PeerChannel, packet: DataTransmissionPacket) -> None:
    """Log the size of received data (a network hands it to distribution instead)."""
    channel.log_peer(log, LogLevel.debug, "{peer} sent {size} bytes of data",
                     peer=channel.peer, size=len(packet.payload))


def handle_message(channel: PeerChannel, packet: PureMessagePacket) -> None:
    """Log a text message (its first 100 characters, escaped: see L{peer_text}); a keepalive
    is not logged."""
    from p2pnet_tx.channel import KEEPALIVE_MESSAGE

    if packet.message == KEEPALIVE_MESSAGE:
        return
    channel.log_peer(log, LogLevel.debug, "message from {peer}: {text}", peer=channel.peer,
                     text=peer_text(packet.message))


DEFAULT_HANDLERS: dict[PacketType, PacketHandler] = {
    PacketType.IDENTITY: handle_identity,
    PacketType.DISCONNECT: handle_disconnect,
    PacketType.PEER_GROUP: handle_peer_group,
    PacketType.DATA_TRANSMIT: handle_data_transmit,
    PacketType.MESSAGE: handle_message,
}
"""
The handlers a registry starts with unless it is given others: they close a channel on a
Disconnect and log everything else.  A network gives its registry its own handlers for
Identity, PeerGroup and DataTransmit.
"""


def ignore(channel: PeerChannel, packet: Packet) -> None:
    """A handler that does nothing: packets then reach only the data-received observers."""


class PacketHandleProtocol:
    """
    Which handler each packet type goes to; one registry per network.

    A handler may return a Deferred or be a coroutine function; the channel waits for neither,
    but logs and counts their failures.

    @param defaults: the handlers this registry starts with and L{reset} returns to, for the
        packet types it names; L{DEFAULT_HANDLERS} for the others.
    """

    def __init__(self, defaults: Mapping[PacketType, PacketHandler] | None = None) -> None:
        self._defaults: dict[PacketType, PacketHandler] = dict(DEFAULT_HANDLERS)
        if defaults is not None:
            for kind, handler in defaults.items():
                self._check(kind, handler)
                self._defaults[kind] = handler
        self._handlers: dict[PacketType, PacketHandler] = {}
        # The same handlers keyed by packet class, for dispatch: hashing a class is done in C,
        # hashing an Enum member runs Python code, once per packet.
        self._by_class: dict[type, PacketHandler] = {}
        for kind, handler in self._defaults.items():
            self._set(kind, handler)

    def _set(self, kind: PacketType, handler: PacketHandler) -> None:
        self._handlers[kind] = handler
        self._by_class[PACKET_CLASSES[kind]] = handler

    @staticmethod
    def _check(kind: object, handler: object) -> None:
        if not isinstance(kind, PacketType):
            raise TypeError(f"packet type must be a PacketType, not {kind!r}")
        if not callable(handler):
            raise TypeError(f"handler for {kind.name} must be callable, not {handler!r}")

    def set_handler(self, kind: PacketType, handler: PacketHandler | None) -> None:
        """
        Send packets of type C{kind} to C{handler}; C{None} means L{ignore}.

        @raise TypeError: if C{kind} is not a L{PacketType} or C{handler} is not callable.
        """
        if handler is None:
            handler = ignore
        self._check(kind, handler)
        self._set(kind, handler)

    def get_handler(self, kind: PacketType) -> PacketHandler:
        """Return the handler of packets of type C{kind}."""
        return self._handlers[kind]

    def reset(self, kind: PacketType) -> None:
        """Give packets of type C{kind} back to this registry's default handler."""
        self._set(kind, self._defaults[kind])

    def dispatch(self, channel: PeerChannel, packet: Packet) -> Any:
        """
        Run the handler of C{packet}'s type: the one path every packet takes, cheap enough to
        run for each.

        @return: what the handler returned, with a coroutine wrapped in a Deferred.
        @raise Exception: whatever the handler raised.
        """
        handler = self._by_class.get(type(packet)) or self._handlers[packet.kind]
        result = handler(channel, packet)
        if type(result) is CoroutineType:
            return Deferred.fromCoroutine(result)
        return result

    def handle(self, channel: PeerChannel, packet: Packet) -> Deferred[Any]:
        """
        Run the handler of C{packet}'s type, as L{dispatch} does.

        @return: a Deferred that fires with the handler's result, or fails with its error.
        """
        return maybeDeferred(self.dispatch, channel, packet)
