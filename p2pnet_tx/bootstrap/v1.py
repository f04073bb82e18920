# -*- test-case-name: tests.test_bootstrap_v1 -*-
"""
The messages of the bootstrap server's C{/v1} API, shared by the server and the node's client.

Requests are signed: a request body is a JSON object of fields plus C{"signature"}, the
standard base64 of the Ed25519 signature of C{DOMAIN + canonical(fields)}
(L{p2pnet_tx.tasks.canonical}), where C{DOMAIN} is L{REGISTER_DOMAIN} or L{HEARTBEAT_DOMAIN}.

  - C{POST /v1/register}: C{identifier}, C{public_key}, C{port}, C{display_name},
    C{timestamp}, C{nonce}; signed with the key the identifier derives from.  Reply: see
    L{register_reply}.
  - C{POST /v1/heartbeat}: C{identifier}, C{timestamp}, C{nonce}; signed with the registered
    key.  Reply: see L{heartbeat_reply}; 404 if the identifier is not registered.
  - C{GET /v1/peers?limit=N}: C{{"peers": [PEER...]}}.
  - C{GET /v1/authority}: C{{"mode": ..., "public_key": base64 | null}}.

A PEER is C{{"identifier": str, "ip": str, "port": int}} (L{PeerEntry}).  Errors are
C{{"error": "..."}} with the status of the L{RequestError} that describes them.

Server side, L{read_body}, L{parse_register}, L{parse_heartbeat} and L{verify_heartbeat} check
every field's exact type and raise L{RequestError} carrying the HTTP status to answer.  Client
side, L{build_register} and L{build_heartbeat} make the bodies, and the C{parse_*_reply}
functions read the replies, raising L{ReplyError}.  No I/O here, no Twisted: time is passed in.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from p2pnet_tx._json import Invalid, loads
from p2pnet_tx.identity import (
    MAX_DISPLAY_NAME,
    identifier_for_public_key,
    is_key_identifier,
    public_key_bytes,
)
from p2pnet_tx.tasks import ReplayCache, canonical

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "HEARTBEAT_DOMAIN",
    "MAX_BODY_BYTES",
    "MAX_PEERS",
    "MODES",
    "REGISTER_DOMAIN",
    "TIMESTAMP_WINDOW",
    "HeartbeatReply",
    "HeartbeatRequest",
    "PeerEntry",
    "RegisterReply",
    "RegisterRequest",
    "ReplyError",
    "RequestError",
    "authority_reply",
    "build_heartbeat",
    "build_register",
    "error_body",
    "heartbeat_reply",
    "parse_authority_reply",
    "parse_heartbeat",
    "parse_heartbeat_reply",
    "parse_peer",
    "parse_peers",
    "parse_peers_reply",
    "parse_register",
    "parse_register_reply",
    "peers_reply",
    "read_body",
    "register_reply",
    "verify_heartbeat",
]

REGISTER_DOMAIN = b"p2pnet-bootstrap-register-v1\n"
"""What a register request's signature covers before the canonical fields."""

HEARTBEAT_DOMAIN = b"p2pnet-bootstrap-heartbeat-v1\n"
"""What a heartbeat request's signature covers before the canonical fields."""

MAX_BODY_BYTES = 16 * 1024
"""The largest request body the server reads (413 past it)."""

MAX_PEERS = 100
"""The most peers in one peer list."""

TIMESTAMP_WINDOW = 300.0
"""How far, in seconds, a request's timestamp may be from the server's clock."""

DEFAULT_HEARTBEAT_INTERVAL = 8.0
"""Seconds between heartbeats, as the .NET client sends them."""

MODES = ("trustless", "authority")
"""The server's modes."""

_REGISTER_KEYS = frozenset(
    {"identifier", "public_key", "port", "display_name", "timestamp", "nonce", "signature"}
)
_HEARTBEAT_KEYS = frozenset({"identifier", "timestamp", "nonce", "signature"})
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")


class RequestError(Exception):
    """
    A request the server refuses.

    @ivar status: the HTTP status to answer: 400 malformed, 401 bad signature, 404 not
        registered, 409 stale or replayed, 413 too large, 429 rate-limited.
    @ivar message: the text of the C{{"error": ...}} reply.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class ReplyError(ValueError):
    """A server's reply that does not have the shape the /v1 API gives it."""


