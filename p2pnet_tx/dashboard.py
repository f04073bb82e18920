# -*- test-case-name: tests.test_dashboard -*-
"""
The node dashboard: a page at C{/} of the control API, and the login sessions it runs on.

The page is static files shipped with the package: its panels, its script and its style sheet
(C{p2pnet_tx/dashboard/}) in the skeleton, script module, style sheet and icon it shares with
the bootstrap server's dashboard (C{p2pnet_tx/web/}, served by L{p2pnet_tx.webpage}); no
build step.  It talks to the same JSON API as
C{p2pnet-ctl}, but a browser cannot be trusted with the bearer token on every request, so:

  - the user logs in once with the token (C{POST /session}); the node answers with a session
    cookie that is C{HttpOnly} (no script can read it) and C{SameSite=Strict} (no other site
    can make the browser send it), and with the session's CSRF token;
  - every request that changes something (any method but C{GET} and C{HEAD}) must carry that
    CSRF token in an C{X-CSRF-Token} header, compared with C{hmac.compare_digest}: a page of
    another origin (another port of 127.0.0.1 is one) cannot read it, so it cannot forge one;
  - sessions live in memory, at most L{MAX_SESSIONS} of them (a new one pushes out the least
    recently used), each for at most L{SESSION_IDLE_TIMEOUT} seconds without a request and
    L{SESSION_LIFETIME} seconds in all, checked when used (no timer).

Every answer of the dashboard carries a strict C{Content-Security-Policy}: scripts, styles and
requests only from the node itself, no inline script, no frames.  The control API's other
rules hold for the dashboard as for the API: one C{Host} header naming a loopback host, and
the site's connection limits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx.webpage import (
    CONTENT_SECURITY_POLICY,
    CSRF_HEADER,
    SAFE_METHODS,
    Page,
    PageFiles,
    csrf_matches,
    secure,
    session_cookie,
    set_session_cookie,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "MAX_SESSIONS",
    "PAGE",
    "SESSION_IDLE_TIMEOUT",
    "SESSION_LIFETIME",
    "Dashboard",
    "Session",
    "SessionStore",
]

MAX_SESSIONS = 16
"""Dashboard sessions a node keeps at most; a new one pushes out the least recently used."""

SESSION_IDLE_TIMEOUT = 30 * 60.0
"""Seconds a session lasts without a request."""

SESSION_LIFETIME = 12 * 3600.0
"""Seconds a session lasts at most, however busy."""

PAGE = Page(
    package="p2pnet_tx",
    title="p2pnet node",
    header='<code id="node-id"></code>',
    token_label="Control token",
    token_hint="The token is the file <code>control.token</code> in the node's data directory\n"
               "    (<code>~/.p2pnet</code> unless <code>--data-dir</code> says otherwise).",
)
"""What the node dashboard puts in the shared page."""


@attrs.define
class Session:
    """
    One logged-in browser.

    @ivar key: the secret in its cookie.
    @ivar csrf: the token its state-changing requests must carry.
    @ivar created: when it logged in (on the store's clock).
    @ivar last_used: when it last made a request.
    """

    key: str
    csrf: str
    created: float
    last_used: float


class SessionStore:
    """
    The dashboard's sessions: in memory, bounded in number, expiring.

    @param clock: gives the time; nothing is scheduled on it.
    @param max_sessions: how many sessions to keep at most.
    @param idle_timeout: seconds a session lasts without a request.
    @param lifetime: seconds a session lasts at most.
    @raise ValueError: for a C{max_sessions} below 1 or times not above 0.
    """

    def __init__(
        self,
        clock: IReactorTime,
        max_sessions: int = MAX_SESSIONS,
        idle_timeout: float = SESSION_IDLE_TIMEOUT,
        lifetime: float = SESSION_LIFETIME,
    ) -> None:
        if max_sessions < 1 or not idle_timeout > 0 or not lifetime > 0:
            raise ValueError("a session store needs room for a session and times above 0")
        self._clock = clock
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.lifetime = lifetime
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        """The sessions kept (some may have expired, unnoticed until used)."""
        return len(self._sessions)

    def open(self) -> Session:
        """
        Start a session, pushing out the least recently used one if the store is full.

        @return: the new session.
        """
        now = self._clock.seconds()
        self._expire(now)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.key] = session
        return session

    def find(self, key: str | None) -> Session | None:
        """
        The live session whose cookie holds C{key}, now used; an expired one is forgotten.

        @param key: the cookie's value, if any.
        @return: the session, or C{None}.
        """
        if not key:
            return None
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock.seconds()
        if self._expired(session, now):
            del self._sessions[key]
            return None
        session.last_used = now
        self._sessions.move_to_end(key)
        return session

    def close(self, key: str) -> None:
        """Forget the session C{key} (logging out)."""
        self._sessions.pop(key, None)

    def _expired(self, session: Session, now: float) -> bool:
        return (now >= session.last_used + self.idle_timeout
                or now >= session.created + self.lifetime)

    def _expire(self, now: float) -> None:
        for key in [key for key, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


class Dashboard:
    """
    The dashboard's part of the control API: its files, its login and its sessions.

    The control API asks L{authorize} about each request that carries no C{Authorization}
    header, and hands every request outside C{/api} and C{/metrics} to L{render}.

    @param clock: the sessions' clock.
    @param token: the control API's bearer token, which logs a browser in.
    @param node_identifier: names the session cookie, so that two nodes on one host (whose
        cookies a browser shares, ports apart) do not log each other's users out.
    @param sessions: the session store; a new L{SessionStore} by default.

    @ivar sessions: the session store.
    @ivar cookie_name: the session cookie's name.
    @ivar failed_logins: how many logins gave a wrong token.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        token: bytes,
        node_identifier: str,
        sessions: SessionStore | None = None,
    ) -> None:
        self._token = token
        self.sessions = SessionStore(clock) if sessions is None else sessions
        digest = hashlib.sha256(node_identifier.encode("utf-8", "replace")).hexdigest()
        self.cookie_name = ("p2pnet_session_" + digest[:16]).encode("ascii")
        self.failed_logins = 0
        self._files = PageFiles(PAGE)

    # -- Asked by the control API ----------------------------------------------------------------

    def authorize(
        self, request: Any, method: bytes | None, path: list[str]
    ) -> tuple[int, str] | None:
        """
        Decide on a request that carries no bearer token: what the dashboard reads out
        (C{GET} or C{HEAD} outside C{/api} and C{/metrics}: its files, and C{/session}, which
        answers only to a live session) and the login are open to anyone who passed the
        C{Host} check; everything else needs a live session, and, unless it is a C{GET} or
        C{HEAD}, that session's CSRF token.

        @param request: the request, its headers complete.
        @param method: its method (C{None}: not known yet, taken as one that changes
            something).
        @param path: its path, split on C{/}, without empty parts.
        @return: C{None} to serve it, or the status and message of the refusal.
        """
        if method in SAFE_METHODS and path[:1] not in (["api"], ["metrics"]):
            return None
        if path == ["session"] and method == b"POST":
            return None
        session = self.sessions.find(session_cookie(request, self.cookie_name))
        if session is None:
            return 401, "missing or wrong bearer token, and no dashboard session: log in"
        if method not in SAFE_METHODS and not csrf_matches(request, session.csrf):
            return 403, "missing or wrong CSRF token (X-CSRF-Token)"
        return None

    def render(self, request: Any, path: list[str]) -> bytes:
        """
        Serve a request outside C{/api} and C{/metrics}, already authorized.

        @param request: the request.
        @param path: its path, split on C{/}, without empty parts.
        @return: the body.
        """
        secure(request)
        name = "/".join(path)
        if name in self._files and request.method in SAFE_METHODS:
            return self._files.serve(request, name)
        if name == "session":
            return self._session(request)
        if name in self._files:
            request.setHeader(b"allow", b"GET, HEAD")
            return _error(request, 405, f"use GET on /{name}")
        return _error(request, 404, "no such resource")

    # -- Sessions --------------------------------------------------------------------------------

    def _session(self, request: Any) -> bytes:
        method = request.method
        if method == b"POST":
            return self._log_in(request)
        session = self.sessions.find(session_cookie(request, self.cookie_name))
        if method == b"GET":
            if session is None:
                return _error(request, 401, "not logged in")
            return _json({"csrf": session.csrf, "expires_in": self._expires_in(session)})
        if method == b"DELETE":
            if session is not None:
                self.sessions.close(session.key)
            self._set_cookie(request, b"", max_age=0)
            return _json({"logged_out": True})
        request.setHeader(b"allow", b"DELETE, GET, POST")
        return _error(request, 405, "use GET, POST or DELETE on /session")

    def _log_in(self, request: Any) -> bytes:
        try:
            body = json.loads(request.content.read() if request.content else b"")
        except (ValueError, RecursionError):
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return _error(request, 400, 'send {"token": "<the control token>"}')
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self._token):
            self.failed_logins += 1
            request.refused = True  # counted (and warned of, at most once a minute) by the site
            return _error(request, 401, "wrong token: it is in control.token in the node's "
                                        "data directory")
        session = self.sessions.open()
        self._set_cookie(request, session.key.encode("ascii"),
                         max_age=int(self.sessions.lifetime))
        return _json({"csrf": session.csrf, "expires_in": self._expires_in(session)})

    def _expires_in(self, session: Session) -> float:
        store = self.sessions
        return min(session.last_used + store.idle_timeout, session.created + store.lifetime) - (
            session.last_used)

    def _set_cookie(self, request: Any, value: bytes, max_age: int) -> None:
        set_session_cookie(request, self.cookie_name, value, max_age)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _error(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return _json({"error": message})
