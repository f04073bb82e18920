# -*- test-case-name: tests.test_control -*-
"""
The log of text messages a node received, as the control API shows them
(C{GET /api/messages}): L{MessageLog}, which keeps the most recent ones and wakes long polls
(a L{NumberedLog}), and L{ReceivedMessage}, one message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from p2pnet_tx.channel import KEEPALIVE_MESSAGE, PeerChannel
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.numbered_log import NumberedLog
from p2pnet_tx.packets import PacketType, PureMessagePacket

__all__ = ["MessageLog", "ReceivedMessage"]


@attrs.frozen
class ReceivedMessage:
    """A text message a peer sent, as the control API shows it."""

    seq: int
    sender: str | None
    message: str
    time: float
    trusted: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object of this message."""
        return {"seq": self.seq, "from": self.sender, "message": self.message, "time": self.time,
                "trusted": self.trusted}


class MessageLog(NumberedLog[ReceivedMessage]):
    """
    The most recent text messages received, numbered from 1; older ones fall off the end.

    Install it with L{MessageLog.install}, which wraps the network's Message handler.
    """

    def __init__(self, clock: IReactorTime, max_messages: int = 1000) -> None:
        super().__init__(clock, max_messages)

    def record(self, channel: PeerChannel, packet: PureMessagePacket) -> None:
        """Keep a received message (not keep-alive pings)."""
        if packet.message == KEEPALIVE_MESSAGE:
            return
        sender = getattr(channel.peer, "identifier", None) or str(channel.peer)
        self.append(lambda seq: ReceivedMessage(seq, sender, packet.message, self.now(),
                                                channel.is_trusted))

    def install(self, network: PeerNetwork) -> None:
        """Record every Message packet the network's channels accept, then handle it as before."""
        previous: Callable[..., Any] = network.handlers.get_handler(PacketType.MESSAGE)

        def record_then_handle(channel: PeerChannel, packet: PureMessagePacket) -> Any:
            self.record(channel, packet)
            return previous(channel, packet)

        network.handlers.set_handler(PacketType.MESSAGE, record_then_handle)
