"""
Tests for L{p2pnet_tx.bootstrap.v1}: the signed requests, the replies and the peer entries of
the bootstrap /v1 API.
"""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.bootstrap.v1 import (
    HEARTBEAT_DOMAIN,
    MAX_BODY_BYTES,
    REGISTER_DOMAIN,
    PeerEntry,
    ReplyError,
    RequestError,
    authority_reply,
    build_heartbeat,
    build_register,
    error_body,
    heartbeat_reply,
    parse_authority_reply,
    parse_heartbeat,
    parse_heartbeat_reply,
    parse_peer,
    parse_peers,
    parse_peers_reply,
    parse_register,
    parse_register_reply,
    peers_reply,
    register_reply,
    verify_heartbeat,
)
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.tasks import ReplayCache, canonical

NOW = 1_700_000_000.0
KEY = Ed25519PrivateKey.generate()
IDENTIFIER = identifier_for_public_key(KEY)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=8),
    max_leaves=24,
)


def encoded(obj: object) -> bytes:
    return json.dumps(obj).encode()


def status_of(function, *args, **kwargs) -> int:
    try:
        function(*args, **kwargs)
    except RequestError as e:
        return e.status
    return 200


class RegisterTests(SynchronousTestCase):
    """A register request proves its key and is fresh."""

    def test_round_trip(self) -> None:
        """A built request parses back to its fields, from bytes or from an object."""
        body = build_register(KEY, 8001, "alice", now=NOW)
        for form in (encoded(body), body):
            request = parse_register(form, now=NOW + 1)
            self.assertEqual(request.identifier, IDENTIFIER)
            self.assertEqual(request.public_key, public_key_bytes(KEY))
            self.assertEqual((request.port, request.display_name), (8001, "alice"))
            self.assertEqual(request.timestamp, NOW)

    def test_signature_is_the_specs(self) -> None:
        """The signature covers REGISTER_DOMAIN + canonical(fields without signature)."""
        body = build_register(KEY, 8001, now=NOW)
        fields = {k: v for k, v in body.items() if k != "signature"}
        KEY.public_key().verify(
            base64.b64decode(body["signature"]), REGISTER_DOMAIN + canonical(fields)
        )

    def test_bad_signature_401(self) -> None:
        """Any field changed after signing, or another key's signature: 401."""
        body = build_register(KEY, 8001, now=NOW)
        self.assertEqual(status_of(parse_register, {**body, "port": 8002}, now=NOW), 401)
        self.assertEqual(status_of(parse_register, {**body, "display_name": "x"}, now=NOW), 401)
        other = build_register(Ed25519PrivateKey.generate(), 8001, now=NOW)
        forged = {**body, "signature": other["signature"]}
        self.assertEqual(status_of(parse_register, forged, now=NOW), 401)

    def test_identifier_not_derived_400(self) -> None:
        """An identifier that does not derive from the public key is refused."""
        other = identifier_for_public_key(Ed25519PrivateKey.generate())
        body = {**build_register(KEY, 8001, now=NOW), "identifier": other}
        e = self.assertRaises(RequestError, parse_register, body, now=NOW)
        self.assertEqual(e.status, 400)
        self.assertIn("derive", e.message)

    def test_stale_409(self) -> None:
        """More than 300 s from the server's clock, either way: 409."""
        body = build_register(KEY, 8001, now=NOW)
        self.assertEqual(status_of(parse_register, body, now=NOW + 301), 409)
        self.assertEqual(status_of(parse_register, body, now=NOW - 301), 409)
        self.assertEqual(status_of(parse_register, body, now=NOW + 300), 200)

    def test_replayed_409(self) -> None:
        """The same nonce twice, with a replay cache: the second is 409."""
        replay = ReplayCache()
        body = build_register(KEY, 8001, now=NOW)
        parse_register(body, now=NOW, replay=replay)
        e = self.assertRaises(RequestError, parse_register, body, now=NOW + 5, replay=replay)
        self.assertEqual((e.status, e.message), (409, "nonce already used"))
        fresh = build_register(KEY, 8001, now=NOW + 5)
        self.assertEqual(status_of(parse_register, fresh, now=NOW + 5, replay=replay), 200)

    def test_replay_cache_full_429(self) -> None:
        """A full nonce cache refuses with 429 rather than forget a nonce."""
        replay = ReplayCache(max_entries=1)
        parse_register(build_register(KEY, 8001, now=NOW), now=NOW, replay=replay)
        later = build_register(KEY, 8001, now=NOW)
        self.assertEqual(status_of(parse_register, later, now=NOW, replay=replay), 429)

    def test_wrong_types_400(self) -> None:
        """Each field of the wrong type or range, missing or extra fields: 400."""
        body = build_register(KEY, 8001, now=NOW)
        changes = [
            {"port": 0}, {"port": 65536}, {"port": "8001"}, {"port": True}, {"port": 80.0},
            {"display_name": 5}, {"display_name": "x" * 65},
            {"timestamp": "now"}, {"timestamp": True}, {"timestamp": None},
            {"nonce": "ABCDEF" * 6}, {"nonce": "00"}, {"nonce": 1},
            {"identifier": "x"}, {"identifier": None},
            {"public_key": "abc"}, {"public_key": base64.b64encode(b"x" * 31).decode()},
            {"signature": "!" * 88}, {"signature": None},
            {"extra": 1},
        ]
        for change in changes:
            self.assertEqual(status_of(parse_register, {**body, **change}, now=NOW), 400, change)
        for name in body:
            less = {k: v for k, v in body.items() if k != name}
            self.assertEqual(status_of(parse_register, less, now=NOW), 400, name)

    def test_body_limits(self) -> None:
        """Over 16 KiB: 413; not JSON or not an object: 400."""
        self.assertEqual(status_of(parse_register, b" " * (MAX_BODY_BYTES + 1), now=NOW), 413)
        for raw in (b"", b"{", b"[]", b"null", b"NaN", b'"x"', b"\xff"):
            self.assertEqual(status_of(parse_register, raw, now=NOW), 400, raw)

    @given(json_values)
    def test_arbitrary_json_is_400(self, value: object) -> None:
        """Any JSON value is refused with RequestError 400, nothing else."""
        self.assertEqual(status_of(parse_register, encoded(value), now=NOW), 400)
        self.assertEqual(status_of(parse_heartbeat, encoded(value)), 400)

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes(self, raw: bytes) -> None:
        """Any bytes: RequestError, never another exception."""
        self.assertEqual(status_of(parse_register, raw, now=NOW), 400)


