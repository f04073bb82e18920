# -*- test-case-name: tests.test_bootstrap_v1_api -*-
"""
The bootstrap server's own API for p2pnet_tx nodes, C{/v1}, as the lead's spec fixes it
(L{p2pnet_tx.bootstrap.v1} holds its messages; this module serves them):

  - C{POST /v1/register}: a signed registration; the address recorded is the request's
    source IP and the port it names.  Reply: a peer sample, the heartbeat interval, the mode
    and the authority key.
  - C{POST /v1/heartbeat}: signed with the registered key.  Reply: the tasks queued for the
    node (signed by the authority) and a peer sample; 404 when the node is not registered.
  - C{GET /v1/peers?limit=N}: a uniform random sample of at most N (at most 100) live peers.
  - C{GET /v1/authority}: the mode and the authority key.

Errors are C{{"error": ...}} with 400, 401, 403 (blocked), 404, 405, 409, 413 or 429.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from p2pnet_tx.bootstrap.registry import API_V1, RegistrationRefused
from p2pnet_tx.bootstrap.server import BootstrapServer
from p2pnet_tx.bootstrap.store import PeerRecord
from p2pnet_tx.bootstrap.v1 import (
    MAX_PEERS,
    PeerEntry,
    RequestError,
    authority_reply,
    heartbeat_reply,
    parse_heartbeat,
    parse_register,
    peers_reply,
    read_body,
    register_reply,
    verify_heartbeat,
)
from p2pnet_tx.identity import sanitize_display_name
from p2pnet_tx.peer import normalize_address
from p2pnet_tx.tasks import ReplayCache

__all__ = ["MAX_NONCES", "V1API", "client_ip", "json_reply"]

MAX_NONCES = 100_000
"""Request nonces remembered at once (each for the timestamp window, 5 minutes)."""


_PHRASES = {429: b"Too Many Requests"}  # not in twisted.web.http.RESPONSES


def client_ip(request: Any) -> str:
    """The source IP of C{request}, in its canonical text form (an IPv4-mapped IPv6
    address as IPv4)."""
    host = getattr(request.getClientAddress(), "host", "")
    try:
        return normalize_address(host)
    except ValueError:
        return str(host)


def json_reply(request: Any, code: int, value: Any) -> bytes:
    """Set C{request}'s status and JSON content type; return the body."""
    request.setResponseCode(code, _PHRASES.get(code))
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value).encode()


def _body(request: Any) -> bytes:
    content = request.content
    if getattr(content, "overflowed", False):
        raise RequestError(413, "the body is too large")
    content.seek(0)
    return content.read()


