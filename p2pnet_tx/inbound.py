# -*- test-case-name: tests.test_inbound -*-
"""
L{InboundConnectingPeersQueue}: newly connected inbound peers, waiting to be picked up.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from p2pnet_tx.interfaces import IPeer

DEFAULT_QUEUE_SIZE = 1024
"""The most peers the queue holds; past it the oldest is dropped (and logged)."""


class InboundConnectingPeersQueue:
    """
    A bounded FIFO of inbound peers: the network puts, the application C{get()}s.

    A C{get()} with nothing queued returns a Deferred that fires with the next peer put; waiting
    Deferreds are served in order, and cancelling one withdraws it.
    """

    log = Logger()

    def __init__(self, max_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._peers: deque[IPeer] = deque()
        self._waiting: deque[Deferred[IPeer]] = deque()
        self.dropped = 0

    def put(self, peer: IPeer) -> None:
        """Hand C{peer} to the first waiting C{get()}, or queue it."""
        if self._waiting:
            self._waiting.popleft().callback(peer)
            return
        self._peers.append(peer)
        if len(self._peers) > self.max_size:
            lost = self._peers.popleft()
            self.dropped += 1
            self.log.warn("inbound queue full; forgot {peer}", peer=lost)

    def get(self) -> Deferred[IPeer]:
        """Return a Deferred that fires with the oldest queued peer (or the next one put)."""
        if self._peers:
            return succeed(self._peers.popleft())

        def withdraw(waiter: Deferred[IPeer]) -> None:
            self._waiting.remove(waiter)

        waiter: Deferred[IPeer] = Deferred(withdraw)
        self._waiting.append(waiter)
        return waiter

    @property
    def pending(self) -> list[IPeer]:
        """The queued peers, oldest first (a copy)."""
        return list(self._peers)

    def __len__(self) -> int:
        return len(self._peers)
