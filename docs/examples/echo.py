"""
The application that docs/tutorials/testing.md tests: the packet handlers of an echo service.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.task import deferLater

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.packets import PureMessagePacket

ECHO = "echo: "


def echo(channel: PeerChannel, packet: PureMessagePacket) -> None:
    """Answer a message with its text after C{"echo: "}; never answer an echo, or two echo
    services would answer each other forever."""
    if not packet.message.startswith(ECHO):
        channel.send_message(ECHO + packet.message)


def strict_echo(channel: PeerChannel, packet: PureMessagePacket) -> None:
    """Like L{echo}, but an empty message is a mistake: raise L{ValueError}."""
    if not packet.message:
        raise ValueError("empty message")
    echo(channel, packet)


def delayed_echo(
    delay: float,
) -> Callable[[PeerChannel, PureMessagePacket], Coroutine[Any, Any, None]]:
    """Return a handler that answers C{delay} seconds later, on the channel's clock."""

    async def handler(channel: PeerChannel, packet: PureMessagePacket) -> None:
        await deferLater(channel.clock, delay, lambda: None)
        echo(channel, packet)

    return handler
