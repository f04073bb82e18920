"""
Small recording fakes for testing the parts of L{p2pnet_tx.network} alone, in the style of
magic-wormhole's C{Dummy}: each records what it was asked, in order, and does nothing else.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from p2pnet_tx._observer import OneShotObserver
from p2pnet_tx.peer import GenericPeer


class FakeChannel:
    """
    The little of a L{PeerChannel} the network's parts use: its peer, its trust, its transport,
    and what was sent to it, closed or aborted.

    @ivar events: C{("send", packet)}, C{("close", reason)}, C{("abort", reason)}, in order.
    @ivar send_error: raised by L{send} when set (e.g. a L{SendBufferFull}).
    @ivar on_close: called with the channel when it is closed or aborted, to play a transport
        whose connection is lost at once.
    @ivar trusted_since: when it was trusted, as a channel keeps it (for eviction).
    @ivar last_useful_packet: when it last sent a useful packet (for eviction).
    """

    def __init__(
        self,
        peer: GenericPeer | None = None,
        host: str = "10.0.0.1",
        port: int = 40000,
        trusted: bool = False,
    ) -> None:
        self.peer = peer
        self.is_trusted = trusted
        self.is_closed = False
        self.close_reason: str | None = None
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        self.counters: Counter[str] = Counter()
        self.events: list[tuple[str, Any]] = []
        self.send_error: Exception | None = None
        self.on_close: Any = None
        self.trusted_since: float | None = None
        self.last_useful_packet: float | None = None
        self._closed: OneShotObserver[str] = OneShotObserver()

    def __repr__(self) -> str:
        return f"<FakeChannel {self.peer}>"

    @property
    def sent(self) -> list[Any]:
        """The packets sent, in order."""
        return [arg for name, arg in self.events if name == "send"]

    def send(self, packet: Any) -> bool:
        if self.send_error is not None:
            raise self.send_error
        self.events.append(("send", packet))
        return True

    def close(self, reason: str = "closed") -> Deferred[str]:
        self.events.append(("close", reason))
        self._lose(reason)
        return self._closed.when_fired()

    def abort(self, reason: str) -> None:
        self.events.append(("abort", reason))
        self._lose(reason)

    def trust(self) -> None:
        if not self.is_closed:  # as a PeerChannel: a closed channel is never trusted
            self.is_trusted = True

    def connection_lost(self) -> None:
        """The connection is gone: the close Deferreds fire."""
        self.is_closed = True
        self._closed.fire(self.close_reason or "closed")

    def _lose(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        if self.on_close is not None:
            self.on_close(self)


class Dummy:
    """
    A collaborator that records every call made to it as C{(name, args)} in a shared list,
    and returns what it was told to (per method name).
    """

    def __init__(self, events: list[tuple[str, tuple[Any, ...]]], prefix: str,
                 **returns: Any) -> None:
        self._events = events
        self._prefix = prefix
        self._returns = returns

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any) -> Any:
            self._events.append((f"{self._prefix}.{name}", args))
            return self._returns.get(name)

        return record