def error_body(message: str) -> bytes:
    """Return the JSON body of an error reply: C{{"error": message}}."""
    return json.dumps({"error": message}).encode()


# -- Peers ---------------------------------------------------------------------------------------


@attrs.frozen
class PeerEntry:
    """
    One peer of a peer list: where a registered node listens.

    @ivar identifier: its identifier (derived from its key).
    @ivar ip: the source IP of its registration, in canonical text form.
    @ivar port: its TCP listen port.
    """

    identifier: str
    ip: str
    port: int

    def to_json(self) -> dict[str, Any]:
        """Return the PEER JSON object."""
        return {"identifier": self.identifier, "ip": self.ip, "port": self.port}


def parse_peer(obj: object) -> PeerEntry:
    """
    Read a PEER JSON object.

    @raise ValueError: if it is not an object with exactly a key identifier, an IP address and
        a port 1-65535.
    """
    if type(obj) is not dict or obj.keys() != {"identifier", "ip", "port"}:
        raise ValueError('a peer is {"identifier": str, "ip": str, "port": int}')
    identifier, ip, port = obj["identifier"], obj["ip"], obj["port"]
    if not is_key_identifier(identifier):
        raise ValueError("a peer's identifier must be derived from a key")
    if type(ip) is not str or len(ip) > 45:
        raise ValueError("a peer's ip must be an IP address")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"a peer's ip must be an IP address, not {ip[:45]!r}") from None
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError("a peer's port must be an integer 1-65535")
    return PeerEntry(identifier, str(address), port)


def parse_peers(obj: object, limit: int = MAX_PEERS) -> tuple[list[PeerEntry], int]:
    """
    Read a list of PEER objects, skipping the invalid ones.

    @return: the valid peers (the first of each identifier) and how many entries were skipped.
    @raise ValueError: if C{obj} is not a list of at most C{limit} entries.
    """
    if type(obj) is not list:
        raise ValueError("peers must be a list")
    if len(obj) > limit:
        raise ValueError(f"a peer list has at most {limit} entries, not {len(obj)}")
    peers: list[PeerEntry] = []
    seen: set[str] = set()
    skipped = 0
    for item in obj:
        try:
            peer = parse_peer(item)
        except ValueError:
            skipped += 1
            continue
        if peer.identifier in seen:
            skipped += 1
            continue
        seen.add(peer.identifier)
        peers.append(peer)
    return peers, skipped


# -- Requests ------------------------------------------------------------------------------------


@attrs.frozen
class RegisterRequest:
    """
    A verified C{POST /v1/register}.

    @ivar identifier: the node's identifier, derived from C{public_key}.
    @ivar public_key: the 32 raw bytes of the node's Ed25519 public key.
    @ivar port: the TCP port the node listens on.
    @ivar display_name: the name it chose, or C{None} (never trusted).
    @ivar timestamp: when it signed the request, in unix seconds.
    @ivar nonce: 32 hex characters, unique per request.
    """

    identifier: str
    public_key: bytes
    port: int
    display_name: str | None
    timestamp: float
    nonce: str


@attrs.frozen
class HeartbeatRequest:
    """
    A C{POST /v1/heartbeat} whose fields have the right types, not yet verified: the key to
    verify it with is the one C{identifier} registered (L{verify_heartbeat}).

    @ivar identifier: the node's identifier.
    @ivar timestamp: when it signed the request, in unix seconds.
    @ivar nonce: 32 hex characters, unique per request.
    @ivar signature: the 64 signature bytes.
    """

    identifier: str
    timestamp: float
    nonce: str
    signature: bytes


def _sign(key: Ed25519PrivateKey, domain: bytes, fields: dict[str, Any]) -> dict[str, Any]:
    signature = key.sign(domain + canonical(fields))
    return {**fields, "signature": base64.b64encode(signature).decode("ascii")}


def build_register(
    key: Ed25519PrivateKey,
    port: int,
    display_name: str | None = None,
    *,
    now: float,
    nonce: str | None = None,
) -> dict[str, Any]:
    """
    Return the signed body of a C{POST /v1/register}.

    @param key: the node's private key.
    @param port: the TCP port the node listens on.
    @param now: the current time, in unix seconds.
    @param nonce: 32 hex characters (a fresh random one by default).
    """
    raw = public_key_bytes(key)
    fields = {
        "identifier": identifier_for_public_key(raw),
        "public_key": base64.b64encode(raw).decode("ascii"),
        "port": port,
        "display_name": display_name,
        "timestamp": float(now),
        "nonce": secrets.token_hex(16) if nonce is None else nonce,
    }
    return _sign(key, REGISTER_DOMAIN, fields)


