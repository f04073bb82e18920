# -*- test-case-name: tests.test_handlers -*-
"""
L{PacketHandleProtocol}: the registry of what a network does with each accepted packet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Union

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from p2pnet_tx.packets import (
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


def handle_identity(channel: PeerChannel, packet: IdentifierPacket) -> None:
    """Ask the channel's owner to add the peer the Identity packet names."""
    channel.owner.add_peer(channel, packet)


def handle_disconnect(channel: PeerChannel, packet: DisconnectPacket) -> None:
    """Close this channel, and only this one: a peer can never close another's channel."""
    channel.peer_disconnected(packet)


def handle_peer_group(channel: PeerChannel, packet: CollectionSharePacket) -> None:
    """Hand a shared peer list to the owner."""
    channel.owner.process_peer_list(channel, packet)


def handle_data_transmit(channel: PeerChannel, packet: DataTransmissionPacket) -> None:
    """Hand data to the owner's distribution hook."""
    channel.owner.data_received(channel, packet)


def handle_message(channel: PeerChannel, packet: PureMessagePacket) -> None:
    """Log a text message."""
    log.debug(
        "message from {peer}: {text}", peer=channel.peer, text=packet.message[:200]
    )


DEFAULT_HANDLERS: dict[PacketType, PacketHandler] = {
    PacketType.IDENTITY: handle_identity,
    PacketType.DISCONNECT: handle_disconnect,
    PacketType.PEER_GROUP: handle_peer_group,
    PacketType.DATA_TRANSMIT: handle_data_transmit,
    PacketType.MESSAGE: handle_message,
}
"""The handlers of the reference implementation, which every registry starts with."""


def ignore(channel: PeerChannel, packet: Packet) -> None:
    """A handler that does nothing: packets then reach only the data-received observers."""


class PacketHandleProtocol:
    """
    Which handler each packet type goes to; one registry per network.

    Starts with L{DEFAULT_HANDLERS}.  A handler may return a Deferred or be a coroutine function;
    the channel waits for neither, but logs and counts their failures.
    """

    def __init__(self) -> None:
        self._handlers: dict[PacketType, PacketHandler] = dict(DEFAULT_HANDLERS)

    def set_handler(self, kind: PacketType, handler: PacketHandler | None) -> None:
        """
        Send packets of type C{kind} to C{handler}; C{None} means L{ignore}.

        :raises TypeError: if C{kind} is not a L{PacketType} or C{handler} is not callable.
        """
        if not isinstance(kind, PacketType):
            raise TypeError(f"packet type must be a PacketType, not {kind!r}")
        if handler is None:
            handler = ignore
        if not callable(handler):
            raise TypeError(f"handler for {kind.name} must be callable, not {handler!r}")
        self._handlers[kind] = handler

    def get_handler(self, kind: PacketType) -> PacketHandler:
        """Return the handler of packets of type C{kind}."""
        return self._handlers[kind]

    def reset(self, kind: PacketType) -> None:
        """Give packets of type C{kind} back to their default handler."""
        self._handlers[kind] = DEFAULT_HANDLERS[kind]

    def handle(self, channel: PeerChannel, packet: Packet) -> Deferred[Any]:
        """
        Run the handler of C{packet}'s type.

        :return: a Deferred that fires with the handler's result, or fails with its error.
        """
        return maybeDeferred(self._handlers[packet.kind], channel, packet)
