"""
Helpers for the bootstrap server's unit tests: a real SQLite store whose adbapi "thread" runs
each statement at once (so a MemoryReactorClock drives everything, with no thread and no
sleep), a server built on it, and a way to send requests to its resources with
L{DummyRequest}s from any source address.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.enterprise import adbapi
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from p2pnet_tx.bootstrap.authority import Authority
from p2pnet_tx.bootstrap.limits import BootstrapLimits
from p2pnet_tx.bootstrap.registry import Registry
from p2pnet_tx.bootstrap.server import BootstrapServer
from p2pnet_tx.bootstrap.service import BootstrapResource
from p2pnet_tx.bootstrap.store import BootstrapStore

ADMIN_TOKEN = "admin-token-for-tests"
START = 1_700_000_000.0


class SyncReactor(MemoryReactorClock):
    """A memory reactor whose C{callFromThread} calls at once (the pool has no thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.advance(START)

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


class NonThreadPool:
    """A thread pool that runs each call at once, in the caller's thread."""

    def callInThreadWithCallback(self, on_result: Any, f: Any, *args: Any, **kw: Any) -> None:
        try:
            result = f(*args, **kw)
        except Exception:  # noqa: BLE001 - the pool reports any error as a Failure
            on_result(False, Failure())
        else:
            on_result(True, result)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def sync_store(path: Path, reactor: SyncReactor) -> BootstrapStore:
    """A store of a real SQLite file at C{path}, its statements run at once."""
    pool = adbapi.ConnectionPool("sqlite3", str(path), cp_min=1, cp_max=1,
                                 check_same_thread=False, cp_reactor=reactor)
    pool.threadpool = NonThreadPool()
    return BootstrapStore(pool)


def make_server(tmp_path: Path, mode: str = "trustless", ttl: float = 1800.0,
                limits: BootstrapLimits | None = None, reactor: SyncReactor | None = None,
                key: Ed25519PrivateKey | None = None,
                ) -> tuple[SyncReactor, BootstrapServer, BootstrapResource]:
    """A loaded server on a L{SyncReactor} and a real store in C{tmp_path}."""
    reactor = SyncReactor() if reactor is None else reactor
    store = sync_store(tmp_path / "bootstrap.sqlite3", reactor)
    if mode == "authority" and key is None:
        key = Ed25519PrivateKey.generate()
    server = BootstrapServer(reactor, store, Registry(limits or BootstrapLimits(), ttl),
                             Authority(mode, key), 8.0, {})
    resource = BootstrapResource.build(server, ADMIN_TOKEN)
    loaded: list[Any] = []
    server.load().addBoth(loaded.append)
    assert loaded == [None], loaded
    return reactor, server, resource


class _Request(DummyRequest):
    """A DummyRequest that can set cookies, as twisted.web's Request does."""

    addCookie = http.Request.addCookie
    getCookie = http.Request.getCookie

    def __init__(self, postpath: list[bytes]) -> None:
        super().__init__(postpath)
        self.cookies: list[bytes] = []


class Response:
    """What a resource answered."""

    def __init__(self, request: DummyRequest) -> None:
        self.request = request
        self.code = request.responseCode or 200
        self.body = b"".join(request.written)

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.request.responseHeaders.getRawHeaders(name)
        if not values:
            return None
        return values[0].decode() if isinstance(values[0], bytes) else values[0]

    def cookies(self) -> list[bytes]:
        return list(self.request.cookies)


def call(root: Any, method: str, path: str, body: Any = None, ip: str = "10.0.0.1",
         headers: dict[str, str] | None = None, cookies: dict[bytes, bytes] | None = None,
         ) -> Response:
    """
    Send one request to C{root} from C{ip}, as the site would route it, and return the
    answer (the request must be finished by the time this returns).
    """
    path, _, query = path.partition("?")
    request = _Request([part.encode() for part in path.lstrip("/").split("/")])
    request.method = method.encode()
    request.uri = path.encode() + (b"?" + query.encode() if query else b"")
    request.args = {k.encode(): [v.encode() for v in vs] for k, vs in parse_qs(query).items()}
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    request.content = io.BytesIO(raw)
    request.client = (IPv6Address("TCP", ip, 40000) if ":" in ip
                      else IPv4Address("TCP", ip, 40000))
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    request.received_cookies = dict(cookies or {})
    resource = getChildForRequest(root, request)
    result = resource.render(request)
    if result is not NOT_DONE_YET:
        request.write(result)
        request.finish()
    assert request.finished, f"{method} {path} is not answered"
    return Response(request)