def build_heartbeat(
    key: Ed25519PrivateKey, *, now: float, nonce: str | None = None
) -> dict[str, Any]:
    """Return the signed body of a C{POST /v1/heartbeat} (see L{build_register})."""
    fields = {
        "identifier": identifier_for_public_key(key),
        "timestamp": float(now),
        "nonce": secrets.token_hex(16) if nonce is None else nonce,
    }
    return _sign(key, HEARTBEAT_DOMAIN, fields)


def read_body(raw: bytes) -> dict[str, Any]:
    """
    Parse a request body as a JSON object.

    @raise RequestError: 413 past L{MAX_BODY_BYTES}, 400 if it is not a JSON object.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        obj = loads(raw)
    except Invalid as e:
        raise RequestError(400, str(e)) from None
    if type(obj) is not dict:
        raise RequestError(400, f"the body must be a JSON object, not {type(obj).__name__}")
    return obj


def _object(body: bytes | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return read_body(bytes(body))
    if type(body) is not dict:
        raise RequestError(400, "the body must be a JSON object")
    return body


def _base64(text: object, size: int, name: str) -> bytes:
    if type(text) is not str or len(text) != 4 * ((size + 2) // 3):
        raise RequestError(400, f"{name} must be the base64 of {size} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise RequestError(400, f"{name} must be the base64 of {size} bytes")
    return raw


def _common(obj: dict[str, Any], keys: frozenset[str]) -> tuple[str, float, str, bytes]:
    if obj.keys() != keys:
        missing = sorted(keys - obj.keys())
        extra = sorted(obj.keys() - keys)[:5]
        raise RequestError(400, f"wrong fields: missing {missing}, unexpected {extra}")
    identifier, timestamp, nonce = obj["identifier"], obj["timestamp"], obj["nonce"]
    if not is_key_identifier(identifier):
        raise RequestError(400, "identifier must be an identifier derived from a key")
    if type(timestamp) not in (int, float) or not abs(timestamp) < 1e12:
        raise RequestError(400, "timestamp must be a number of unix seconds")
    if type(nonce) is not str or not _HEX32.match(nonce):
        raise RequestError(400, "nonce must be 32 lowercase hex characters")
    signature = _base64(obj["signature"], 64, "signature")
    return identifier, float(timestamp), nonce, signature


def _check_fresh(
    identifier: str, timestamp: float, nonce: str, now: float, replay: ReplayCache | None,
    not_before: float | None,
) -> None:
    if abs(timestamp - now) > TIMESTAMP_WINDOW:
        raise RequestError(409, f"timestamp is {timestamp - now:+.0f} s from the server's clock")
    # The nonces of the requests signed before a restart were forgotten with it.
    if not_before is not None and timestamp < not_before:
        raise RequestError(409, f"timestamp is {not_before - timestamp:.0f} s before the server "
                                f"started: sign the request again")
    if replay is not None:
        key = f"{identifier}:{nonce}"
        if replay.seen(key, now):
            raise RequestError(409, "nonce already used")
        if not replay.add(key, timestamp + TIMESTAMP_WINDOW, now):
            raise RequestError(429, "too many requests to remember their nonces")


def parse_register(
    body: bytes | Mapping[str, Any],
    *,
    now: float,
    replay: ReplayCache | None = None,
    not_before: float | None = None,
) -> RegisterRequest:
    """
    Check and verify a C{POST /v1/register} body.

    Checks, in order: the exact fields and their types, that the identifier derives from the
    public key, the signature, the timestamp (within L{TIMESTAMP_WINDOW} of C{now}) and the
    nonce (not in C{replay}; then remembered there).

    @param body: the raw body, or its parsed JSON object.
    @param now: the server's time, in unix seconds.
    @param replay: where used nonces are remembered (the server's); C{None} skips that check.
    @param not_before: refuse (409) a timestamp earlier than this: the time the server (and
        C{replay}) started, so that a request signed before a restart cannot be replayed
        after it; C{None} skips that check.
    @raise RequestError: 400, 401, 409, 413 or 429 (see L{RequestError}).
    """
    obj = _object(body)
    identifier, timestamp, nonce, signature = _common(obj, _REGISTER_KEYS)
    public_key = _base64(obj["public_key"], 32, "public_key")
    port, name = obj["port"], obj["display_name"]
    if type(port) is not int or not 1 <= port <= 65535:
        raise RequestError(400, "port must be an integer 1-65535")
    if name is not None and (type(name) is not str or len(name) > MAX_DISPLAY_NAME):
        raise RequestError(400, f"display_name must be null or at most {MAX_DISPLAY_NAME} chars")
    if identifier_for_public_key(public_key) != identifier:
        raise RequestError(400, "identifier does not derive from public_key")
    fields = {k: v for k, v in obj.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, REGISTER_DOMAIN + canonical(fields)
        )
    except (InvalidSignature, ValueError):
        raise RequestError(401, "bad signature") from None
    _check_fresh(identifier, timestamp, nonce, now, replay, not_before)
    return RegisterRequest(identifier, public_key, port, name, timestamp, nonce)


def parse_heartbeat(body: bytes | Mapping[str, Any]) -> HeartbeatRequest:
    """
    Check the fields of a C{POST /v1/heartbeat} body (not its signature: L{verify_heartbeat}).

    @raise RequestError: 400 or 413.
    """
    obj = _object(body)
    identifier, _, nonce, signature = _common(obj, _HEARTBEAT_KEYS)
    # The timestamp as written (int or float): the signature covers its canonical form.
    return HeartbeatRequest(identifier, obj["timestamp"], nonce, signature)


def verify_heartbeat(
    request: HeartbeatRequest,
    public_key: bytes,
    *,
    now: float,
    replay: ReplayCache | None = None,
    not_before: float | None = None,
) -> HeartbeatRequest:
    """
    Verify a heartbeat against the key its identifier registered, then its freshness.

    @param public_key: the 32 raw bytes the identifier registered with.
    @param not_before: as for L{parse_register}.
    @return: C{request}.
    @raise RequestError: 401 bad signature, 409 stale or replayed, 429 (see L{parse_register}).
    """
    fields = {
        "identifier": request.identifier,
        "timestamp": request.timestamp,
        "nonce": request.nonce,
    }
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            request.signature, HEARTBEAT_DOMAIN + canonical(fields)
        )
    except (InvalidSignature, ValueError):
        raise RequestError(401, "bad signature") from None
    _check_fresh(request.identifier, float(request.timestamp), request.nonce, now, replay,
                 not_before)
    return request


# -- Replies -------------------------------------------------------------------------------------


def _peers_json(peers: Iterable[PeerEntry]) -> list[dict[str, Any]]:
    return [peer.to_json() for peer in peers]


def register_reply(
    peers: Iterable[PeerEntry],
    *,
    heartbeat_interval: float,
    mode: str,
    authority_key: bytes | None,
    server_time: float,
) -> dict[str, Any]:
    """
    Return the JSON of a 200 reply to C{POST /v1/register}.

    @param authority_key: the 32 raw bytes of the authority's public key, in authority mode.
    """
    return {
        "peers": _peers_json(peers),
        "heartbeat_interval": heartbeat_interval,
        "mode": mode,
        "authority_key": None if authority_key is None else base64.b64encode(authority_key).decode(),
        "server_time": server_time,
    }


def heartbeat_reply(
    tasks: Iterable[Mapping[str, Any]], peers: Iterable[PeerEntry]
) -> dict[str, Any]:
    """Return the JSON of a 200 reply to C{POST /v1/heartbeat}: signed tasks, and peers."""
    return {"tasks": list(tasks), "peers": _peers_json(peers)}


def peers_reply(peers: Iterable[PeerEntry]) -> dict[str, Any]:
    """Return the JSON of a reply to C{GET /v1/peers}."""
    return {"peers": _peers_json(peers)}


def authority_reply(mode: str, public_key: bytes | None) -> dict[str, Any]:
    """Return the JSON of a reply to C{GET /v1/authority}."""
    encoded = None if public_key is None else base64.b64encode(public_key).decode()
    return {"mode": mode, "public_key": encoded}


@attrs.frozen
class RegisterReply:
    """
    A server's answer to a registration.

    @ivar peers: the valid peers it named.
    @ivar skipped: how many entries of its list were invalid.
    @ivar heartbeat_interval: seconds between heartbeats it asks for.
    @ivar mode: C{"trustless"} or C{"authority"}.
    @ivar authority_key: the 32 raw bytes of its authority key, or C{None}.
    @ivar server_time: its clock, in unix seconds.
    """

    peers: list[PeerEntry]
    skipped: int
    heartbeat_interval: float
    mode: str
    authority_key: bytes | None
    server_time: float


@attrs.frozen
class HeartbeatReply:
    """
    A server's answer to a heartbeat.

    @ivar tasks: the signed tasks, as received (the node verifies each one).
    @ivar peers: the valid peers it named.
    @ivar skipped: how many entries of its peer list were invalid.
    """

    tasks: list[Any]
    peers: list[PeerEntry]
    skipped: int


def _reply_object(obj: object, keys: frozenset[str]) -> dict[str, Any]:
    if type(obj) is not dict:
        raise ReplyError(f"the reply must be a JSON object, not {type(obj).__name__}")
    missing = keys - obj.keys()
    if missing:
        raise ReplyError(f"the reply lacks {sorted(missing)}")
    return obj


def _reply_peers(obj: dict[str, Any]) -> tuple[list[PeerEntry], int]:
    try:
        return parse_peers(obj["peers"])
    except ValueError as e:
        raise ReplyError(str(e)) from None


def _key_or_none(value: object) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True) if type(value) is str else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ReplyError("the authority key must be null or the base64 of 32 bytes")
    return raw


def parse_register_reply(obj: object) -> RegisterReply:
    """
    Read the JSON of a 200 reply to C{POST /v1/register}.

    @raise ReplyError: if it does not have that shape (unknown extra fields are ignored).
    """
    obj = _reply_object(
        obj, frozenset({"peers", "heartbeat_interval", "mode", "authority_key", "server_time"})
    )
    interval, mode, server_time = obj["heartbeat_interval"], obj["mode"], obj["server_time"]
    if type(interval) not in (int, float) or not 0 < interval <= 86400:
        raise ReplyError("heartbeat_interval must be a number of seconds, 0 to 86400")
    if mode not in MODES:
        raise ReplyError(f"mode must be one of {MODES}")
    if type(server_time) not in (int, float) or not abs(server_time) < 1e12:
        raise ReplyError("server_time must be a number of unix seconds")
    authority_key = _key_or_none(obj["authority_key"])
    if mode == "authority" and authority_key is None:
        raise ReplyError("an authority server must name its key")
    peers, skipped = _reply_peers(obj)
    return RegisterReply(peers, skipped, float(interval), mode, authority_key, float(server_time))


def parse_heartbeat_reply(obj: object) -> HeartbeatReply:
    """
    Read the JSON of a 200 reply to C{POST /v1/heartbeat}.

    @raise ReplyError: if it does not have that shape.
    """
    obj = _reply_object(obj, frozenset({"tasks", "peers"}))
    tasks = obj["tasks"]
    if type(tasks) is not list or len(tasks) > MAX_PEERS:
        raise ReplyError(f"tasks must be a list of at most {MAX_PEERS} entries")
    peers, skipped = _reply_peers(obj)
    return HeartbeatReply(tasks, peers, skipped)


def parse_peers_reply(obj: object) -> tuple[list[PeerEntry], int]:
    """
    Read the JSON of a reply to C{GET /v1/peers}.

    @return: the valid peers and how many entries were skipped.
    @raise ReplyError: if it does not have that shape.
    """
    return _reply_peers(_reply_object(obj, frozenset({"peers"})))


def parse_authority_reply(obj: object) -> tuple[str, bytes | None]:
    """
    Read the JSON of a reply to C{GET /v1/authority}.

    @return: the mode and the 32 raw bytes of the authority key (or C{None}).
    @raise ReplyError: if it does not have that shape.
    """
    obj = _reply_object(obj, frozenset({"mode", "public_key"}))
    if obj["mode"] not in MODES:
        raise ReplyError(f"mode must be one of {MODES}")
    return obj["mode"], _key_or_none(obj["public_key"])
