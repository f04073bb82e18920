# -*- test-case-name: tests.test_control -*-
"""
The HTTP connection policy of the control API (L{p2pnet_tx.control}): L{ControlSite} keeps
at most C{max_connections} connections open, each held to a deadline by its
L{ControlChannel}; L{ControlRequest} refuses a request from its headers alone, before its
body is read, and holds any other body in a L{BoundedBody}.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

if TYPE_CHECKING:
    from p2pnet_tx.control import ControlAPI

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "IDLE_TIMEOUT",
    "LIMIT_WARNING_INTERVAL",
    "MAX_BODY",
    "BoundedBody",
    "ControlChannel",
    "ControlRequest",
    "ControlSite",
]

MAX_BODY = 64 * 1024
"""The largest request body the control API reads."""

DEFAULT_MAX_CONNECTIONS = 64
"""How many connections the control API keeps open at most, unless told otherwise."""

IDLE_TIMEOUT = 10.0
"""Seconds a control connection may stay open without a request in progress."""

LIMIT_WARNING_INTERVAL = 60.0
"""Seconds between two warnings of one kind (connection limit reached, requests refused)."""


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
    The requests of the control API, checked as soon as their headers are in: a request
    that comes with a body and is refused (more than one C{Host}, a C{Host} that is not
    loopback, a wrong token, or a declared body over C{MAX_BODY}) is answered before its body
    is read, and its connection closed; any other body is held in a L{BoundedBody}.

    @ivar refused: whether this request was refused (answered with a JSON error and its
        connection closed) for its caller or its declared size.
    """

    refused = False

    def gotLength(self, length: int | None) -> None:
        """
        Prepare for a body of C{length} bytes, or refuse the request: the answer is written
        and the connection closed right after the headers, so that the body is never read.
        (A request without a body goes on to
        L{ControlAPI.render <p2pnet_tx.control.ControlAPI.render>}, which checks it alike.)

        @param length: the declared length of the body, or C{None} (chunked).
        """
        self.content = BoundedBody()
        if length == 0:
            return
        refusal = self._refusal(length)
        if refusal is None:
            return
        self.refused = True
        # The request line is parsed, but the channel records it on the request only once
        # the body is in (requestReceived), which never happens here: answer as HTTP/1.1.
        self.clientproto = b"HTTP/1.1"
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"cache-control", b"no-store")
        _refuse_and_close(self, refusal)

    def _refusal(self, length: int | None) -> BadRequest | None:
        api = getattr(getattr(self.channel, "site", None), "resource", None)
        # The resource's own check (L{ControlAPI._check_caller}), found by name: this module
        # is imported by p2pnet_tx.control, so it cannot import ControlAPI to test for it.
        check_caller = getattr(api, "_check_caller", None)
        if check_caller is not None:
            try:
                check_caller(self, _request_line(self.channel) or (None, []))
            except BadRequest as e:
                return e
        if length is not None and length > MAX_BODY:
            return BadRequest(413, f"request body over {MAX_BODY} bytes")
        return None

    def handleContentChunk(self, data: bytes) -> None:
        """
        Keep a chunk of the body, unless the request was refused (a transport that still
        delivers bytes after the close must not make the channel buffer them).

        @param data: the chunk.
        """
        if not self.refused:
            super().handleContentChunk(data)


def _refuse_and_close(request: Request, refusal: BadRequest) -> None:
    """
    Answer C{request} with C{refusal}'s status and JSON error, then close its connection
    (the client sent a request it had no business sending, or a body that is not read).
    The request is marked C{refused}, for L{ControlSite.log}.

    @param request: the request, not yet finished.
    @param refusal: the status and message.
    """
    body = json.dumps({"error": refusal.message}).encode()
    request.refused = True  # type: ignore[attr-defined]
    request.setResponseCode(refusal.code)
    request.setHeader(b"content-length", b"%d" % len(body))
    request.setHeader(b"connection", b"close")
    request.write(body)
    channel, transport = request.channel, request.transport  # finish() lets go of the channel
    request.finish()
    # With the transport disconnecting, the channel parses nothing more of what the client
    # sent (a body included), and the reactor reads no further.  (A channel that is not
    # persistent, HTTP/1.0, has already closed itself in finish().)
    if not transport.disconnecting:
        channel.loseConnection()


