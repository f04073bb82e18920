# -*- test-case-name: tests.test_control -*-
"""
The control API of a node: JSON over HTTP on a loopback endpoint, for C{p2pnet-ctl} and
dashboards.

Every request needs C{Authorization: Bearer <token>} (the token is in the node's data
directory, mode 0600) and a C{Host} header naming a loopback host, so a web page cannot reach
the API through DNS rebinding.
"""

from __future__ import annotations

import hmac
import io
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from p2pnet_tx.channel import KEEPALIVE_MESSAGE, PeerChannel
from p2pnet_tx.errors import P2PNetError
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer

__all__ = ["ControlAPI", "MessageLog", "ReceivedMessage"]

MAX_BODY = 64 * 1024
"""The largest request body the control API reads."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

STATUS_COUNTERS = {
    name: 0
    for name in (
        "refused", "malformed", "unknown", "framing_errors", "handler_errors",
        "handshakes_ok", "handshakes_failed", "refused_connections", "misbehaving_peers",
    )
}
"""Counters /api/status always shows, zero until something happens."""


@attrs.frozen
class ReceivedMessage:
    """A text message a peer sent, as the control API shows it."""

    seq: int
    sender: str | None
    message: str
    time: float
    trusted: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object of this message."""
        return {"seq": self.seq, "from": self.sender, "message": self.message, "time": self.time,
                "trusted": self.trusted}


class MessageLog:
    """
    The most recent text messages received, numbered from 1; older ones fall off the end.

    Install it with L{MessageLog.install}, which wraps the network's Message handler.
    """

    def __init__(self, clock: Any, max_messages: int = 1000) -> None:
        self._clock = clock
        self._messages: deque[ReceivedMessage] = deque(maxlen=max_messages)
        self._seq = 0

    def record(self, channel: PeerChannel, packet: PureMessagePacket) -> None:
        """Keep a received message (not keep-alive pings)."""
        if packet.message == KEEPALIVE_MESSAGE:
            return
        self._seq += 1
        sender = getattr(channel.peer, "identifier", None) or str(channel.peer)
        self._messages.append(
            ReceivedMessage(self._seq, sender, packet.message, self._clock.seconds(),
                            channel.is_trusted)
        )

    def since(self, seq: int) -> list[ReceivedMessage]:
        """Return the kept messages numbered above C{seq}, oldest first."""
        return [m for m in self._messages if m.seq > seq]

    def install(self, network: PeerNetwork) -> None:
        """Record every Message packet the network's channels accept, then handle it as before."""
        previous: Callable[..., Any] = network.handlers.get_handler(PacketType.MESSAGE)

        def record_then_handle(channel: PeerChannel, packet: PureMessagePacket) -> Any:
            self.record(channel, packet)
            return previous(channel, packet)

        network.handlers.set_handler(PacketType.MESSAGE, record_then_handle)


class BoundedBody(io.BytesIO):
    """
    A request body kept in memory up to C{MAX_BODY} bytes; what comes after is dropped and
    C{overflowed} set, so a client cannot make the node buffer (or spool to disk) more.
    """

    overflowed = False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        room = MAX_BODY + 1 - self.tell()
        if len(data) > room:
            self.overflowed = True
            data = data[: max(room, 0)]
        return super().write(data)


class ControlRequest(Request):
    """
    The requests of the control API: a declared body over C{MAX_BODY} is refused with 413
    before it is read; any other body is held in a L{BoundedBody}.

    @ivar refused: whether this request was answered with 413 from its headers alone.
    """

    refused = False

    def gotLength(self, length: int | None) -> None:
        """
        Prepare for a body of C{length} bytes, or refuse it: the 413 answer is written and
        the connection closed right after the headers, so that the body is never read.

        @param length: the declared length of the body, or C{None} (chunked).
        """
        self.content = BoundedBody()
        if length is None or length <= MAX_BODY:
            return
        self.refused = True
        body = json.dumps({"error": f"request body over {MAX_BODY} bytes"}).encode()
        # The request line is parsed, but the channel records it on the request only once
        # the body is in (requestReceived), which never happens here: answer as HTTP/1.1.
        self.clientproto = b"HTTP/1.1"
        self.setResponseCode(413)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.setHeader(b"connection", b"close")
        self.write(body)
        channel, transport = self.channel, self.transport  # finish() lets go of the channel
        self.finish()
        # With the transport disconnecting, the channel parses nothing more of what the
        # client sent (the body included), and the reactor reads no further.  (A channel
        # that is not persistent, HTTP/1.0, has already closed itself in finish().)
        if not transport.disconnecting:
            channel.loseConnection()

    def handleContentChunk(self, data: bytes) -> None:
        """
        Keep a chunk of the body, unless the request was refused (a transport that still
        delivers bytes after the close must not make the channel buffer them).

        @param data: the chunk.
        """
        if not self.refused:
            super().handleContentChunk(data)


