"""
Helpers for the integration tests: real reactor, loopback only, bounded waits.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0,
                     interval: float = 0.05) -> None:
    """
    Wait until C{predicate()} is true, checking every C{interval} seconds.

    @raise AssertionError: if it is still false after C{timeout} seconds.
    """
    for _ in range(int(timeout / interval) + 1):
        if predicate():
            return
        await deferLater(reactor, interval, lambda: None)
    assert predicate(), f"condition not met within {timeout} s"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawPeer(Protocol):
    """A client that writes what it is told and records what it gets."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object) -> None:
        self.lost.callback(None)