class V1API(Resource):
    """
    The C{/v1} resources.

    @param server: the server's logic and state.
    @param not_before: requests signed (by their timestamp) before this time are refused 409
        (default: the server's clock now, when the API is made at start).  The nonce cache
        lives in memory only, so a request signed before a restart could otherwise be replayed
        after it, within the timestamp window.
    @ivar replay: the nonces of recent requests (bounded: past it, requests are refused 429
        until old nonces expire).
    @ivar not_before: that time.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, server: BootstrapServer, not_before: float | None = None) -> None:
        super().__init__()
        self._server = server
        self.replay = ReplayCache(MAX_NONCES)
        self.not_before = server.clock.seconds() if not_before is None else not_before
        self._routes = {
            "register": (b"POST", self._register),
            "heartbeat": (b"POST", self._heartbeat),
            "peers": (b"GET", self._peers),
            "authority": (b"GET", self._authority),
        }

    def render(self, request: Any) -> bytes | int:
        """
        Serve one C{/v1} request.

        @param request: the request, its path below C{/v1} in C{postpath}.
        @return: the body, or C{NOT_DONE_YET} while a registration is stored.
        """
        name = "/".join(part.decode("utf-8", "replace") for part in request.postpath)
        route = self._routes.get(name)
        if route is None:
            return json_reply(request, 404, {"error": f"no such resource: /v1/{name[:100]}"})
        method, handler = route
        if request.method != method and not (method == b"GET" and request.method == b"HEAD"):
            request.setHeader(b"allow", method)
            return json_reply(request, 405, {"error": f"use {method.decode()} on /v1/{name}"})
        try:
            return handler(request)
        except RequestError as e:
            self._server.counters[f"v1.refused.{e.status}"] += 1
            return json_reply(request, e.status, {"error": e.message})

    # -- Handlers -------------------------------------------------------------------------------

    def _register(self, request: Any) -> bytes | int:
        server = self._server
        now = server.clock.seconds()
        registration = parse_register(read_body(_body(request)), now=now, replay=self.replay,
                                      not_before=self.not_before)
        record = PeerRecord(
            registration.identifier, API_V1,
            base64.b64encode(registration.public_key).decode("ascii"), client_ip(request),
            registration.port, sanitize_display_name(registration.display_name), now, now)

        answer = _Answer(request)

        def registered(_: object) -> None:
            reply = register_reply(
                self._sample(registration.identifier, MAX_PEERS),
                heartbeat_interval=server.heartbeat_interval, mode=server.authority.mode,
                authority_key=server.authority.public_key, server_time=server.clock.seconds())
            answer.send(200, reply)

        def failed(failure: Any) -> None:
            if failure.check(RegistrationRefused):
                answer.send(failure.value.code, {"error": failure.value.message})
                return
            self.log.failure("a registration could not be stored", failure)
            answer.send(500, {"error": "the registration could not be stored"})

        server.register(record).addCallbacks(registered, failed)
        return NOT_DONE_YET

    def _heartbeat(self, request: Any) -> bytes:
        server = self._server
        heartbeat = parse_heartbeat(read_body(_body(request)))
        record = server.registry.peers.get(heartbeat.identifier)
        if record is None or record.api != API_V1 or record.public_key is None:
            server.counters["heartbeat_unknown"] += 1
            raise RequestError(404, "not registered")
        verify_heartbeat(heartbeat, base64.b64decode(record.public_key),
                         now=server.clock.seconds(), replay=self.replay,
                         not_before=self.not_before)
        try:
            result = server.heartbeat(heartbeat.identifier, client_ip(request))
        except RegistrationRefused as e:
            raise RequestError(e.code, e.message) from None
        if result is None:
            raise RequestError(404, "not registered")
        _, tasks = result
        return json_reply(request, 200, heartbeat_reply(
            tasks, self._sample(heartbeat.identifier, MAX_PEERS)))

    def _peers(self, request: Any) -> bytes:
        values = request.args.get(b"limit", [])
        limit = MAX_PEERS
        if values:
            text = values[0].decode("ascii", "replace")
            if len(values) > 1 or not text.isdigit() or not 0 < int(text[:4]) <= MAX_PEERS:
                raise RequestError(400, f"limit must be a whole number 1-{MAX_PEERS}")
            limit = int(text)
        return json_reply(request, 200, peers_reply(self._sample(None, limit)))

    def _authority(self, request: Any) -> bytes:
        authority = self._server.authority
        return json_reply(request, 200, authority_reply(authority.mode, authority.public_key))

    def _sample(self, exclude: str | None, limit: int) -> list[PeerEntry]:
        return [PeerEntry(r.identifier, r.ip, r.port)
                for r in self._server.registry.sample(API_V1, limit, exclude=exclude)]


class _Answer:
    """Answers a request later, unless its client has gone by then."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self._gone = False
        request.notifyFinish().addErrback(self._lost)

    def _lost(self, _: object) -> None:
        self._gone = True

    def send(self, code: int, value: Any) -> None:
        """Write the JSON C{value} with status C{code} and finish the request."""
        if self._gone:
            return
        self._request.write(json_reply(self._request, code, value))
        self._request.finish()