class _Pending:
    """
    A response that waits on a Deferred: it is finished with the result unless the client
    went away first (learnt from C{notifyFinish}), in which case the work is cancelled.
    """

    def __init__(self, request: Request, work: Deferred[Any]) -> None:
        self.request = request
        self.client_gone = False
        self._work = work
        request.notifyFinish().addErrback(self._gone)

    def _gone(self, reason: Failure) -> None:
        self.client_gone = True
        self._work.cancel()

    def finish(self, code: int, body: Any) -> None:
        """Answer with C{code} and the JSON of C{body}, if anyone is still listening."""
        if self.client_gone or self.request.finished:
            return
        self.request.setResponseCode(code)
        self.request.write(json.dumps(body).encode())
        self.request.finish()


class _BadRequest(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _host_name(header: bytes | None) -> str:
    if not header:
        return ""
    host = header.decode("ascii", "replace").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _channel_json(network: PeerNetwork, channel: PeerChannel) -> dict[str, Any]:
    peer = channel.peer
    return {
        "identifier": getattr(peer, "identifier", None),
        "display_name": channel.properties.get("display_name"),
        "address": getattr(peer, "address", None),
        "port": getattr(peer, "port", None),
        "trusted": channel.is_trusted,
        "direction": "outbound" if network.is_outbound(channel) else "inbound",
    }


class ControlAPI(Resource):
    """
    The C{/api} resource tree of a node's control API.

    @param network: the node's network.
    @param token: the bearer token every request must carry.
    @param messages: the log of received messages.
    @param listen_address: shown in C{/api/status}.
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self, network: PeerNetwork, token: str, messages: MessageLog, listen_address: str = ""
    ) -> None:
        super().__init__()
        self.network = network
        self._token = token.encode()
        self.messages = messages
        self.listen_address = listen_address
        self._routes: dict[tuple[bytes, str], Callable[..., Any]] = {
            (b"GET", "status"): self.get_status,
            (b"GET", "peers"): self.get_peers,
            (b"POST", "peers"): self.post_peers,
            (b"DELETE", "peers"): self.delete_peer,
            (b"POST", "block"): self.post_block,
            (b"POST", "messages"): self.post_messages,
            (b"GET", "messages"): self.get_messages,
        }

    def render(self, request: Request) -> bytes | int:
        """
        Check the caller, route the request and answer with JSON, through the request API
        only; an answer that waits on a Deferred is cancelled if the client goes away.

        @param request: the request.
        @return: the JSON body, or C{NOT_DONE_YET} while waiting.
        """
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if getattr(request.content, "overflowed", False):
            return self._error(request, 413, f"request body over {MAX_BODY} bytes")
        try:
            self._check_caller(request)
            handler, argument = self._route(request)
            result = handler(request, argument)
        except _BadRequest as e:
            return self._error(request, e.code, e.message)
        except Exception:
            self.log.failure("control request {method} {uri} failed",
                             method=peer_text(request.method), uri=peer_text(request.uri))
            return self._error(request, 500, "internal error")
        if isinstance(result, Deferred):
            pending = _Pending(request, result)
            result.addCallbacks(
                lambda body: pending.finish(200, body),
                lambda failure: self._failed(pending, failure),
            )
            return NOT_DONE_YET
        return json.dumps(result).encode()

    # -- Plumbing ---------------------------------------------------------------------------------

    def _check_caller(self, request: Request) -> None:
        if _host_name(request.getHeader(b"host")) not in LOOPBACK_HOSTS:
            raise _BadRequest(403, "the control API answers only to loopback host names")
        authorization = request.getHeader(b"authorization") or b""
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._token):
            request.setHeader(b"www-authenticate", b'Bearer realm="p2pnet"')
            raise _BadRequest(401, "missing or wrong bearer token")

    def _route(self, request: Request) -> tuple[Callable[..., Any], str | None]:
        path = [part.decode("utf-8", "replace") for part in request.prepath + request.postpath]
        path = [part for part in path if part]
        if len(path) < 2 or path[0] != "api":
            raise _BadRequest(404, "no such resource")
        name = path[1]
        argument = path[2] if len(path) == 3 else None
        if len(path) > 3 or (argument is not None and name != "peers"):
            raise _BadRequest(404, "no such resource")
        handler = self._routes.get((request.method, name))
        if handler is None:
            allowed = sorted(m.decode() for m, n in self._routes if n == name)
            if not allowed:
                raise _BadRequest(404, "no such resource")
            request.setHeader(b"allow", ", ".join(allowed).encode())
            raise _BadRequest(405, f"use {' or '.join(allowed)} on /api/{name}")
        if (argument is None) == (handler == self.delete_peer):
            raise _BadRequest(404, "no such resource")
        return handler, argument

    def _body(self, request: Request) -> dict[str, Any]:
        raw = request.content.read(MAX_BODY + 1) if request.content else b""
        if len(raw) > MAX_BODY:
            raise _BadRequest(413, f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise _BadRequest(400, f"request body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise _BadRequest(400, "request body must be a JSON object")
        return body

    def _error(self, request: Request, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        return json.dumps({"error": message}).encode()

    def _failed(self, pending: _Pending, failure: Failure) -> None:
        if pending.client_gone:
            return  # the client went away and we stopped its request
        if failure.check(P2PNetError, ConnectionError, OSError) or hasattr(
            failure.value, "osError"
        ):
            pending.finish(502, {"error": failure.getErrorMessage()})
            return
        self.log.failure("control request failed", failure)
        pending.finish(500, {"error": "internal error"})

    # -- Endpoints --------------------------------------------------------------------------------

    def get_status(self, request: Request, _: None) -> dict[str, Any]:
        """C{GET /api/status}: identity, listen address, counts and counters."""
        network = self.network
        return {
            "identifier": network.identifier,
            "listen": self.listen_address,
            "listening_port": network.listening_port,
            "wire": network.wire,
            "counts": {
                "active": len(network.active_peer_channels),
                "trusted": len(network.trusted_peer_channels),
                "pending": len(network.pending_channels),
                "known": len(network.known_peers),
                "inbound_queue": len(network.inbound),
            },
            "counters": dict(sorted((STATUS_COUNTERS | network.total_counters()).items())),
        }

    def get_peers(self, request: Request, _: None) -> dict[str, Any]:
        """C{GET /api/peers}: the connected peers, and the known ones."""
        network = self.network
        return {
            "connected": [_channel_json(network, c) for c in network.active_peer_channels],
            "known": [
                {"identifier": p.identifier, "address": p.address, "port": p.port}
                for p in network.known_peers.values()
            ],
        }

    def post_peers(self, request: Request, _: None) -> Deferred[dict[str, Any]]:
        """C{POST /api/peers} C{{"host", "port"}}: connect to a peer."""
        body = self._body(request)
        try:
            peer = GenericPeer(body.get("host"), body.get("port"))
        except ValueError as e:
            raise _BadRequest(400, str(e)) from None
        return self.network.connect(peer).addCallback(
            lambda channel: _channel_json(self.network, channel)
        )

    def delete_peer(self, request: Request, identifier: str) -> Deferred[dict[str, Any]]:
        """C{DELETE /api/peers/<identifier>}: disconnect and forget a peer."""
        for channel in self.network.active_peer_channels:
            if getattr(channel.peer, "identifier", None) == identifier:
                return self.network.remove_peer(channel).addCallback(
                    lambda reason: {"removed": identifier, "reason": reason}
                )
        raise _BadRequest(404, f"no connected peer {identifier!r}")

    def post_block(self, request: Request, _: None) -> dict[str, Any]:
        """C{POST /api/block} C{{"ip"}} or C{{"identifier"}}: block and drop."""
        body = self._body(request)
        ip, identifier = body.get("ip"), body.get("identifier")
        if (ip is None) == (identifier is None):
            raise _BadRequest(400, 'give exactly one of "ip" and "identifier"')
        if not isinstance(ip or identifier, str):
            raise _BadRequest(400, "the value to block must be a string")
        try:
            dropped = self.network.block(ip=ip, identifier=identifier)
        except ValueError as e:
            raise _BadRequest(400, str(e)) from None
        return {"blocked": ip or identifier, "dropped": len(dropped)}

    def post_messages(self, request: Request, _: None) -> dict[str, Any]:
        """C{POST /api/messages} C{{"to": identifier or "*", "message": text}}: send a message."""
        body = self._body(request)
        to, text = body.get("to", "*"), body.get("message")
        if not isinstance(text, str) or not isinstance(to, str):
            raise _BadRequest(400, '"message" (and "to", if given) must be strings')
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadRequest(400, '"message" is not valid Unicode text') from None
        packet = PureMessagePacket(text, source_origin_identifier=self.network.identifier)
        if to == "*":
            return {"sent": self.network.broadcast(packet)}
        for channel in self.network.trusted_peer_channels:
            if getattr(channel.peer, "identifier", None) == to:
                return {"sent": int(channel.send(packet))}
        raise _BadRequest(404, f"no trusted peer {to!r}")

    def get_messages(self, request: Request, _: None) -> dict[str, Any]:
        """C{GET /api/messages?since=N}: the recent messages received, numbered above N."""
        raw = (request.args.get(b"since") or [b"0"])[0]
        try:
            since = int(raw)
        except ValueError:
            raise _BadRequest(400, "since must be an integer") from None
        return {"messages": [m.to_json() for m in self.messages.since(since)]}

