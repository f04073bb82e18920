# -*- test-case-name: tests.test_bootstrap_dashboard -*-
"""
The operator dashboard of a bootstrap server, at C{/}: peers with their address and last
heartbeat, the peer count over time, queued tasks, blocks, recent admin actions, and a button
to disconnect or block each peer.

The page is static files: its panels, script and style sheet
(C{p2pnet_tx/bootstrap/dashboard/}) in the skeleton, script module, style sheet and icon it
shares with the node dashboard (L{p2pnet_tx.webpage}); no build step.  Logging
in works as the node dashboard's does, with its L{SessionStore}: the operator gives the admin
token (C{admin.token} in the data directory) once, and gets a session cookie that is
C{HttpOnly} and C{SameSite=Strict}, and the session's CSRF token, which every request that
changes something must carry in C{X-CSRF-Token}.  A script may instead send
C{Authorization: Bearer <admin token>} (no cookie, so nothing to forge).

The JSON API of the page, all under the session or the bearer token:

  - C{GET /api/state}: everything the page shows (L{BootstrapServer.status}).
  - C{POST /api/block}, C{POST /api/disconnect}: C{{"identifier": ...}}.
  - C{POST /api/unblock}: C{{"value": <identifier or IP>}}.
  - C{GET /api/peers}, C{PUT /api/managepeer} (C{{"peerAddress", "action":
    "disconnect"|"block"}}): the endpoints of P2PNet's own dashboard, same shapes.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from p2pnet_tx import webpage
from p2pnet_tx.bootstrap.server import BootstrapServer, UnknownPeer
from p2pnet_tx.bootstrap.v1_api import client_ip, json_reply
from p2pnet_tx.dashboard import SessionStore

__all__ = ["COOKIE_NAME", "PAGE", "BootstrapDashboard"]

COOKIE_NAME = b"p2pnet_bootstrap_session"
"""The name of the dashboard's session cookie."""

PAGE = webpage.Page(
    package="p2pnet_tx.bootstrap",
    title="p2pnet bootstrap server",
    header='<span id="mode"></span>',
    token_label="Admin token",
    token_hint="The token is the file <code>admin.token</code> in the server's data directory\n"
               "    (<code>~/.p2pnet-bootstrap</code> unless <code>--data-dir</code> says "
               "otherwise).",
    index_paths=frozenset({"", "index.html"}),
)
"""What the bootstrap dashboard puts in the shared page."""


