# -*- test-case-name: tests.test_bootstrap_service -*-
"""
The bootstrap server as a Twisted service: one HTTP listener whose root resource routes
C{/v1} to L{V1API}, C{/api/Bootstrap} to L{DotNetAPI}, and everything else to the
L{BootstrapDashboard}; the store is read back when the service starts, and every request is
answered C{503} (with C{Retry-After}) until it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorCore,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from p2pnet_tx.bootstrap.authority import ADMIN_TOKEN_FILE, Authority
from p2pnet_tx.bootstrap.dashboard import BootstrapDashboard
from p2pnet_tx.bootstrap.dotnet_api import DotNetAPI
from p2pnet_tx.bootstrap.limits import BootstrapLimits, BootstrapSite
from p2pnet_tx.bootstrap.registry import API_DOTNET, API_V1, Registry
from p2pnet_tx.bootstrap.server import BootstrapServer
from p2pnet_tx.bootstrap.store import BootstrapStore
from p2pnet_tx.bootstrap.v1_api import V1API, json_reply
from p2pnet_tx.service import ListenerService

__all__ = ["URL_FILE", "BootstrapResource", "BootstrapService"]

URL_FILE = "bootstrap.url"
"""The file in the data directory that holds the server's URL while it listens."""


class _Unavailable(Resource):
    isLeaf = True

    def __init__(self, message: str, code: int = 503, retry: int = 1) -> None:
        super().__init__()
        self._message = message
        self._code = code
        self._retry = retry

    def render(self, request: Any) -> bytes:
        request.setHeader(b"retry-after", b"%d" % self._retry)
        request.setHeader(b"connection", b"close")
        return json_reply(request, self._code, {"error": self._message})


class BootstrapResource(Resource):
    """
    The root resource: C{/v1/...}, C{/api/Bootstrap/...}, and the dashboard.

    @param server: the server (until it is ready, every request is answered 503).
    @param v1: the C{/v1} API.
    @param dotnet: the .NET-compatible API.
    @param dashboard: the dashboard.
    @ivar broken: why the server cannot serve (its store failed), or C{None}.
    """

    def __init__(self, server: BootstrapServer, v1: V1API, dotnet: DotNetAPI,
                 dashboard: BootstrapDashboard) -> None:
        super().__init__()
        self.server = server
        self.v1 = v1
        self.dotnet = dotnet
        self.dashboard = dashboard
        self.broken: str | None = None

    @classmethod
    def build(cls, server: BootstrapServer, token: str) -> BootstrapResource:
        """Make the APIs and the dashboard of C{server}; C{token} logs operators in."""
        v1 = V1API(server)
        dotnet = DotNetAPI(server)
        server.set_task_bodies({API_V1: lambda task, signed: signed,
                                API_DOTNET: dotnet.task_body})
        return cls(server, v1, dotnet, BootstrapDashboard(server.clock, token, server))

    def getChild(self, name: bytes, request: Any) -> Resource:
        """
        Route a request by the first segment of its path.

        @param name: that segment.
        @param request: the request.
        """
        retry = getattr(request, "retry_after", None)
        if retry is not None:
            return _Unavailable(f"too many requests from your address: retry in {retry} s",
                                429, retry)
        if self.broken is not None:
            return _Unavailable(self.broken)
        if not self.server.ready:
            return _Unavailable("the server is starting")
        if name == b"v1":
            return self.v1
        if name == b"api" and request.postpath[:1] and request.postpath[0].lower() == b"bootstrap":
            request.prepath.append(request.postpath.pop(0))
            return self.dotnet
        return self.dashboard


class _Listener(ListenerService):
    """Writes the server's URL to the data directory, and says where the dashboard is."""

    def __init__(self, endpoint: IStreamServerEndpoint, site: BootstrapSite,
                 description: str, data_dir: Path | None) -> None:
        super().__init__(endpoint, site, description)
        self._data_dir = data_dir
        self.url: str | None = None

    def listening(self, port: IListeningPort) -> None:
        address = port.getHost()
        host = getattr(address, "host", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{getattr(address, 'port', 0)}"
        token = "" if self._data_dir is None else str(self._data_dir / ADMIN_TOKEN_FILE)
        if self._data_dir is not None:
            (self._data_dir / URL_FILE).write_text(self.url + "\n")
        self.log.info("bootstrap server at {url}/v1 and {url}/api/Bootstrap; dashboard at "
                      "{url}/ (log in with the token in {token})", url=self.url, token=token)

    def stopped_listening(self, port: IListeningPort) -> None:
        self.url = None
        if self._data_dir is not None:
            (self._data_dir / URL_FILE).unlink(missing_ok=True)


class BootstrapService(MultiService):
    """
    A bootstrap server: its listener, and its state loaded from the store when it starts.

    @param reactor: the reactor (listens, keeps the timers, runs the store's pool).
    @param endpoint: where to listen.
    @param store: the database.
    @param authority: the mode and key.
    @param token: the admin token.
    @param ttl: seconds a peer stays registered after its last heartbeat.
    @param heartbeat_interval: the seconds between heartbeats asked of nodes.
    @param limits: the limits.
    @param description: how log lines name the endpoint.
    @param data_dir: where the URL is written while listening, if anywhere.

    @ivar server: the server's logic and state.
    @ivar resource: the root resource.
    @ivar listener: the listening service (its C{url} once listening).
    """

    log = Logger()

    def __init__(self, reactor: IReactorCore, endpoint: IStreamServerEndpoint,
                 store: BootstrapStore, authority: Authority, token: str, *, ttl: float,
                 heartbeat_interval: float, limits: BootstrapLimits | None = None,
                 description: str = "", data_dir: Path | None = None) -> None:
        super().__init__()
        limits = BootstrapLimits() if limits is None else limits
        self.server = BootstrapServer(reactor, store, Registry(limits, ttl), authority,
                                      heartbeat_interval, {})
        self.resource = BootstrapResource.build(self.server, token)
        self.listener = _Listener(endpoint, BootstrapSite(self.resource, reactor, limits),
                                  description or repr(endpoint), data_dir)
        self.listener.setServiceParent(self)
        self._store = store
        self._loading: Deferred[None] | None = None

    def startService(self) -> None:
        """Listen, and read the stored state back (requests get 503 until it is read)."""
        super().startService()
        self._loading = self.server.load()
        self._loading.addErrback(self._cannot_load)

    def _cannot_load(self, failure: Failure) -> None:
        self.resource.broken = "the server cannot read its database: see its log"
        self.log.failure("the bootstrap server cannot read its database", failure)

    def stopService(self) -> Deferred[None]:
        """Stop listening and the expiry timer, then close the store."""
        self.server.stop()
        d: Deferred[None] = super().stopService()
        d.addBoth(lambda result: (self._store.close(), result)[1])
        return d

    def when_loaded(self) -> Deferred[None]:
        """
        @return: a Deferred firing once the stored state is read (failing if it cannot be);
            only after L{startService}.
        """
        if self._loading is None:
            raise RuntimeError("the service is not started")
        d: Deferred[None] = Deferred()
        self._loading.addBoth(lambda result: (d.callback(result), result)[1])
        return d
