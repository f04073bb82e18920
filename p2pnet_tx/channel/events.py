# -*- test-case-name: tests.test_channel_events -*-
"""
L{ChannelWaiters}: who waits on a channel, through C{when_trusted()} and C{when_closed()}.

Each caller gets a Deferred of its own.  The channel makes this object only when somebody
first waits, and fires it only after its owner has heard the news (see L{PeerChannel}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from p2pnet_tx._observer import OneShotObserver


class ChannelWaiters:
    """The waiters of one channel: for trust (again after every untrust) and for the close."""

    __slots__ = ("_trust", "_closed")

    def __init__(self) -> None:
        self._trust: list[Deferred[Any]] = []
        self._closed: OneShotObserver[str] = OneShotObserver()

    @property
    def closed(self) -> bool:
        """Whether the close was announced."""
        return self._closed.fired

    def when_trusted(self) -> Deferred[Any]:
        """Return a new Deferred for the next L{trusted} or L{untrustable}."""
        waiter: Deferred[Any] = Deferred()
        self._trust.append(waiter)
        return waiter

    def trusted(self, channel: object) -> None:
        """The peer is trusted: fire every trust waiter with C{channel}."""
        waiters, self._trust = self._trust, []
        for waiter in waiters:
            waiter.callback(channel)

    def untrustable(self, error: Exception) -> None:
        """The peer will never be trusted on this channel: fail every trust waiter."""
        waiters, self._trust = self._trust, []
        for waiter in waiters:
            waiter.errback(Failure(error))

    def when_closed(self) -> Deferred[str]:
        """Return a new Deferred that fires with the close reason."""
        return self._closed.when_fired()

    def closed_with(self, reason: str) -> None:
        """The connection is gone: fire every close waiter, now and later, with C{reason}."""
        self._closed.fire(reason)
