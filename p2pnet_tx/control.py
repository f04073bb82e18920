# -*- test-case-name: tests.test_control -*-
"""
The control API of a node: JSON over HTTP on a loopback endpoint, for C{p2pnet-ctl} and
dashboards.

Every request needs C{Authorization: Bearer <token>} (the token is in the node's data
directory, mode 0600) and one C{Host} header naming a loopback host, so a web page cannot reach
the API through DNS rebinding.  A request that fails these checks is answered with a JSON error
and its connection closed.

The API is served by a L{ControlSite}, which holds every connection to a deadline and keeps at
most C{max_connections} of them open, so that clients that connect and say nothing cannot take
the API (or the node's file descriptors) away from C{p2pnet-ctl}.

Beside C{/api}, the same resource serves C{/metrics} (L{p2pnet_tx.metrics}, with the token)
and the node dashboard at C{/} (L{p2pnet_tx.dashboard}: its files, its login and its
sessions, which stand in for the token, with a CSRF token on each change).

The connection policy (L{ControlSite} and its channels, requests, limits and timeouts) lives in
L{p2pnet_tx.control_site}, the log of received messages (L{MessageLog}) in
L{p2pnet_tx.message_log}; this module re-exports their names, so imports from it keep working.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from p2pnet_tx._version import __version__
from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.control_messages import MAX_MESSAGE_WAIT, MessageRoutes
from p2pnet_tx.control_site import (
    DEFAULT_MAX_CONNECTIONS,
    IDLE_TIMEOUT,
    LIMIT_WARNING_INTERVAL,  # noqa: F401 (re-exported: it was defined here)
    MAX_BODY,
    BadRequest,
    BoundedBody,  # noqa: F401 (re-exported: it was defined here)
    ControlChannel,
    ControlRequest,
    ControlSite,
    _refuse_and_close,
    _split,
)
from p2pnet_tx.dashboard import Dashboard
from p2pnet_tx.datadir import DataDirError
from p2pnet_tx.errors import P2PNetError, PeerBlocked, SelfConnection
from p2pnet_tx.interfaces import IPeer
from p2pnet_tx.logtext import peer_text
from p2pnet_tx.message_log import MessageLog, ReceivedMessage
from p2pnet_tx.metrics import NodeMetrics
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.peer import peer_for_host
from p2pnet_tx.policy import normalize_ip
from p2pnet_tx.trust import KeyTrust, ping_trust

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "IDLE_TIMEOUT",
    "MAX_MESSAGE_WAIT",
    "BadRequest",
    "ControlAPI",
    "ControlChannel",
    "ControlRequest",
    "ControlSite",
    "MessageLog",
    "ReceivedMessage",
]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

STATUS_COUNTERS = {
    name: 0
    for name in (
        "refused", "malformed", "unknown", "framing_errors", "handler_errors",
        "handshakes_ok", "handshakes_failed", "refused_connections", "misbehaving_peers",
    )
}
"""Counters /api/status always shows, zero until something happens."""

_STATUS_KEYS = frozenset({
    "identifier", "listen", "listening_port", "wire", "counts", "counters", "traffic", "peers",
    "control", "version", "uptime", "display_name", "trust", "transport", "control_url",
})
"""The keys of C{/api/status} that the API itself fills: a part's section cannot take one."""


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


def _path(request: Request) -> list[str]:
    """The parts of a request's path, without empty ones."""
    return _split(b"/".join(request.prepath + request.postpath))


def _host_name(header: bytes | None) -> str:
    if not header:
        return ""
    host = header.decode("ascii", "replace").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _channel_json(network: PeerNetwork, channel: PeerChannel) -> dict[str, Any]:
    peer = channel.peer
    echo = channel.echo_rtt
    rtt = echo if echo is not None else channel.rtt
    last_seen = channel.last_incoming_data_received
    return {
        "identifier": getattr(peer, "identifier", None),
        "display_name": channel.properties.get("display_name"),
        "address": getattr(peer, "address", None),
        "port": getattr(peer, "port", None),
        "trusted": channel.is_trusted,
        "direction": "outbound" if network.is_outbound(channel) else "inbound",
        "rtt": rtt,
        "rtt_source": None if rtt is None else "keepalive" if echo is not None else "kernel",
        "last_seen": last_seen,
        "seen_seconds_ago": (None if last_seen is None
                             else max(0.0, round(network.reactor.seconds() - last_seen, 3))),
    }


def _trust_mode(network: PeerNetwork) -> str:
    """How a network decides trust: C{key}, C{ping}, C{none} or C{custom}."""
    protocol = network.trust_protocol
    if protocol is None or not network.policy.run_default_trust_protocol:
        return "none"
    if isinstance(protocol, KeyTrust):
        return "key"
    return "ping" if protocol is ping_trust else "custom"


