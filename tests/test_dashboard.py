# -*- test-case-name: tests.test_dashboard -*-
"""
Tests for L{p2pnet_tx.dashboard}: the node dashboard's files and their security headers, the
token login, the session cookie (HttpOnly, SameSite=Strict), the CSRF token on every change,
bounded and expiring sessions, and the control API's own rules (Host, limits) applying to it.
The API is served in memory (treq's StubTreq), or behind a L{ControlSite} over a
StringTransport where what happens before a body is read matters.  The page itself is tested
in Chromium by C{tests/integration/test_dashboard_browser.py}.
"""

from __future__ import annotations

import json
import re
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.control import IDLE_TIMEOUT, ControlAPI, ControlSite, MessageLog
from p2pnet_tx.dashboard import (
    CONTENT_SECURITY_POLICY,
    MAX_SESSIONS,
    SESSION_IDLE_TIMEOUT,
    SESSION_LIFETIME,
    SessionStore,
)
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.trust import always_trust

TOKEN = "s3cret-token"
URL = "http://127.0.0.1"


class SessionStoreTests(SynchronousTestCase):
    """Sessions are bounded in number and expire, on the injected clock, with no timer."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.store = SessionStore(self.clock, max_sessions=3, idle_timeout=100.0,
                                  lifetime=1000.0)

    def test_defaults(self) -> None:
        """By default: 16 sessions, 30 minutes idle, 12 hours in all."""
        store = SessionStore(self.clock)
        self.assertEqual((store.max_sessions, store.idle_timeout, store.lifetime),
                         (MAX_SESSIONS, SESSION_IDLE_TIMEOUT, SESSION_LIFETIME))
        self.assertEqual((MAX_SESSIONS, SESSION_IDLE_TIMEOUT, SESSION_LIFETIME),
                         (16, 1800.0, 43200.0))

    def test_keys_are_random_and_distinct(self) -> None:
        """Each session has its own unguessable key and CSRF token."""
        first, second = self.store.open(), self.store.open()
        self.assertNotEqual(first.key, second.key)
        self.assertNotEqual(first.csrf, second.csrf)
        self.assertNotEqual(first.key, first.csrf)
        self.assertGreaterEqual(len(first.key), 40)

    def test_bounded_least_recently_used_goes(self) -> None:
        """A new session past the limit pushes out the least recently used one."""
        a, b, c = (self.store.open() for _ in range(3))
        self.assertIs(self.store.find(a.key), a)  # a is now the most recently used
        d = self.store.open()
        self.assertEqual(len(self.store), 3)
        self.assertIsNone(self.store.find(b.key))
        for session in (a, c, d):
            self.assertIs(self.store.find(session.key), session)

    def test_idle_session_expires(self) -> None:
        """A session unused for idle_timeout is gone; one used just before lives on."""
        session = self.store.open()
        self.clock.advance(99.9)
        self.assertIs(self.store.find(session.key), session)
        self.clock.advance(99.9)
        self.assertIs(self.store.find(session.key), session)
        self.clock.advance(100.0)
        self.assertIsNone(self.store.find(session.key))
        self.assertEqual(len(self.store), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lifetime_ends_a_busy_session(self) -> None:
        """However often it is used, a session ends at its lifetime."""
        session = self.store.open()
        for _ in range(19):
            self.clock.advance(50.0)
            self.assertIs(self.store.find(session.key), session)
        self.clock.advance(50.0)
        self.assertIsNone(self.store.find(session.key))

    def test_expired_sessions_make_room(self) -> None:
        """Expired sessions are dropped before a live one is pushed out."""
        old = self.store.open()
        self.clock.advance(150.0)
        fresh = [self.store.open() for _ in range(2)]
        newest = self.store.open()
        self.assertIsNone(self.store.find(old.key))
        for session in (*fresh, newest):
            self.assertIs(self.store.find(session.key), session)

    def test_unknown_keys(self) -> None:
        """No key, an empty key and a made-up key find nothing."""
        self.store.open()
        for key in (None, "", "made-up"):
            self.assertIsNone(self.store.find(key))

    def test_close(self) -> None:
        """A closed session is forgotten."""
        session = self.store.open()
        self.store.close(session.key)
        self.assertIsNone(self.store.find(session.key))

    def test_bad_limits(self) -> None:
        """No room for a session, or times that are not positive, are refused."""
        for kwargs in ({"max_sessions": 0}, {"idle_timeout": 0.0}, {"lifetime": -1.0}):
            self.assertRaises(ValueError, SessionStore, self.clock, **kwargs)


class DashboardTests(SynchronousTestCase):
    """The dashboard's files, login, cookie, CSRF token and sessions, through the control API."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "tcp:8051")
        self.cookie_name = self.api.dashboard.cookie_name.decode()

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[bytes, list[bytes]] | None = None,
                url: str = URL) -> tuple[Any, bytes]:
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if body is not None:
            kwargs["data" if isinstance(body, bytes) else "json"] = body
        http = StubTreq(self.api)  # a fresh one: no cookie jar kept between requests
        response = self.successResultOf(http.request(method, url + path, **kwargs))
        content = self.successResultOf(response.content())
        http.flush()
        return response, content

    def log_in(self) -> tuple[str, str]:
        """Log in with the token; return the session cookie's value and the CSRF token."""
        response, content = self.request("POST", "/session", {"token": TOKEN})
        self.assertEqual(response.code, 200, content)
        [cookie] = response.headers.getRawHeaders(b"set-cookie")
        value = cookie.split(b";", 1)[0].split(b"=", 1)[1].decode()
        return value, json.loads(content)["csrf"]

    def as_session(self, cookie: str, csrf: str | None = None) -> dict[bytes, list[bytes]]:
        headers = {b"Cookie": [f"{self.cookie_name}={cookie}".encode()]}
        if csrf is not None:
            headers[b"X-CSRF-Token"] = [csrf.encode()]
        return headers

    def test_page_served_with_security_headers(self) -> None:
        """
        The page, its script and its style sheet need no login, with their content types,
        a strict Content-Security-Policy (no inline script, nothing from elsewhere), nosniff,
        no framing and no caching.
        """
        for path, kind, marker in (("/", b"text/html", b"<title>p2pnet node</title>"),
                                   ("/dashboard.js", b"text/javascript", b'"use strict"'),
                                   ("/dashboard.css", b"text/css", b"#peers, #messages"),
                                   ("/common.js", b"text/javascript", b"X-CSRF-Token"),
                                   ("/common.css", b"text/css", b"--accent"),
                                   ("/favicon.svg", b"image/svg+xml", b"<svg")):
            response, content = self.request("GET", path)
            self.assertEqual(response.code, 200, path)
            headers = response.headers
            self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(kind), path)
            self.assertIn(marker, content)
            self.assertEqual(headers.getRawHeaders(b"content-security-policy"),
                             [CONTENT_SECURITY_POLICY])
            self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
            self.assertEqual(headers.getRawHeaders(b"x-frame-options"), [b"DENY"])
            self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-store"])
        self.assertIn(b"script-src 'self';", CONTENT_SECURITY_POLICY)
        self.assertNotIn(b"unsafe", CONTENT_SECURITY_POLICY)

    def test_page_never_builds_markup_from_text(self) -> None:
        """The script writes peer text with textContent only: no HTML sinks, no inline code."""
        for path in ("/dashboard.js", "/common.js"):
            _, script = self.request("GET", path)
            for sink in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write",
                         b"eval(", b"new Function"):
                self.assertNotIn(sink, script, path)
            self.assertIn(b"textContent", script, path)
        _, page = self.request("GET", "/")
        self.assertNotIn(b"<script>", page)
        self.assertNotIn(b"style=", page)
        self.assertIsNone(re.search(rb"\son[a-z]+\s*=", page), "no inline event handlers")

    def test_login_sets_a_strict_http_only_cookie(self) -> None:
        """The token logs in: a session cookie, HttpOnly and SameSite=Strict, and a CSRF token."""
        response, content = self.request("POST", "/session", {"token": TOKEN})
        self.assertEqual(response.code, 200)
        [cookie] = response.headers.getRawHeaders(b"set-cookie")
        attributes = [part.strip().lower() for part in cookie.split(b";")]
        self.assertTrue(attributes[0].startswith(self.cookie_name.encode() + b"="))
        self.assertIn(b"httponly", attributes)
        self.assertIn(b"samesite=strict", attributes)
        self.assertIn(b"path=/", attributes)
        self.assertIn(b"max-age=43200", attributes)
        body = json.loads(content)
        self.assertEqual(len(self.api.dashboard.sessions), 1)
        self.assertGreaterEqual(len(body["csrf"]), 40)

    def test_wrong_token_refused(self) -> None:
        """A wrong token is a 401 that says where the token is; no cookie, no session."""
        response, content = self.request("POST", "/session", {"token": "guess"})
        self.assertEqual(response.code, 401)
        self.assertIsNone(response.headers.getRawHeaders(b"set-cookie"))
        self.assertIn("control.token", json.loads(content)["error"])
        self.assertEqual(len(self.api.dashboard.sessions), 0)
        self.assertEqual(self.api.dashboard.failed_logins, 1)

    def test_bad_login_bodies(self) -> None:
        """A login without a string token is a 400 saying what to send."""
        for body in (b"{not json", b"[]", {"token": 5}, {}):
            response, content = self.request("POST", "/session", body)
            self.assertEqual(response.code, 400, body)
            self.assertIn("token", json.loads(content)["error"])

    def test_session_reads_the_api(self) -> None:
        """With the session cookie, the API answers as to the token; without it, 401."""
        cookie, _ = self.log_in()
        response, content = self.request("GET", "/api/status", headers=self.as_session(cookie))
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(content)["identifier"], "node")
        response, content = self.request("GET", "/api/status")
        self.assertEqual(response.code, 401)
        self.assertIn(b"Bearer", response.headers.getRawHeaders(b"www-authenticate")[0])
        response, _ = self.request("GET", "/api/status", headers=self.as_session("forged"))
        self.assertEqual(response.code, 401)

    def test_changes_need_the_csrf_token(self) -> None:
        """
        A request that changes something needs the session's CSRF token in X-CSRF-Token:
        without it, or with another session's, it is a 403 and nothing changes.
        """
        cookie, csrf = self.log_in()
        _, other_csrf = self.log_in()
        for headers in (self.as_session(cookie), self.as_session(cookie, "wrong"),
                        self.as_session(cookie, other_csrf), self.as_session(cookie, "")):
            response, content = self.request("POST", "/api/block", {"ip": "10.0.0.9"},
                                             headers=headers)
            self.assertEqual(response.code, 403, headers)
            self.assertIn("CSRF", json.loads(content)["error"])
        self.assertFalse(self.network.policy.is_blocked_ip("10.0.0.9"))
        response, _ = self.request("POST", "/api/block", {"ip": "10.0.0.9"},
                                   headers=self.as_session(cookie, csrf))
        self.assertEqual(response.code, 200)
        self.assertTrue(self.network.policy.is_blocked_ip("10.0.0.9"))

    def test_session_answers_its_csrf_token(self) -> None:
        """GET /session gives a live session its CSRF token (for a reloaded page); else 401."""
        cookie, csrf = self.log_in()
        response, content = self.request("GET", "/session", headers=self.as_session(cookie))
        self.assertEqual((response.code, json.loads(content)["csrf"]), (200, csrf))
        response, _ = self.request("GET", "/session")
        self.assertEqual(response.code, 401)

    def test_log_out(self) -> None:
        """Logging out (with the CSRF token) ends the session and clears the cookie."""
        cookie, csrf = self.log_in()
        response, _ = self.request("DELETE", "/session", headers=self.as_session(cookie))
        self.assertEqual(response.code, 403)
        response, _ = self.request("DELETE", "/session", headers=self.as_session(cookie, csrf))
        self.assertEqual(response.code, 200)
        [cleared] = response.headers.getRawHeaders(b"set-cookie")
        self.assertIn(b"max-age=0", cleared.lower())
        response, _ = self.request("GET", "/api/status", headers=self.as_session(cookie))
        self.assertEqual(response.code, 401)

    def test_expired_session_refused(self) -> None:
        """A session idle for 30 minutes is refused."""
        cookie, _ = self.log_in()
        self.reactor.advance(SESSION_IDLE_TIMEOUT)
        response, _ = self.request("GET", "/api/status", headers=self.as_session(cookie))
        self.assertEqual(response.code, 401)

    def test_cookie_named_for_the_node(self) -> None:
        """Two nodes on one host use two cookie names, so they do not log each other out."""
        other = PeerNetwork(self.reactor, transport="tcp", identifier="other",
                            trust_protocol=always_trust)
        api = ControlAPI(other, TOKEN, MessageLog(self.reactor))
        self.assertNotEqual(api.dashboard.cookie_name, self.api.dashboard.cookie_name)
        self.assertTrue(self.cookie_name.startswith("p2pnet_session_"))

    def test_metrics_need_the_token_or_a_session(self) -> None:
        """/metrics is not open: 401 without the token; the token or a session reads it."""
        response, _ = self.request("GET", "/metrics")
        self.assertEqual(response.code, 401)
        response, _ = self.request("GET", "/metrics",
                                   headers={b"Authorization": [b"Bearer " + TOKEN.encode()]})
        self.assertEqual(response.code, 200)
        cookie, _ = self.log_in()
        response, _ = self.request("GET", "/metrics", headers=self.as_session(cookie))
        self.assertEqual(response.code, 200)

    def test_host_rule_applies(self) -> None:
        """The page, too, answers only to a loopback Host (DNS rebinding)."""
        for path in ("/", "/dashboard.js", "/session"):
            response, _ = self.request("GET", path, url="http://evil.example")
            self.assertEqual(response.code, 403, path)
        response, _ = self.request("POST", "/session", {"token": TOKEN},
                                   url="http://evil.example")
        self.assertEqual(response.code, 403)
        self.assertEqual(len(self.api.dashboard.sessions), 0)

    def test_unknown_paths_and_methods(self) -> None:
        """Other paths are 404 (favicon included, with no login); a POST on a file is 405."""
        response, _ = self.request("GET", "/favicon.ico")
        self.assertEqual(response.code, 404)
        cookie, csrf = self.log_in()
        response, _ = self.request("POST", "/", b"", headers=self.as_session(cookie, csrf))
        self.assertEqual(response.code, 405)
        response, _ = self.request("PUT", "/session", b"", headers=self.as_session(cookie, csrf))
        self.assertEqual(response.code, 405)
        response, _ = self.request("POST", "/metrics", b"",
                                   headers={b"Authorization": [b"Bearer " + TOKEN.encode()]})
        self.assertEqual(response.code, 405)