class _Error(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BootstrapDashboard(Resource):
    """
    The dashboard: its files at C{/}, its login at C{/session}, its API at C{/api/...} (but
    C{/api/Bootstrap}, the .NET clients' API).

    @param clock: the sessions' clock.
    @param token: the admin token.
    @param server: the server whose state is shown and acted on.
    @ivar sessions: the logged-in browsers.
    @ivar failed_logins: how many logins gave a wrong token.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, clock: IReactorTime, token: str, server: BootstrapServer) -> None:
        super().__init__()
        self._token = token.encode("ascii")
        self._server = server
        self.sessions = SessionStore(clock)
        self.failed_logins = 0
        self._files = webpage.PageFiles(PAGE)
        self._actions = {
            ("GET", "api/state"): self._state,
            ("POST", "api/block"): self._block,
            ("POST", "api/disconnect"): self._disconnect,
            ("POST", "api/unblock"): self._unblock,
            ("GET", "api/peers"): self._dotnet_peers,
            ("PUT", "api/managepeer"): self._manage_peer,
        }

    def render(self, request: Any) -> bytes | int:
        """
        Serve a dashboard request.

        @param request: the request; its whole path in C{prepath + postpath}.
        @return: the body, or C{NOT_DONE_YET} while an action is stored.
        """
        webpage.secure(request)
        path = "/".join(p.decode("utf-8", "replace") for p in request.prepath + request.postpath)
        path = path.strip("/")
        method = request.method.decode("ascii", "replace")
        try:
            if path in self._files:
                if request.method not in webpage.SAFE_METHODS:
                    request.setHeader(b"allow", b"GET, HEAD")
                    raise _Error(405, f"use GET on /{path}")
                return self._files.serve(request, path)
            if path == "session":
                return self._session(request)
            action = self._actions.get(("GET" if method == "HEAD" else method, path))
            if action is None:
                known = {name for _, name in self._actions}
                raise _Error(405 if path in known else 404,
                             "wrong method" if path in known else "no such resource")
            self._authorize(request)
            return action(request)
        except _Error as e:
            return json_reply(request, e.code, {"error": e.message})

    # -- Sessions ---------------------------------------------------------------------------------

    def _authorize(self, request: Any) -> None:
        header = request.getHeader(b"authorization") or ""
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        if header:
            scheme, _, given = header.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                    given.strip().encode("utf-8", "replace"), self._token):
                return
            raise _Error(401, "wrong bearer token")
        session = self.sessions.find(webpage.session_cookie(request, COOKIE_NAME))
        if session is None:
            raise _Error(401, "not logged in")
        if (request.method not in webpage.SAFE_METHODS
                and not webpage.csrf_matches(request, session.csrf)):
            raise _Error(403, "missing or wrong CSRF token (X-CSRF-Token)")

    def _session(self, request: Any) -> bytes:
        if request.method == b"POST":
            body = _json_body(request)
            token = body.get("token")
            if not isinstance(token, str):
                raise _Error(400, 'send {"token": "<the admin token>"}')
            if not hmac.compare_digest(token.encode("utf-8", "replace"), self._token):
                self.failed_logins += 1
                self._server.counters["dashboard.failed_logins"] += 1
                self.log.warn("dashboard login with a wrong token from {ip}",
                              ip=client_ip(request))
                raise _Error(401, "wrong token: it is in admin.token in the server's data "
                                  "directory")
            session = self.sessions.open()
            webpage.set_session_cookie(request, COOKIE_NAME, session.key.encode("ascii"),
                               int(self.sessions.lifetime))
            self._server.note("dashboard", "login", client_ip(request))
            return json_reply(request, 200, {"csrf": session.csrf})
        session = self.sessions.find(webpage.session_cookie(request, COOKIE_NAME))
        if request.method == b"GET":
            if session is None:
                raise _Error(401, "not logged in")
            return json_reply(request, 200, {"csrf": session.csrf})
        if request.method == b"DELETE":
            if session is not None:
                self.sessions.close(session.key)
            webpage.set_session_cookie(request, COOKIE_NAME, b"", 0)
            return json_reply(request, 200, {"logged_out": True})
        request.setHeader(b"allow", b"DELETE, GET, POST")
        raise _Error(405, "use GET, POST or DELETE on /session")

    # -- The API ----------------------------------------------------------------------------------

    def _state(self, request: Any) -> bytes:
        return json_reply(request, 200, self._server.status())

    def _block(self, request: Any) -> int:
        identifier = _string(_json_body(request), "identifier")
        return self._act(request, self._server.block, identifier, "Blocked")

    def _disconnect(self, request: Any) -> int:
        identifier = _string(_json_body(request), "identifier")
        return self._act(request, self._server.disconnect, identifier, "Disconnected")

    def _unblock(self, request: Any) -> int:
        value = _string(_json_body(request), "value")
        return self._act(request, self._server.unblock, value, "Unblocked")

    def _act(self, request: Any, action: Any, target: str, done: str) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(code: int, value: Any) -> None:
            if not gone:
                request.write(json_reply(request, code, value))
                request.finish()

        def failed(failure: Any) -> None:
            if failure.check(UnknownPeer):
                answer(404, {"error": "no such peer (or not blocked)"})
                return
            self.log.failure("a dashboard action failed", failure)
            answer(500, {"error": "the action could not be stored"})

        d = action(target, f"dashboard ({client_ip(request)})")
        d.addCallbacks(lambda entry: answer(200, {"done": f"{done} {target}", "seq": entry.seq}),
                       failed)
        return NOT_DONE_YET

    def _dotnet_peers(self, request: Any) -> bytes:
        peers = [{"ip": r.ip, "port": r.port, "address": r.ip, "identifier": r.identifier}
                 for r in self._server.registry.peers.values()]
        return json_reply(request, 200, peers)

    def _manage_peer(self, request: Any) -> bytes | int:
        body = _json_body(request)
        address, action = body.get("peerAddress"), body.get("action")
        if not isinstance(address, str) or not isinstance(action, str):
            raise _Error(400, "Missing required properties.")
        if not address or not action:
            raise _Error(400, "Invalid properties.")
        act = {"disconnect": self._server.disconnect, "block": self._server.block}.get(
            action.lower())
        if act is None:
            raise _Error(400, f"Action '{action[:40]}' is not supported.")
        matches = [r.identifier for r in self._server.registry.peers.values()
                   if address in (r.ip, r.identifier)]
        if not matches:
            raise _Error(404, "no such peer")
        actor = f"dashboard ({client_ip(request)})"
        for identifier in matches[1:]:
            act(identifier, actor).addErrback(lambda f: self.log.failure("managepeer", f))
        return self._act(request, act, matches[0], f"{action.lower()}:")



def _json_body(request: Any) -> dict[str, Any]:
    content = request.content
    if getattr(content, "overflowed", False):
        raise _Error(413, "the body is too large")
    content.seek(0)
    try:
        body = json.loads(content.read() or b"null")
    except (ValueError, RecursionError):
        raise _Error(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _Error(400, "the body must be a JSON object")
    return body


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise _Error(400, f"{name} must be a non-empty string")
    return value