class HeartbeatTests(SynchronousTestCase):
    """A heartbeat is verified with the registered key."""

    def test_round_trip(self) -> None:
        """Built, parsed, verified."""
        body = build_heartbeat(KEY, now=NOW)
        request = parse_heartbeat(encoded(body))
        self.assertEqual(request.identifier, IDENTIFIER)
        self.assertIs(verify_heartbeat(request, public_key_bytes(KEY), now=NOW), request)

    def test_signature_is_the_specs(self) -> None:
        """The signature covers HEARTBEAT_DOMAIN + canonical(fields)."""
        body = build_heartbeat(KEY, now=NOW)
        fields = {k: v for k, v in body.items() if k != "signature"}
        KEY.public_key().verify(
            base64.b64decode(body["signature"]), HEARTBEAT_DOMAIN + canonical(fields)
        )

    def test_integer_timestamp(self) -> None:
        """A timestamp written as an integer verifies as the signer wrote it."""
        fields = {"identifier": IDENTIFIER, "timestamp": int(NOW), "nonce": "0" * 32}
        signature = KEY.sign(HEARTBEAT_DOMAIN + canonical(fields))
        body = {**fields, "signature": base64.b64encode(signature).decode()}
        verify_heartbeat(parse_heartbeat(encoded(body)), public_key_bytes(KEY), now=NOW)

    def test_other_key_401(self) -> None:
        """Verified against another registered key: 401."""
        request = parse_heartbeat(build_heartbeat(KEY, now=NOW))
        other = public_key_bytes(Ed25519PrivateKey.generate())
        self.assertEqual(status_of(verify_heartbeat, request, other, now=NOW), 401)

    def test_register_signature_is_not_a_heartbeat(self) -> None:
        """The domains differ, so a signature of one kind never verifies as the other."""
        fields = {"identifier": IDENTIFIER, "timestamp": NOW, "nonce": "1" * 32}
        signature = KEY.sign(REGISTER_DOMAIN + canonical(fields))
        body = {**fields, "signature": base64.b64encode(signature).decode()}
        self.assertEqual(
            status_of(verify_heartbeat, parse_heartbeat(body), public_key_bytes(KEY), now=NOW),
            401,
        )

    def test_stale_and_replayed_409(self) -> None:
        """Out of the window, or a nonce used before: 409."""
        replay = ReplayCache()
        request = parse_heartbeat(build_heartbeat(KEY, now=NOW))
        key = public_key_bytes(KEY)
        self.assertEqual(status_of(verify_heartbeat, request, key, now=NOW + 400), 409)
        verify_heartbeat(request, key, now=NOW, replay=replay)
        self.assertEqual(status_of(verify_heartbeat, request, key, now=NOW, replay=replay), 409)

    def test_wrong_fields_400(self) -> None:
        """Register fields in a heartbeat, or missing ones: 400."""
        self.assertEqual(status_of(parse_heartbeat, build_register(KEY, 1, now=NOW)), 400)
        body = build_heartbeat(KEY, now=NOW)
        del body["nonce"]
        self.assertEqual(status_of(parse_heartbeat, body), 400)