class ControlChannel(HTTPChannel):
    """
    One HTTP connection to the control API, held to a deadline: it is closed C{site.timeOut}
    seconds after it opened, or after its last response, unless a request is in progress.
    A request is in progress from the end of its headers to the end of its response; bytes
    that trickle in before that do not move the deadline, so a client that drips its headers
    (slowloris) keeps its connection no longer than one that sends nothing.  The deadline is
    the one C{DelayedCall} of L{TimeoutMixin <twisted.protocols.policies.TimeoutMixin>}.

    @ivar site: the L{ControlSite} that made this channel.
    @ivar busy: whether a request is in progress.
    """

    site: ControlSite
    busy = False

    def resetTimeout(self) -> None:
        """
        Leave the deadline where it is: Twisted moves it on every byte received, which would
        let a client hold a connection by sending a byte now and then.
        """

    def allHeadersReceived(self) -> None:
        """A request is in progress: no deadline until its response is finished."""
        self.busy = True
        self.setTimeout(None)
        super().allHeadersReceived()

    def requestDone(self, request: Request) -> None:
        """
        The response is finished: the deadline runs again, from now (before a pipelined
        request, parsed in C{super().requestDone}, is in progress in its turn).

        @param request: the finished request.
        """
        self.busy = False
        self.setTimeout(self.site.timeOut)
        super().requestDone(request)

    def timeoutConnection(self) -> None:
        """
        The deadline has passed with no request in progress: drop the connection at once.
        (Nothing is owed to the client, so Twisted's polite close, with its second timer for
        a client that does not read, is not needed.)
        """
        self.site.connection_timed_out(self)
        self.transport.abortConnection()

    def evict(self) -> None:
        """Drop this idle connection at once, to make room for a new one."""
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        """
        Cancel the deadline and fail the requests in progress, and give up the place in the
        site.

        @param reason: why the connection ended.
        """
        super().connectionLost(reason)
        self.site.connection_closed(self)


