# -*- test-case-name: tests.test_webpage -*-
"""
Tests for L{p2pnet_tx.webpage}: the one page skeleton, style sheet, script module and icon
that the node dashboard and the bootstrap server's dashboard both serve, the page each puts
together from them, and the session cookie and CSRF check they share.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

from p2pnet_tx import webpage
from p2pnet_tx.bootstrap.dashboard import PAGE as BOOTSTRAP_PAGE
from p2pnet_tx.dashboard import PAGE as NODE_PAGE

SHARED = ("common.js", "common.css", "favicon.svg")


def serve(files: webpage.PageFiles, path: str) -> tuple[bytes, bytes]:
    request = DummyRequest([path.encode()])
    body = files.serve(request, path)
    [content_type] = request.responseHeaders.getRawHeaders(b"content-type")
    return content_type, body


class PageFilesTests(SynchronousTestCase):
    """Each dashboard's page is the shared skeleton around its own panels."""

    def test_both_pages_share_the_skeleton(self) -> None:
        """Both pages have the shared head, login form and notice, their own title, header
        and panels, no placeholder left, no inline script or style, and load the shared
        files before their own."""
        for page, title, panel in ((NODE_PAGE, b"p2pnet node", b'id="peer-rows"'),
                                   (BOOTSTRAP_PAGE, b"p2pnet bootstrap server",
                                    b'id="audit-list"')):
            content_type, html = serve(webpage.PageFiles(page), "")
            self.assertTrue(content_type.startswith(b"text/html"))
            self.assertIn(b"<title>" + title + b"</title>", html)
            self.assertIn(b"<h1>" + title + b"</h1>", html)
            self.assertIn(panel, html)
            for shared in (b'<form id="login-form" class="inline">', b'id="notice"',
                           b'<script type="module" src="/dashboard.js"></script>'):
                self.assertIn(shared, html)
            self.assertLess(html.index(b"/common.css"), html.index(b"/dashboard.css"))
            self.assertNotIn(b"$", html)
            self.assertNotIn(b"<script>", html)
            self.assertNotIn(b"style=", html)
            self.assertIsNone(re.search(rb"\son[a-z]+\s*=", html))

    def test_shared_files_are_the_same_bytes_for_both(self) -> None:
        """The shared script, style sheet and icon are one file, served alike by both."""
        node, bootstrap = webpage.PageFiles(NODE_PAGE), webpage.PageFiles(BOOTSTRAP_PAGE)
        for path in SHARED:
            self.assertIn(path, node)
            self.assertEqual(serve(node, path), serve(bootstrap, path))

    def test_own_files_differ(self) -> None:
        """Each page's dashboard.js and dashboard.css are its own, and import the shared
        module rather than copy it."""
        node, bootstrap = webpage.PageFiles(NODE_PAGE), webpage.PageFiles(BOOTSTRAP_PAGE)
        for path in ("dashboard.js", "dashboard.css"):
            self.assertNotEqual(serve(node, path)[1], serve(bootstrap, path)[1])
        for files in (node, bootstrap):
            _, script = serve(files, "dashboard.js")
            self.assertIn(b'from "/common.js"', script)
            self.assertNotIn(b"X-CSRF-Token", script)

    def test_index_paths(self) -> None:
        """The bootstrap page also answers at /index.html, as before; the node's does not;
        an unknown path is none of the files."""
        self.assertIn("index.html", webpage.PageFiles(BOOTSTRAP_PAGE))
        self.assertNotIn("index.html", webpage.PageFiles(NODE_PAGE))
        files = webpage.PageFiles(NODE_PAGE)
        self.assertNotIn("favicon.ico", files)
        self.assertRaises(KeyError, files.serve, DummyRequest([b""]), "favicon.ico")


class SessionHelperTests(SynchronousTestCase):
    """The cookie and the CSRF check, as both dashboards use them."""

    def test_cookie_flags(self) -> None:
        """The session cookie is HttpOnly and SameSite=Strict, for the whole site."""
        request = Request(DummyChannel())
        webpage.set_session_cookie(request, b"sid", b"abc", 60)
        [cookie] = request.cookies
        attributes = [part.strip().lower() for part in cookie.split(b";")]
        self.assertEqual(attributes[0], b"sid=abc")
        for flag in (b"httponly", b"samesite=strict", b"path=/", b"max-age=60"):
            self.assertIn(flag, attributes)

    def test_csrf_matches(self) -> None:
        """Only the session's own token, in X-CSRF-Token, passes; none or another fails."""
        request = DummyRequest([b""])
        self.assertFalse(webpage.csrf_matches(request, "token"))
        request.requestHeaders.setRawHeaders(b"x-csrf-token", [b"other"])
        self.assertFalse(webpage.csrf_matches(request, "token"))
        request.requestHeaders.setRawHeaders(b"x-csrf-token", [b"token"])
        self.assertTrue(webpage.csrf_matches(request, "token"))

    def test_security_headers(self) -> None:
        """Every answer gets the strict CSP (no inline script, nothing from elsewhere)."""
        request = DummyRequest([b""])
        webpage.secure(request)
        headers = request.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"content-security-policy"),
                         [webpage.CONTENT_SECURITY_POLICY])
        self.assertNotIn(b"unsafe", webpage.CONTENT_SECURITY_POLICY)
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-store"])
