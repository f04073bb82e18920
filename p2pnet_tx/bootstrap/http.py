# -*- test-case-name: tests.test_bootstrap_client -*-
"""
HTTP for the bootstrap client: one bounded JSON request, and the C{/v1} API's two steps.

Every request has a total deadline on the injected clock and reads at most
L{MAX_REPLY_BYTES} of the reply (RELIABILITY.md: bootstrap HTTP); anything else than a 2xx
JSON reply of the right shape is an L{HTTPFailure}.
"""

from __future__ import annotations

from typing import Any

import treq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred, TimeoutError, fail
from twisted.internet.interfaces import IReactorTime

from p2pnet_tx._json import Invalid, loads
from p2pnet_tx.bootstrap.v1 import (
    HeartbeatReply,
    RegisterReply,
    ReplyError,
    build_heartbeat,
    build_register,
    parse_heartbeat_reply,
    parse_register_reply,
)
from p2pnet_tx.tasks import canonical

__all__ = ["MAX_REPLY_BYTES", "REQUEST_TIMEOUT", "HTTPFailure", "NotRegistered", "V1Api",
           "request_bytes", "request_json"]

MAX_REPLY_BYTES = 1024 * 1024
"""The largest reply body read; a longer one is a failure."""

REQUEST_TIMEOUT = 15.0
"""Seconds a request may take in all, connection included."""


class HTTPFailure(Exception):
    """
    A bootstrap request that did not get a usable reply.

    @ivar status: the HTTP status, or C{None} if there was no reply.
    @ivar retry_after: the seconds the server asked to wait (C{Retry-After}), or C{None}.
    """

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class NotRegistered(HTTPFailure):
    """The server does not know this node (a 404 to a heartbeat): register again."""


class _TooLarge(Exception):
    pass


def _retry_after(response: Any) -> float | None:
    values = response.headers.getRawHeaders(b"retry-after") or []
    try:
        return max(0.0, float(values[0])) if values else None
    except ValueError:
        return None


def request_bytes(
    http: Any, method: str, url: str, clock: IReactorTime, body: bytes | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Deferred[tuple[int, bytes]]:
    """
    Send one request and read its reply's body.

    @param http: a treq-style client (C{treq}, C{HTTPClient}, C{StubTreq}).
    @return: a Deferred firing with C{(status, body)} for any status but 429 and 503; it fails
        with L{HTTPFailure} for those, no reply, a timeout, or a body over L{MAX_REPLY_BYTES}.
    """
    try:
        sent = http.request(method, url, data=body,
                            headers={b"Content-Type": [b"application/json"]})
    except (ValueError, TypeError) as e:  # an unusable URL raises at once
        return fail(HTTPFailure(f"cannot request {url}: {e}"))

    async def exchange() -> tuple[int, bytes]:
        response = await sent
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > MAX_REPLY_BYTES:
                raise _TooLarge()
            chunks.append(data)

        try:
            await treq.collect(response, collect)
        except _TooLarge:
            raise HTTPFailure(f"reply over {MAX_REPLY_BYTES} bytes", response.code) from None
        raw = b"".join(chunks)
        if response.code == 429 or response.code == 503:
            raise HTTPFailure(f"HTTP {response.code}: {_error_text(_parse(raw))}",
                              response.code, _retry_after(response))
        return response.code, raw

    d = Deferred.fromCoroutine(exchange())
    d.addTimeout(timeout, clock)

    def failed(failure: Any) -> Any:
        if failure.check(HTTPFailure):
            return failure
        if failure.check(TimeoutError):
            raise HTTPFailure(f"no reply from {url} within {timeout:.0f} s")
        raise HTTPFailure(f"{url}: {failure.getErrorMessage() or failure.type.__name__}")

    return d.addErrback(failed)


def request_json(
    http: Any, method: str, url: str, clock: IReactorTime, body: bytes | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Deferred[tuple[int, Any]]:
    """
    Send one request and read its JSON reply (L{request_bytes}, parsed).

    @return: a Deferred firing with C{(status, parsed JSON or None)}; failing as
        L{request_bytes} fails.
    """
    d = request_bytes(http, method, url, clock, body, timeout)
    return d.addCallback(lambda result: (result[0], _parse(result[1])))


def _parse(raw: bytes) -> Any:
    try:
        return loads(raw) if raw else None
    except Invalid:
        return None


def _error_text(parsed: Any) -> str:
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return parsed["error"][:200]
    return "no error message"


class V1Api:
    """
    The two steps of the C{/v1} API, signed with the node's key.

    @param http: a treq-style client.
    @param url: the server's base URL, e.g. C{http://127.0.0.1:5070}.
    @param key: the node's private key.
    @param clock: time for the request timestamps and deadlines.
    @param display_name: the node's display name, or C{None}.
    """

    def __init__(self, http: Any, url: str, key: Ed25519PrivateKey, clock: IReactorTime,
                 display_name: str | None = None) -> None:
        self._http = http
        self._url = url.rstrip("/")
        self._key = key
        self._clock = clock
        self._display_name = display_name

    def _post(self, path: str, body: dict[str, Any]) -> Deferred[tuple[int, Any]]:
        return request_json(self._http, "POST", self._url + path, self._clock,
                            canonical(body))

    def register(self, port: int) -> Deferred[RegisterReply]:
        """
        C{POST /v1/register}.

        @return: a Deferred firing with the reply; failing with L{HTTPFailure}.
        """
        body = build_register(self._key, port, self._display_name, now=self._clock.seconds())
        return self._post("/v1/register", body).addCallback(_checked, parse_register_reply)

    def heartbeat(self) -> Deferred[HeartbeatReply]:
        """
        C{POST /v1/heartbeat}.

        @return: a Deferred firing with the reply; failing with L{NotRegistered} on a 404,
            L{HTTPFailure} otherwise.
        """
        body = build_heartbeat(self._key, now=self._clock.seconds())
        return self._post("/v1/heartbeat", body).addCallback(_checked, parse_heartbeat_reply, True)


def _checked(result: tuple[int, Any], parse: Any, registered: bool = False) -> Any:
    status, parsed = result
    if status == 404 and registered:
        raise NotRegistered(f"HTTP 404: {_error_text(parsed)}", status)
    if not 200 <= status < 300:
        raise HTTPFailure(f"HTTP {status}: {_error_text(parsed)}", status)
    try:
        return parse(parsed)
    except ReplyError as e:
        raise HTTPFailure(f"bad reply: {e}", status) from None
