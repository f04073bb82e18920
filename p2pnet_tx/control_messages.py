# -*- test-case-name: tests.test_control -*-
"""
The control API's message endpoints, C{/api/messages}: send a message, read and wait for the
ones received.  A part of the API like any other, added with L{ControlAPI.add_route
<p2pnet_tx.control.ControlAPI.add_route>}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from p2pnet_tx.control_site import BadRequest
from p2pnet_tx.message_log import MessageLog
from p2pnet_tx.packets import PureMessagePacket

if TYPE_CHECKING:
    from p2pnet_tx.control import ControlAPI
    from p2pnet_tx.network import PeerNetwork

MAX_MESSAGE_WAIT = 25.0
"""The longest C{GET /api/messages?wait=S} holds its request, in seconds (a longer C{wait} is
cut to it): under C{p2pnet-ctl}'s 30 s request timeout."""


class MessageRoutes:
    """
    C{POST /api/messages} and C{GET /api/messages} of one control API.

    @param network: the node's network, which sends the messages.
    @param messages: the log of received messages.
    @param api: the control API to serve them on.
    """

    def __init__(self, network: PeerNetwork, messages: MessageLog, api: ControlAPI) -> None:
        self.network = network
        self.messages = messages
        self._api = api
        api.add_route(b"POST", "messages", self.post_messages)
        api.add_route(b"GET", "messages", self.get_messages)

    def post_messages(self, request: Request, _: None) -> dict[str, Any]:
        """C{POST /api/messages} C{{"to": identifier or "*", "message": text}}: send a message."""
        body = self._api.body(request)
        to, text = body.get("to", "*"), body.get("message")
        if not isinstance(text, str) or not isinstance(to, str):
            raise BadRequest(400, '"message" (and "to", if given) must be strings')
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(400, '"message" is not valid Unicode text') from None
        packet = PureMessagePacket(text, source_origin_identifier=self.network.identifier)
        if to == "*":
            return {"sent": self.network.broadcast(packet)}
        for channel in self.network.trusted_peer_channels:
            if getattr(channel.peer, "identifier", None) == to:
                return {"sent": int(channel.send(packet))}
        raise BadRequest(404, f"no trusted peer {to!r}")

    def get_messages(
        self, request: Request, _: None
    ) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """
        C{GET /api/messages?since=N[&wait=S]}: the recent messages received, numbered above N.
        With C{wait}, a request that finds none is held until one arrives, or for S seconds
        (at most L{MAX_MESSAGE_WAIT}) and then answered with none: a long poll.
        """
        raw = (request.args.get(b"since") or [b"0"])[0]
        try:
            since = int(raw)
        except ValueError:
            raise BadRequest(400, "since must be an integer") from None
        raw_wait = (request.args.get(b"wait") or [b"0"])[0]
        try:
            wait = float(raw_wait)
        except ValueError:
            wait = -1.0
        if not 0 <= wait < float("inf"):
            raise BadRequest(400, "wait must be a number of seconds, 0 or more")
        waiting = self.messages.wait_since(since, min(wait, MAX_MESSAGE_WAIT))
        return waiting.addCallback(
            lambda messages: {"messages": [m.to_json() for m in messages]}
        )