def _url_of(address: IAddress) -> str | None:
    """The URL of the control API at its listening C{address}, if it is a TCP one."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not host or port is None:
        return None
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _connect_failed(failure: Failure, peer: IPeer) -> Failure:
    """
    Say why a dial from C{POST /api/peers} failed, as a 502 (unreachable, refused) or a 409
    (this node's own policy: blocked, or this node itself).
    """
    if failure.check(CancelledError, BadRequest):
        return failure
    why = failure.getErrorMessage()
    if failure.check(PeerBlocked):
        raise BadRequest(409, f"{why}: unblock it first (p2pnet-ctl unblock)")
    if failure.check(SelfConnection):
        raise BadRequest(409, why)
    if failure.check(DNSLookupError):
        raise BadRequest(502, f"cannot resolve {peer.address}: {why}")
    if failure.check(ConnectError):
        raise BadRequest(502, f"peer {peer} is unreachable: {why}")
    if failure.check(P2PNetError):
        raise BadRequest(502, f"peer {peer} refused the connection: {why}")
    return failure


class ControlAPI(Resource):
    """
    The C{/api} resource tree of a node's control API.

    Serve it with a L{ControlSite}, which bounds the connections and checks each request
    from its headers.  Every error is a JSON object C{{"error": "..."}}.

    @param network: the node's network.
    @param token: the bearer token every request must carry.
    @param messages: the log of received messages.
    @param listen_address: shown in C{/api/status}.
    @param save_state: writes the node's state (the block list, the known peers) to disk,
        raising L{DataDirError} when it cannot; a request that changes that state calls it
        and answers 500 if it raises.  C{None} when nothing is kept on disk.
    @param peer_removed: called with each channel C{DELETE /api/peers/<id>} removed (the node
        stops redialling a C{--peer} it removed); returns how many kept peers it held.
    @param connecting: called with each peer C{POST /api/peers} dials (the node dials a held
        C{--peer} again).
    @ivar started: when the node started, in the network reactor's seconds (C{uptime} in
        C{/api/status} counts from it); its owner sets it on each start.
    @ivar metrics: serves C{GET /metrics}.
    @ivar dashboard: serves everything outside C{/api} and C{/metrics}, and its sessions.
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        network: PeerNetwork,
        token: str,
        messages: MessageLog,
        listen_address: str = "",
        save_state: Callable[[], None] | None = None,
        *,
        peer_removed: Callable[[PeerChannel], int] | None = None,
        connecting: Callable[[IPeer], object] | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self._token = token.encode()
        self.messages = messages
        self.listen_address = listen_address
        self._save_state = save_state
        self._peer_removed = peer_removed
        self._connecting = connecting
        self.started: float = network.reactor.seconds()
        self.metrics = NodeMetrics(network)
        self.dashboard = Dashboard(network.reactor, self._token, network.identifier)
        # (method, name, whether the path has an argument) -> handler
        self._routes: dict[tuple[bytes, str, bool], Callable[..., Any]] = {}
        self._status_sections: dict[str, Callable[[], Any]] = {}
        for method, name, handler in (
            (b"GET", "status", self.get_status),
            (b"GET", "peers", self.get_peers),
            (b"POST", "peers", self.post_peers),
            (b"POST", "block", self.post_block),
            (b"GET", "blocks", self.get_blocks),
            (b"POST", "unblock", self.post_unblock),
        ):
            self.add_route(method, name, handler)
        self.add_route(b"DELETE", "peers", self.delete_peer, argument=True)
        MessageRoutes(network, messages, self)

    def add_route(
        self, method: bytes, name: str, handler: Callable[..., Any], argument: bool = False
    ) -> None:
        """
        Serve C{METHOD /api/<name>} (with C{argument}, C{/api/<name>/<argument>} instead) with
        C{handler(request, argument)}, which returns a JSON-able value or a Deferred of one,
        and raises L{BadRequest} for an error answer.  This is how a node's parts add their
        endpoints.

        C{/api/<name>} and C{/api/<name>/<argument>} are two routes: a name may have both.

        @raise ValueError: if that method and path are served already.
        """
        if (method, name, argument) in self._routes:
            where = f"/api/{name}/<argument>" if argument else f"/api/{name}"
            raise ValueError(f"{method.decode()} {where} is served already")
        self._routes[(method, name, argument)] = handler

    def add_status_section(self, name: str, section: Callable[[], Any]) -> None:
        """
        Show C{section()} (a JSON-able value) under key C{name} of C{GET /api/status}.

        @raise ValueError: if C{name} is taken.
        """
        if name in self._status_sections or name in _STATUS_KEYS:
            raise ValueError(f"/api/status already has a {name!r} key")
        self._status_sections[name] = section

    def render(self, request: Request) -> bytes | int:
        """
        Check the caller, route the request and answer with JSON, through the request API
        only; an answer that waits on a Deferred is cancelled if the client goes away.

        @param request: the request.
        @return: the JSON body, or C{NOT_DONE_YET} while waiting.
        """
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        try:
            self._check_caller(request)
        except BadRequest as e:
            _refuse_and_close(request, e)
            return NOT_DONE_YET
        if getattr(request.content, "overflowed", False):
            return self._error(request, 413, f"request body over {MAX_BODY} bytes")
        path = _path(request)
        if path == ["metrics"]:
            if request.method not in (b"GET", b"HEAD"):
                request.setHeader(b"allow", b"GET")
                return self._error(request, 405, "use GET on /metrics")
            return self.metrics.render(request, self._site_counters(request).get("control"))
        if path[:1] != ["api"]:
            return self.dashboard.render(request, path)
        try:
            handler, argument = self._route(request)
            result = handler(request, argument)
        except BadRequest as e:
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

    def _check_caller(
        self, request: Request, line: tuple[bytes | None, list[str]] | None = None
    ) -> None:
        """
        Check, from its headers alone, that a request may be served: it has exactly one
        C{Host} header (400 otherwise: with two, which one counts is anybody's guess), which
        names a loopback host (403), and the bearer token (401), or, without an
        C{Authorization} header, what the dashboard asks (L{Dashboard.authorize}).

        @param request: the request, its headers complete.
        @param line: its method and path, while the request itself does not know them yet
            (before its body is read).
        @raise BadRequest: the status and message of the refusal.
        """
        hosts = request.requestHeaders.getRawHeaders(b"host") or []
        if len(hosts) > 1:
            raise BadRequest(400, "more than one Host header")
        if _host_name(hosts[0] if hosts else None) not in LOOPBACK_HOSTS:
            raise BadRequest(403, "the control API answers only to loopback host names")
        authorization = request.getHeader(b"authorization")
        if authorization is None:  # a browser: the dashboard's files, login or session
            method, path = line if line is not None else (request.method, _path(request))
            refusal = self.dashboard.authorize(request, method, path)
            if refusal is None:
                return
            if refusal[0] == 401:
                request.setHeader(b"www-authenticate", b'Bearer realm="p2pnet"')
            raise BadRequest(*refusal)
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._token):
            request.setHeader(b"www-authenticate", b'Bearer realm="p2pnet"')
            raise BadRequest(401, "missing or wrong bearer token")

    def _route(self, request: Request) -> tuple[Callable[..., Any], str | None]:
        path = _path(request)
        if not 2 <= len(path) <= 3 or path[0] != "api":
            raise BadRequest(404, "no such resource")
        name = path[1]
        argument = path[2] if len(path) == 3 else None
        handler = self._routes.get((request.method, name, argument is not None))
        if handler is None:
            allowed = sorted({m.decode() for m, n, _ in self._routes if n == name})
            # A method served on the other form of the path (with or without an argument).
            if not allowed or request.method.decode() in allowed:
                raise BadRequest(404, "no such resource")
            request.setHeader(b"allow", ", ".join(allowed).encode())
            raise BadRequest(405, f"use {' or '.join(allowed)} on /api/{name}")
        return handler, argument

    def body(self, request: Request) -> dict[str, Any]:
        """
        The request's body, parsed as a JSON object.

        @raise BadRequest: 413 for a body over L{MAX_BODY} bytes, 400 for one that is not a
            JSON object.
        """
        raw = request.content.read(MAX_BODY + 1) if request.content else b""
        if len(raw) > MAX_BODY:
            raise BadRequest(413, f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise BadRequest(400, f"request body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest(400, "request body must be a JSON object")
        return body

    def _error(self, request: Request, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        return json.dumps({"error": message}).encode()

    def _failed(self, pending: _Pending, failure: Failure) -> None:
        if pending.client_gone:
            return  # the client went away and we stopped its request
        if failure.check(BadRequest):
            pending.finish(failure.value.code, {"error": failure.value.message})
            return
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
            "traffic": {"bytes_in": network.traffic.bytes_in,
                        "bytes_out": network.traffic.bytes_out},
            "peers": [_channel_json(network, c) for c in network.active_peer_channels],
            **self._site_counters(request),
            **self._node_info(request),
            **{name: section() for name, section in self._status_sections.items()},
        }

    def _node_info(self, request: Request) -> dict[str, Any]:
        """The fields of C{/api/status} that describe the node and how to reach it."""
        network = self.network
        return {
            "version": __version__,
            "uptime": max(0.0, network.reactor.seconds() - self.started),
            "display_name": network.display_name,
            "trust": _trust_mode(network),
            "transport": network.transport,
            "control_url": _url_of(request.getHost()),
        }

    def _site_counters(self, request: Request) -> dict[str, Any]:
        site = getattr(getattr(request, "channel", None), "site", None)
        return {"control": site.counters} if isinstance(site, ControlSite) else {}

    def _save(self, what: str) -> None:
        """
        Write the node's state after a change; the change is already in effect.

        @param what: what the request did, for the error message.
        @raise BadRequest: a 500 saying what was not saved and why.
        """
        if self._save_state is None:
            return
        try:
            self._save_state()
        except DataDirError as e:
            self.log.error("control API: {what}, but the state was not saved: {why}",
                           what=what, why=str(e))
            raise BadRequest(
                500, f"{what}, but it was not saved (a restart would undo it): {e}"
            ) from None

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
        """
        C{POST /api/peers} C{{"host", "port"}}: connect to a peer, by address or host name.
        A peer that cannot be reached (no such name, refused, timed out) or that refuses us
        is a 502 whose error says which and why.
        """
        body = self.body(request)
        try:
            peer = peer_for_host(body.get("host"), body.get("port"))
        except ValueError as e:
            raise BadRequest(400, str(e)) from None
        if self._connecting is not None:
            self._connecting(peer)
        return self.network.connect(peer).addCallbacks(
            lambda channel: _channel_json(self.network, channel),
            lambda failure: _connect_failed(failure, peer),
        )

    def delete_peer(self, request: Request, identifier: str) -> Deferred[dict[str, Any]]:
        """
        C{DELETE /api/peers/<identifier>}: disconnect and forget a peer, and save.  A peer
        the node keeps connected (C{--peer}) is no longer redialled, until C{POST /api/peers}
        names it again.
        """
        for channel in self.network.active_peer_channels:
            if getattr(channel.peer, "identifier", None) == identifier:
                closed = self.network.remove_peer(channel)
                held = self._peer_removed(channel) if self._peer_removed is not None else 0
                return closed.addCallback(self._removed, identifier, held)
        raise BadRequest(404, f"no connected peer {identifier!r}")

    def _removed(self, reason: str, identifier: str, held: int) -> dict[str, Any]:
        self._save(f"removed peer {identifier!r}")
        return {"removed": identifier, "reason": reason, "held": held}

    def post_block(self, request: Request, _: None) -> dict[str, Any]:
        """C{POST /api/block} C{{"ip"}} or C{{"identifier"}}: block, drop and save."""
        body = self.body(request)
        ip, identifier = body.get("ip"), body.get("identifier")
        if (ip is None) == (identifier is None):
            raise BadRequest(400, 'give exactly one of "ip" and "identifier"')
        if not isinstance(ip or identifier, str):
            raise BadRequest(400, "the value to block must be a string")
        try:
            dropped = self.network.block(ip=ip, identifier=identifier)
        except ValueError as e:
            raise BadRequest(400, str(e)) from None
        self._save(f"blocked {ip or identifier!r}")
        return {"blocked": ip or identifier, "dropped": len(dropped)}

    def get_blocks(self, request: Request, _: None) -> dict[str, Any]:
        """C{GET /api/blocks}: the blocked IP addresses and identifiers, oldest first."""
        policy = self.network.policy
        return {
            "ips": [ip for ip in policy.blocked_ips if ip in policy.blocked_ips],
            "identifiers": [
                key for key in policy.blocked_identifiers if key in policy.blocked_identifiers
            ],
        }

    def post_unblock(self, request: Request, _: None) -> dict[str, Any]:
        """
        C{POST /api/unblock} C{{"ip"}} or C{{"identifier"}}: lift a block and save (a failed
        save is a 500).  C{was_blocked} says whether it was blocked.
        """
        body = self.body(request)
        ip, identifier = body.get("ip"), body.get("identifier")
        if (ip is None) == (identifier is None):
            raise BadRequest(400, 'give exactly one of "ip" and "identifier"')
        value = ip if ip is not None else identifier
        if not isinstance(value, str):
            raise BadRequest(400, "the value to unblock must be a string")
        policy = self.network.policy
        if ip is not None:
            try:
                ip = value = normalize_ip(ip)
            except ValueError as e:
                raise BadRequest(400, str(e)) from None
            was_blocked = policy.is_blocked_ip(ip)
            policy.blocked_ips.discard(ip)
        else:
            was_blocked = policy.is_blocked_identifier(identifier)
            policy.blocked_identifiers.discard(identifier)
        if was_blocked:
            self.log.info("unblocked {what}", what=peer_text(value))
            self._save(f"unblocked {value!r}")
        return {"unblocked": value, "was_blocked": was_blocked}