class PeerTests(SynchronousTestCase):
    """PEER entries are exact; invalid ones in a list are skipped and counted."""

    def test_parse(self) -> None:
        """A valid entry parses; the IP is normalised."""
        peer = parse_peer({"identifier": IDENTIFIER, "ip": "::FFFF:1.2.3.4", "port": 1})
        self.assertEqual(peer, PeerEntry(IDENTIFIER, "::ffff:102:304", 1))
        self.assertEqual(parse_peer(peer.to_json()), peer)

    def test_invalid(self) -> None:
        """Wrong identifier, IP, port, type or fields: ValueError."""
        good = {"identifier": IDENTIFIER, "ip": "127.0.0.1", "port": 80}
        for change in (
            {"identifier": "x"}, {"ip": "999.1.1.1"}, {"ip": "localhost"}, {"ip": 1},
            {"port": 0}, {"port": 70000}, {"port": "80"}, {"port": True}, {"more": 1},
        ):
            self.assertRaises(ValueError, parse_peer, {**good, **change})
        self.assertRaises(ValueError, parse_peer, [])

    def test_list(self) -> None:
        """Invalid and duplicate entries are skipped and counted; over 100 is refused."""
        good = {"identifier": IDENTIFIER, "ip": "127.0.0.1", "port": 80}
        peers, skipped = parse_peers([good, {"ip": 1}, good, "x"])
        self.assertEqual((len(peers), skipped), (1, 3))
        self.assertRaises(ValueError, parse_peers, [good] * 101)
        self.assertRaises(ValueError, parse_peers, {"peers": []})

    @given(json_values)
    def test_arbitrary(self, value: object) -> None:
        """Any JSON value: a ValueError or a list parse, never another exception."""
        try:
            peers, skipped = parse_peers(value)
        except ValueError:
            return
        self.assertEqual(len(peers) + skipped, len(value))


class ReplyTests(SynchronousTestCase):
    """Each reply the server builds, the client parses back."""

    peer = PeerEntry(IDENTIFIER, "127.0.0.2", 8001)

    def test_register(self) -> None:
        """The register reply, in both modes."""
        authority = public_key_bytes(Ed25519PrivateKey.generate())
        obj = json.loads(json.dumps(register_reply(
            [self.peer], heartbeat_interval=2, mode="authority", authority_key=authority,
            server_time=NOW,
        )))
        reply = parse_register_reply(obj)
        self.assertEqual(reply.peers, [self.peer])
        self.assertEqual((reply.heartbeat_interval, reply.mode), (2.0, "authority"))
        self.assertEqual((reply.authority_key, reply.server_time), (authority, NOW))
        trustless = register_reply([], heartbeat_interval=8, mode="trustless",
                                   authority_key=None, server_time=NOW)
        self.assertIsNone(parse_register_reply(trustless).authority_key)

    def test_register_invalid(self) -> None:
        """Wrong shapes are ReplyErrors."""
        good = register_reply([self.peer], heartbeat_interval=8, mode="trustless",
                              authority_key=None, server_time=NOW)
        for change in (
            {"heartbeat_interval": 0}, {"heartbeat_interval": "8"}, {"mode": "x"},
            {"mode": "authority"}, {"authority_key": "abc"}, {"server_time": None},
            {"peers": None}, {"peers": [self.peer.to_json()] * 101},
        ):
            self.assertRaises(ReplyError, parse_register_reply, {**good, **change})
        self.assertRaises(ReplyError, parse_register_reply, [])
        self.assertRaises(ReplyError, parse_register_reply, {"peers": []})

    def test_heartbeat(self) -> None:
        """The heartbeat reply carries tasks as received, and peers."""
        reply = parse_heartbeat_reply(heartbeat_reply([{"task": 1}], [self.peer]))
        self.assertEqual((reply.tasks, reply.peers, reply.skipped), ([{"task": 1}], [self.peer], 0))
        self.assertRaises(ReplyError, parse_heartbeat_reply, {"tasks": {}, "peers": []})
        self.assertRaises(ReplyError, parse_heartbeat_reply, {"tasks": [1] * 101, "peers": []})

    def test_peers_and_authority(self) -> None:
        """GET /v1/peers and /v1/authority replies."""
        self.assertEqual(parse_peers_reply(peers_reply([self.peer])), ([self.peer], 0))
        key = public_key_bytes(KEY)
        self.assertEqual(parse_authority_reply(authority_reply("authority", key)),
                         ("authority", key))
        self.assertEqual(parse_authority_reply(authority_reply("trustless", None)),
                         ("trustless", None))
        self.assertRaises(ReplyError, parse_authority_reply, {"mode": "x", "public_key": None})

    def test_error_body(self) -> None:
        """Errors are {"error": message}."""
        self.assertEqual(json.loads(error_body("not registered")), {"error": "not registered"})

    @given(json_values)
    def test_arbitrary(self, value: object) -> None:
        """Any JSON value: parsed or a ReplyError, never another exception."""
        for parse in (parse_register_reply, parse_heartbeat_reply, parse_peers_reply,
                      parse_authority_reply):
            try:
                parse(value)
            except ReplyError:
                pass
