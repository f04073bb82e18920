# -*- test-case-name: tests.test_control_files -*-
"""
The log of what happened in a node that its user may want to hear of (a file received, a
transfer finished), as the control API shows it (C{GET /api/events}): L{EventLog}, which keeps
the most recent events and wakes long polls (a L{NumberedLog}), and L{NodeEvent}, one event.

Events are kept apart from the messages peers send (L{p2pnet_tx.message_log}): a message is
text a peer wrote, an event is what this node says happened, so neither can be taken for the
other.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from p2pnet_tx.numbered_log import NumberedLog

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


class EventLog(NumberedLog[NodeEvent]):
    """
    The most recent events, numbered from 1; older ones fall off the end.

    @param clock: gives the time of each event and times out waits.
    @param max_events: how many events are kept.
    """

    def __init__(self, clock: IReactorTime, max_events: int = 1000) -> None:
        super().__init__(clock, max_events)

    def record(self, kind: str, **fields: Any) -> NodeEvent:
        """
        Keep an event and answer every caller waiting for it (L{wait_since
        <p2pnet_tx.numbered_log.NumberedLog.wait_since>}).

        @param kind: what happened (C{"file.received"}).
        @param fields: what the event says, JSON-able.
        @return: the event kept.
        """
        return self.append(lambda seq: NodeEvent(seq, kind, self.now(), fields))
