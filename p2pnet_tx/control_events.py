# -*- test-case-name: tests.test_control_files -*-
"""
The control API's event stream, C{GET /api/events}: what the node says happened (a file
received, a transfer finished), read and waited for as C{GET /api/messages} is.  A part of the
API like any other, added with L{ControlAPI.add_route <p2pnet_tx.control.ControlAPI.add_route>}.

Also the query arguments the long polls of the API's parts share: L{query_int}, L{query_wait}.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from p2pnet_tx.control_site import BadRequest
from p2pnet_tx.event_log import EventLog

if TYPE_CHECKING:
    from p2pnet_tx.control import ControlAPI

__all__ = ["MAX_EVENT_WAIT", "EventRoutes", "query_int", "query_text", "query_wait"]

MAX_EVENT_WAIT = 25.0
"""The longest a long poll of the API (C{?wait=S}) holds its request, in seconds (a longer
C{wait} is cut to it): under C{p2pnet-ctl}'s 30 s request timeout."""


def query_text(request: Request, name: str) -> str | None:
    """
    The query argument C{name} of a request, as text, or C{None} without it.

    @raise BadRequest: 400 if it is given twice or is not UTF-8.
    """
    values = request.args.get(name.encode()) or []
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(400, f"{name} is given more than once")
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, f"{name} is not UTF-8 text") from None


def query_int(request: Request, name: str, default: int = 0) -> int:
    """
    The query argument C{name} as an integer of 0 or more, C{default} without it.

    @raise BadRequest: 400 if it is not such an integer.
    """
    raw = query_text(request, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
        raise BadRequest(400, f"{name} must be an integer, 0 or more")
    return int(raw)


def query_wait(request: Request) -> float:
    """
    The C{wait} query argument, in seconds, cut to L{MAX_EVENT_WAIT}; 0 without it.

    @raise BadRequest: 400 if it is not a number of seconds, 0 or more.
    """
    raw = query_text(request, "wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait < math.inf:
        raise BadRequest(400, "wait must be a number of seconds, 0 or more")
    return min(wait, MAX_EVENT_WAIT)


class EventRoutes:
    """
    C{GET /api/events} of one control API.

    @param events: the node's event log.
    @param api: the control API to serve it on.
    """

    def __init__(self, events: EventLog, api: ControlAPI) -> None:
        self.events = events
        api.add_route(b"GET", "events", self.get_events)

    def get_events(self, request: Request, _: None) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """
        C{GET /api/events?since=N[&wait=S]}: the recent events, numbered above N, oldest
        first, and C{last}, the number of the latest event.  With C{wait}, a request that
        finds none is held until one happens, or for S seconds (at most L{MAX_EVENT_WAIT})
        and then answered with none: a long poll.
        """
        since = query_int(request, "since")
        waiting = self.events.wait_since(since, query_wait(request))
        return waiting.addCallback(
            lambda events: {"events": [e.to_json() for e in events], "last": self.events.last}
        )
