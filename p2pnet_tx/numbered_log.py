# -*- test-case-name: tests.test_numbered_log -*-
"""
L{NumberedLog}: the most recent entries of something, numbered from 1, that long polls wait on
(C{wait_since}).  The node's received messages (L{p2pnet_tx.message_log}) and its events
(L{p2pnet_tx.event_log}) are both one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["NumberedLog"]


class _Numbered(Protocol):
    """An entry that carries its number in the log."""

    @property
    def seq(self) -> int: ...


EntryT = TypeVar("EntryT", bound=_Numbered)


class NumberedLog(Generic[EntryT]):
    """
    The most recent entries, numbered from 1; older ones fall off the end.  Callers of
    L{wait_since} are answered as soon as an entry newer than theirs is kept.

    @param clock: gives the time of each entry (L{now}) and times out waits.
    @param max_entries: how many entries are kept.
    """

    def __init__(self, clock: IReactorTime, max_entries: int = 1000) -> None:
        self._clock = clock
        self._entries: deque[EntryT] = deque(maxlen=max_entries)
        self._seq = 0
        self._waiters: dict[Deferred[list[EntryT]], tuple[int, IDelayedCall]] = {}

    @property
    def last(self) -> int:
        """The number of the latest entry (0 before the first)."""
        return self._seq

    def now(self) -> float:
        """Return the clock's time, in seconds: the time to give a new entry."""
        return self._clock.seconds()

    def append(self, make: Callable[[int], EntryT]) -> EntryT:
        """
        Keep a new entry and answer every L{wait_since} caller waiting for it.

        @param make: builds the entry from its number (the next one).
        @return: the entry kept.
        """
        self._seq += 1
        entry = make(self._seq)
        self._entries.append(entry)
        for waiter, (since, timer) in list(self._waiters.items()):
            if since < self._seq:
                del self._waiters[waiter]
                timer.cancel()
                waiter.callback(self.since(since))
        return entry

    def since(self, seq: int) -> list[EntryT]:
        """Return the kept entries numbered above C{seq}, oldest first."""
        return [e for e in self._entries if e.seq > seq]

    def wait_since(self, seq: int, timeout: float) -> Deferred[list[EntryT]]:
        """
        Wait for entries numbered above C{seq}, at most C{timeout} seconds.

        @param seq: the last entry number the caller has.
        @param timeout: seconds to wait at most (0: answer at once).
        @return: a Deferred firing with L{since}C{(seq)}: at once if there are such entries (or
            C{timeout} is 0), else as soon as one is kept, else after C{timeout} seconds with
            an empty list.  Cancelling it stops the wait.
        """
        kept = self.since(seq)
        if kept or timeout <= 0:
            return succeed(kept)

        def stop(waiter: Deferred[list[EntryT]]) -> None:
            _, timer = self._waiters.pop(waiter, (None, None))
            if timer is not None and timer.active():
                timer.cancel()

        def timed_out() -> None:
            if self._waiters.pop(waiter, None) is not None:
                waiter.callback([])

        waiter: Deferred[list[EntryT]] = Deferred(stop)
        self._waiters[waiter] = (seq, self._clock.callLater(timeout, timed_out))
        return waiter

    @property
    def waiting(self) -> int:
        """How many L{wait_since} callers are waiting."""
        return len(self._waiters)
