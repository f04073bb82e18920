# -*- test-case-name: tests.test_webpage -*-
"""
What the node dashboard (L{p2pnet_tx.dashboard}) and the bootstrap server's dashboard
(L{p2pnet_tx.bootstrap.dashboard}) serve alike: one page skeleton, one style sheet and one
script module shared by both, the headers every answer carries, and the session cookie.

The shared files are in C{p2pnet_tx/web/}: C{page.html} (the skeleton: head, header, notice,
login form), C{common.css}, C{common.js} (an ES module: login, API calls with the CSRF
header, escaping, tables) and C{favicon.svg}.  Each dashboard adds its own C{main.html} (its
panels), C{dashboard.css} and C{dashboard.js} in its package's C{dashboard/} directory, and a
L{Page} that names them and fills the skeleton's few words.  No build step: the page is put
together once, when first asked for, from files shipped with the package.
"""

from __future__ import annotations

import hmac
from importlib import resources
from string import Template
from typing import Any

import attrs

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SECURITY_HEADERS",
    "Page",
    "PageFiles",
    "csrf_matches",
    "secure",
    "session_cookie",
    "set_session_cookie",
]

CSRF_HEADER = b"x-csrf-token"
"""The header that carries a session's CSRF token on each request that changes something."""

CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""What a dashboard page may load and do: its own files and API calls, nothing else."""

SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
"""The headers on every answer of a dashboard (its files, its login, its API)."""

SAFE_METHODS = frozenset({b"GET", b"HEAD"})
"""The methods that change nothing, so need no CSRF token."""

_SHARED = "p2pnet_tx"  # the package whose web/ directory holds the shared files

# The files of a page, by URL path: (package, directory, file name, content type).  None for
# the package means the dashboard's own.
_FILES = {
    "dashboard.js": (None, "dashboard", "dashboard.js", b"text/javascript; charset=utf-8"),
    "dashboard.css": (None, "dashboard", "dashboard.css", b"text/css; charset=utf-8"),
    "common.js": (_SHARED, "web", "common.js", b"text/javascript; charset=utf-8"),
    "common.css": (_SHARED, "web", "common.css", b"text/css; charset=utf-8"),
    "favicon.svg": (_SHARED, "web", "favicon.svg", b"image/svg+xml"),
}

_HTML = b"text/html; charset=utf-8"


@attrs.frozen
class Page:
    """
    What one dashboard puts in the shared page skeleton (C{p2pnet_tx/web/page.html}).

    @ivar package: the package whose C{dashboard/} directory holds the page's own files:
        C{main.html} (the panels, shown once logged in), C{dashboard.css}, C{dashboard.js}.
    @ivar title: the page's title, also its heading (text).
    @ivar header: HTML put in the header after the heading (an element the script fills).
    @ivar token_label: the login field's label (text).
    @ivar token_hint: HTML under the login form: where the token is.
    @ivar index_paths: the URL paths (without the leading C{/}) that serve the page.
    """

    package: str
    title: str
    header: str
    token_label: str
    token_hint: str
    index_paths: frozenset[str] = frozenset({""})


class PageFiles:
    """
    The files of one dashboard by URL path: its page (the skeleton filled in), its script and
    style sheet, and the shared ones, each read once and kept.

    @param page: the dashboard's L{Page}.
    """

    def __init__(self, page: Page) -> None:
        self._page = page
        self._cache: dict[str, bytes] = {}

    def __contains__(self, path: str) -> bool:
        """Whether C{path} (without the leading C{/}) is one of the page's files."""
        return path in _FILES or path in self._page.index_paths

    def serve(self, request: Any, path: str) -> bytes:
        """
        Answer C{request} with the file at C{path}: its content type, and its bytes.

        @param request: the request (a C{GET} or C{HEAD}).
        @param path: a path in this L{PageFiles} (see L{__contains__}).
        @return: the body.
        @raise KeyError: for a path that is none of the page's files.
        """
        if path in self._page.index_paths:
            request.setHeader(b"content-type", _HTML)
            return self._cached("", self._index)
        package, directory, name, content_type = _FILES[path]
        request.setHeader(b"content-type", content_type)
        return self._cached(path, lambda: _read(package or self._page.package, directory, name))

    def _cached(self, key: str, make: Any) -> bytes:
        data = self._cache.get(key)
        if data is None:
            data = self._cache[key] = make()
        return data

    def _index(self) -> bytes:
        page = self._page
        skeleton = Template(_read(_SHARED, "web", "page.html").decode("utf-8"))
        main = _read(page.package, "dashboard", "main.html").decode("utf-8")
        return skeleton.substitute(title=page.title, header=page.header,
                                   token_label=page.token_label, token_hint=page.token_hint,
                                   main=main).encode("utf-8")


def _read(package: str, directory: str, name: str) -> bytes:
    return resources.files(package).joinpath(directory, name).read_bytes()


def secure(request: Any) -> None:
    """Put L{SECURITY_HEADERS} on C{request}'s answer."""
    for name, value in SECURITY_HEADERS:
        request.setHeader(name, value)


def session_cookie(request: Any, name: bytes) -> str | None:
    """
    The value of the session cookie C{name} that C{request} carries.

    @return: the value, or C{None} when there is none.
    """
    value = request.getCookie(name)
    return value.decode("ascii", "replace") if value else None


def set_session_cookie(request: Any, name: bytes, value: bytes, max_age: int) -> None:
    """
    Set (or, with an empty C{value} and C{max_age} 0, clear) the session cookie C{name}:
    C{HttpOnly}, so no script reads it, and C{SameSite=Strict}, so no other site sends it.
    """
    request.addCookie(name, value, path=b"/", max_age=str(max_age).encode(), httpOnly=True,
                      sameSite="strict")


def csrf_matches(request: Any, csrf: str) -> bool:
    """
    Whether C{request} carries the session's CSRF token C{csrf} in L{CSRF_HEADER} (compared in
    constant time).
    """
    given = request.getHeader(CSRF_HEADER) or b""
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    return hmac.compare_digest(given, csrf.encode("ascii"))
