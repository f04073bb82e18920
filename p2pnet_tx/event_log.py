# -*- test-case-name: tests.test_control_files -*-
"""
The log of what happened in a node that its user may want to hear of (a file received, a
transfer finished), as the control API shows it (C{GET /api/events}): L{EventLog}, which keeps
the most recent events and wakes long polls, and L{NodeEvent}, one event.

Events are kept apart from the messages peers send (L{p2pnet_tx.message_log}): a message is
text a peer wrote, an event is what this node says happened, so neither can be taken for the
other.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["EventLog", "NodeEvent"]


@attrs.frozen
class NodeEvent:
    """
    One event.

    @ivar seq: its number in the log, from 1.
    @ivar kind: what happened, as C{"<part>.<what>"} (C{"file.received"}).
    @ivar time: when, in the node reactor's seconds.
    @ivar fields: what the event says, JSON-able (C{{"transfer": {...}}}).
    """

    seq: int
    kind: str
    time: float
    fields: dict[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object of this event: C{seq}, C{kind}, C{time} and its fields."""
        return {**self.fields, "seq": self.seq, "kind": self.kind, "time": self.time}


class EventLog:
    """
    The most recent events, numbered from 1; older ones fall off the end.

    @param clock: gives the time of each event and times out waits.
    @param max_events: how many events are kept.
    """

    def __init__(self, clock: IReactorTime, max_events: int = 1000) -> None:
        self._clock = clock
        self._events: deque[NodeEvent] = deque(maxlen=max_events)
        self._seq = 0
        self._waiters: dict[Deferred[list[NodeEvent]], tuple[int, IDelayedCall]] = {}

    @property
    def last(self) -> int:
        """The number of the latest event (0 before the first)."""
        return self._seq

    def record(self, kind: str, **fields: Any) -> NodeEvent:
        """
        Keep an event and answer every L{wait_since} caller waiting for it.

        @param kind: what happened (C{"file.received"}).
        @param fields: what the event says, JSON-able.
        @return: the event kept.
        """
        self._seq += 1
        event = NodeEvent(self._seq, kind, self._clock.seconds(), fields)
        self._events.append(event)
        for waiter, (since, timer) in list(self._waiters.items()):
            if since < self._seq:
                del self._waiters[waiter]
                timer.cancel()
                waiter.callback(self.since(since))
        return event

    def since(self, seq: int) -> list[NodeEvent]:
        """Return the kept events numbered above C{seq}, oldest first."""
        return [e for e in self._events if e.seq > seq]

    def wait_since(self, seq: int, timeout: float) -> Deferred[list[NodeEvent]]:
        """
        Wait for events numbered above C{seq}, at most C{timeout} seconds.

        @param seq: the last event number the caller has.
        @param timeout: seconds to wait at most (0: answer at once).
        @return: a Deferred firing with L{since}C{(seq)}: at once if there are such events (or
            C{timeout} is 0), else as soon as one happens, else after C{timeout} seconds with
            an empty list.  Cancelling it stops the wait.
        """
        kept = self.since(seq)
        if kept or timeout <= 0:
            return succeed(kept)

        def stop(waiter: Deferred[list[NodeEvent]]) -> None:
            _, timer = self._waiters.pop(waiter, (None, None))
            if timer is not None and timer.active():
                timer.cancel()

        def timed_out() -> None:
            if self._waiters.pop(waiter, None) is not None:
                waiter.callback([])

        waiter: Deferred[list[NodeEvent]] = Deferred(stop)
        self._waiters[waiter] = (seq, self._clock.callLater(timeout, timed_out))
        return waiter

    @property
    def waiting(self) -> int:
        """How many L{wait_since} callers are waiting."""
        return len(self._waiters)