def raw_request(method: bytes, path: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class DashboardSiteTests(SynchronousTestCase):
    """Behind a real L{ControlSite}: what is refused before its body is read."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, transport="tcp", identifier="node",
                                   trust_protocol=always_trust)
        self.api = ControlAPI(self.network, TOKEN, MessageLog(self.reactor), "tcp:8051")
        self.site = ControlSite(self.api, self.reactor, max_connections=2)
        self.channels: list[Any] = []

    def exchange(self, data: bytes) -> tuple[bytes, bytes, StringTransport]:
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        channel = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        channel.dataReceived(data)
        self.channels.append(channel)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        return head, body, transport

    def test_login_and_csrf_through_the_site(self) -> None:
        """The login's body is read and answered; a change without CSRF is refused at once."""
        head, body, _ = self.exchange(raw_request(
            b"POST", b"/session", body=json.dumps({"token": TOKEN}).encode()))
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        cookie = next(line for line in head.split(b"\r\n")
                  if line.lower().startswith(b"set-cookie:")).split(b":", 1)[1]
        cookie = cookie.split(b";", 1)[0].strip()
        csrf = json.loads(body)["csrf"].encode()
        # Declares a large body: refused from its headers, the body never read.
        head, body, transport = self.exchange(raw_request(
            b"POST", b"/api/block", b"Cookie: " + cookie, body=b'{"ip": "10.0.0.9"}'))
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(self.network.policy.is_blocked_ip("10.0.0.9"))
        head, body, _ = self.exchange(raw_request(
            b"POST", b"/api/block", b"Cookie: " + cookie, b"X-CSRF-Token: " + csrf,
            body=b'{"ip": "10.0.0.9"}'))
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertTrue(self.network.policy.is_blocked_ip("10.0.0.9"))

    def test_connection_limits_still_apply(self) -> None:
        """The dashboard's connections are the site's: the limit and the deadline hold."""
        _, _, first = self.exchange(raw_request(b"GET", b"/"))
        _, _, _second = self.exchange(raw_request(b"GET", b"/dashboard.js"))
        self.assertEqual(self.site.counters["open"], 2)
        self.exchange(raw_request(b"GET", b"/dashboard.css"))
        self.assertTrue(first.disconnecting, "the oldest idle connection made room")
        self.assertEqual(self.site.counters["evicted"], 1)
        self.channels[0].connectionLost(Failure(ConnectionDone()))  # the reactor's, after it
        self.reactor.advance(IDLE_TIMEOUT)
        self.assertEqual(self.site.counters["timed_out"], 2)
