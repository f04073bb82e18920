# -*- test-case-name: tests.test_channel_events,tests.test_trust -*-
"""
L{ChannelWaiters}: who waits on a channel, through C{when_trusted()} and C{when_closed()};
and who waits, through C{when_peer_trusts_us()}, for the peer to trust this node.

Each caller gets a Deferred of its own.  The channel makes L{ChannelWaiters} only when
somebody first waits, and fires it only after its owner has heard the news (see
L{PeerChannel <p2pnet_tx.channel.PeerChannel>}).  The waiters for the peer's trust are a list
the channel holds itself, made by the first of them (L{when_peer_trusts_us}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from p2pnet_tx._observer import OneShotObserver
from p2pnet_tx.errors import ChannelClosed

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel


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


def peer_trusts_us(channel: PeerChannel) -> None:
    """
    The trust protocol reports that C{channel}'s peer trusts this node: note it and fire the
    L{when_peer_trusts_us} waiters; nothing once the channel is closing.
    """
    if channel._trusted_by_peer or channel.close_reason is not None:
        return
    channel._trusted_by_peer = True
    waiters, channel._peer_trust_waiters = channel._peer_trust_waiters, None
    for waiter in waiters or ():
        waiter.callback(channel)


def when_peer_trusts_us(channel: PeerChannel) -> Deferred[PeerChannel]:
    """
    Return a new Deferred that fires with C{channel} once its peer trusts us (at once if it
    does), or fails with L{ChannelClosed} if the channel closes first.
    """
    if channel._trusted_by_peer:
        return succeed(channel)
    if channel.close_reason is not None:
        return fail(ChannelClosed(channel.close_reason))
    waiter: Deferred[PeerChannel] = Deferred()
    if channel._peer_trust_waiters is None:
        channel._peer_trust_waiters = []
    channel._peer_trust_waiters.append(waiter)
    return waiter


def peer_trust_lost(channel: PeerChannel, reason: str) -> None:
    """C{channel} is closing: fail its L{when_peer_trusts_us} waiters with L{ChannelClosed}."""
    waiters, channel._peer_trust_waiters = channel._peer_trust_waiters, None
    for waiter in waiters or ():
        waiter.errback(Failure(ChannelClosed(reason)))
