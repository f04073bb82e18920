# -*- test-case-name: tests.test_control -*-
"""
The log of text messages a node received, as the control API shows them
(C{GET /api/messages}): L{MessageLog}, which keeps the most recent ones and wakes long polls,
and L{ReceivedMessage}, one message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall

from p2pnet_tx.channel import KEEPALIVE_MESSAGE, PeerChannel
from p2pnet_tx.network import PeerNetwork
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


class MessageLog:
    """
    The most recent text messages received, numbered from 1; older ones fall off the end.

    Install it with L{MessageLog.install}, which wraps the network's Message handler.
    """

    def __init__(self, clock: Any, max_messages: int = 1000) -> None:
        self._clock = clock
        self._messages: deque[ReceivedMessage] = deque(maxlen=max_messages)
        self._seq = 0
        self._waiters: dict[Deferred[list[ReceivedMessage]], tuple[int, IDelayedCall]] = {}

    def record(self, channel: PeerChannel, packet: PureMessagePacket) -> None:
        """Keep a received message (not keep-alive pings)."""
        if packet.message == KEEPALIVE_MESSAGE:
            return
        self._seq += 1
        sender = getattr(channel.peer, "identifier", None) or str(channel.peer)
        self._messages.append(
            ReceivedMessage(self._seq, sender, packet.message, self._clock.seconds(),
                            channel.is_trusted)
        )
        for waiter, (since, timer) in list(self._waiters.items()):
            if since < self._seq:
                del self._waiters[waiter]
                timer.cancel()
                waiter.callback(self.since(since))

    def since(self, seq: int) -> list[ReceivedMessage]:
        """Return the kept messages numbered above C{seq}, oldest first."""
        return [m for m in self._messages if m.seq > seq]

    def wait_since(self, seq: int, timeout: float) -> Deferred[list[ReceivedMessage]]:
        """
        Wait for messages numbered above C{seq}, at most C{timeout} seconds.

        @param seq: the last message number the caller has.
        @param timeout: seconds to wait at most (0: answer at once).
        @return: a Deferred firing with L{since}C{(seq)}: at once if there are such
            messages (or C{timeout} is 0), else as soon as one arrives, else after C{timeout}
            seconds with an empty list.  Cancelling it stops the wait.
        """
        kept = self.since(seq)
        if kept or timeout <= 0:
            return succeed(kept)

        def stop(waiter: Deferred[list[ReceivedMessage]]) -> None:
            _, timer = self._waiters.pop(waiter, (None, None))
            if timer is not None and timer.active():
                timer.cancel()

        def timed_out() -> None:
            if self._waiters.pop(waiter, None) is not None:
                waiter.callback([])

        waiter: Deferred[list[ReceivedMessage]] = Deferred(stop)
        self._waiters[waiter] = (seq, self._clock.callLater(timeout, timed_out))
        return waiter

    @property
    def waiting(self) -> int:
        """How many L{wait_since} callers are waiting."""
        return len(self._waiters)

    def install(self, network: PeerNetwork) -> None:
        """Record every Message packet the network's channels accept, then handle it as before."""
        previous: Callable[..., Any] = network.handlers.get_handler(PacketType.MESSAGE)

        def record_then_handle(channel: PeerChannel, packet: PureMessagePacket) -> Any:
            self.record(channel, packet)
            return previous(channel, packet)

        network.handlers.set_handler(PacketType.MESSAGE, record_then_handle)