class ControlSite(Site):
    """
    The L{Site} of a control API, with a bounded set of connections.

    It keeps at most C{max_connections} connections open.  When a new connection comes and
    every place is taken, it drops the oldest connection that has no request in progress to
    make room; only when every connection has a request in progress is the new one refused
    (closed before a byte is read).  So clients that connect and say nothing cannot lock out
    C{p2pnet-ctl}: each of its requests takes the place of one of them.  Every connection is
    closed C{timeout} seconds after it opened or after its last response, unless a request is
    in progress (see L{ControlChannel}).

    Clients choose how many connections and requests they make, so none of them gets a log
    line of its own above debug level: evictions, refusals, timeouts and refused requests are
    counted in L{counters}, and a warning with the counts so far is logged at most once a
    minute for connections dropped or refused at the limit, and once a minute for refused
    requests.

    @param resource: the control API.
    @param reactor: accepts the connections and keeps their deadlines.
    @param max_connections: how many connections to keep open at most (at least 1).
    @param timeout: seconds a connection may stay open without a request in progress.
    @ivar max_connections: how many connections are kept open at most.
    @raise ValueError: if C{max_connections} is below 1 or C{timeout} not above 0.
    """

    protocol = ControlChannel
    noisy = False
    _logger = Logger()  # Site.log is the access log

    def __init__(
        self,
        resource: ControlAPI,
        reactor: IReactorTime,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout: float = IDLE_TIMEOUT,
    ) -> None:
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or (
            max_connections < 1
        ):
            raise ValueError(f"max_connections must be a positive integer, not {max_connections!r}")
        if not timeout > 0:
            raise ValueError(f"the control connection timeout must be above 0, not {timeout!r}")
        super().__init__(resource, requestFactory=ControlRequest, timeout=timeout,
                         reactor=reactor)
        self.max_connections = max_connections
        self._clock = reactor
        self._open: dict[ControlChannel, None] = {}  # oldest first
        self._counts = {"evicted": 0, "refused": 0, "timed_out": 0, "refused_requests": 0}
        self._quiet_until: dict[str, float] = {}

    @property
    def counters(self) -> dict[str, int]:
        """
        The connections open now (C{open}), the limit (C{max}); how many connections were
        dropped to make room (C{evicted}), refused because every place had a request in
        progress (C{refused}) or closed at their deadline (C{timed_out}); and how many
        requests were refused from their headers (C{refused_requests}: a wrong token or
        C{Host}, a body too large).
        """
        return {"open": len(self._open), "max": self.max_connections, **self._counts}

    def buildProtocol(self, addr: IAddress) -> ControlChannel | None:
        """
        Make a channel for a new connection, dropping the oldest idle one if every place is
        taken.

        @param addr: the client's address.
        @return: the channel, or C{None} (the connection is closed unread) when every open
            connection has a request in progress.
        """
        if len(self._open) >= self.max_connections:
            idle = next((channel for channel in self._open if not channel.busy), None)
            if idle is None:
                self._at_limit("refused")
                return None
            del self._open[idle]
            self._at_limit("evicted")
            idle.evict()
        channel: ControlChannel = super().buildProtocol(addr)
        self._open[channel] = None
        return channel

    def log(self, request: Request) -> None:
        """
        Note a finished request: a served one at debug level, a refused one in the counters
        (Twisted's access log would write a line for each, which clients could use to flood
        the log).

        @param request: the finished request.
        """
        if not getattr(request, "refused", False):
            self._logger.debug("control {method} {uri}: {code}", method=request.method,
                               uri=request.uri, code=request.code)
            return
        self._counts["refused_requests"] += 1
        self._warn_at_most_every_minute(
            "requests", "control API refused {count} requests so far (wrong token, Host "
            "header or body size); the last one from {client}: {code}",
            count=self._counts["refused_requests"], client=request.getClientAddress(),
            code=request.code,
        )

    def connection_timed_out(self, channel: ControlChannel) -> None:
        """
        Count a connection closed at its deadline.

        @param channel: its channel.
        """
        self._counts["timed_out"] += 1

    def connection_closed(self, channel: ControlChannel) -> None:
        """
        Forget a closed connection.

        @param channel: its channel.
        """
        self._open.pop(channel, None)

    def _at_limit(self, what: str) -> None:
        self._counts[what] += 1
        self._warn_at_most_every_minute(
            "limit", "control API at its limit of {max} connections: so far {evicted} idle "
            "connections closed early to make room, {refused} refused",
            max=self.max_connections, evicted=self._counts["evicted"],
            refused=self._counts["refused"],
        )

    def _warn_at_most_every_minute(self, key: str, template: str, **fields: Any) -> None:
        now = self._clock.seconds()
        if now < self._quiet_until.get(key, now):
            return
        self._quiet_until[key] = now + LIMIT_WARNING_INTERVAL
        self._logger.warn(template, **fields)


class BadRequest(Exception):
    """
    An error answer: its status (4xx, or 500 for a change not saved) and message.  A route
    handler raises it (or fails its Deferred with it) to answer C{{"error": message}}.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _split(path: bytes) -> list[str]:
    parts = [part.decode("utf-8", "replace") for part in path.split(b"?", 1)[0].split(b"/")]
    return [part for part in parts if part]


def _request_line(channel: Any) -> tuple[bytes, list[str]] | None:
    """
    The method and path of the request whose headers C{channel} has just read: Twisted gives
    them to the request only with its body, and keeps them on the channel until then.
    C{None} if it does not (an unknown method then counts as one that changes something).
    """
    method, path = getattr(channel, "_command", None), getattr(channel, "_path", None)
    if not isinstance(method, bytes) or not isinstance(path, bytes):
        return None
    return method, _split(path)
