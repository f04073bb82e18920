"""
The bootstrap server's C{/v1} API, driven through its resources with DummyRequests from
chosen source addresses, on a MemoryReactorClock, with a real SQLite store whose statements run
at once (L{tests.bootstrap_support}).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pnet_tx.bootstrap.limits import BootstrapLimits
from p2pnet_tx.bootstrap.v1 import (
    build_heartbeat,
    build_register,
    parse_heartbeat_reply,
    parse_register_reply,
)
from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.tasks import ReplayCache, check_task, decode_public_key, verify_task

from .bootstrap_support import ADMIN_TOKEN, call, make_server


def register(root: Any, reactor: Any, key: Ed25519PrivateKey, ip: str, port: int = 8001,
             name: str | None = None) -> Any:
    return call(root, "POST", "/v1/register",
                build_register(key, port, name, now=reactor.seconds()), ip=ip)


@pytest.fixture
def served(tmp_path: Path) -> Any:
    return make_server(tmp_path)


def test_register_records_the_source_address_and_answers_the_spec(served: Any) -> None:
    """A registration is recorded at its source IP (the body names none) and the port it
    gives; the reply parses with the shared reply parser, and never lists the caller."""
    reactor, server, root = served
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    first = register(root, reactor, alice, "192.0.2.10", 8001, "alice")
    assert first.code == 200, first.body
    reply = parse_register_reply(first.json())
    assert reply.peers == [] and reply.mode == "trustless" and reply.authority_key is None
    assert reply.heartbeat_interval == 8.0 and reply.server_time == reactor.seconds()
    second = parse_register_reply(register(root, reactor, bob, "::ffff:198.51.100.7", 9001).json())
    assert [(p.identifier, p.ip, p.port) for p in second.peers] == [
        (identifier_for_public_key(alice), "192.0.2.10", 8001)]
    record = server.registry.peers[identifier_for_public_key(bob)]
    assert (record.ip, record.port, record.api) == ("198.51.100.7", 9001, "v1")
    assert server.registry.peers[identifier_for_public_key(alice)].display_name == "alice"


def test_heartbeat_delivers_and_removes_queued_tasks(tmp_path: Path) -> None:
    """In authority mode, blocking a peer queues a signed BlockAndRemovePeer task (target
    "*") for every other peer; each gets it on its next heartbeat, once, and it verifies
    against the key the server announced."""
    reactor, server, root = make_server(tmp_path, mode="authority")
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    for number, key in enumerate(keys):
        reply = register(root, reactor, key, f"10.1.{number}.1")
    authority = decode_public_key(reply.json()["authority_key"])
    victim = identifier_for_public_key(keys[0])
    login = call(root, "POST", "/session", {"token": ADMIN_TOKEN})
    blocked = call(root, "POST", "/api/block", {"identifier": victim},
                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert login.code == 200 and blocked.code == 200, blocked.body
    reactor.advance(8)
    for key in keys[1:]:
        beat = call(root, "POST", "/v1/heartbeat", build_heartbeat(key, now=reactor.seconds()),
                    ip=server.registry.peers[identifier_for_public_key(key)].ip)
        assert beat.code == 200, beat.body
        [signed] = parse_heartbeat_reply(beat.json()).tasks
        task = verify_task(signed, authority)
        check_task(task, now=reactor.seconds(), identifier=identifier_for_public_key(key),
                   replay=ReplayCache())
        assert (int(task.task_type), task.target) == (0, "*")
        assert task.data == {"Identifier": victim}
        again = call(root, "POST", "/v1/heartbeat", build_heartbeat(key, now=reactor.seconds()),
                     ip="10.9.9.9")
        assert again.json()["tasks"] == []
    assert server.registry.queued() == []


def test_peer_lists_are_random_samples_capped_at_100(served: Any) -> None:
    """With 150 peers registered, every list holds at most 100 distinct live peers, never the
    whole table, and two lists differ (a sample, not the table's order)."""
    reactor, server, root = served
    server.registry.limits = BootstrapLimits(max_per_group=1000)
    keys = [Ed25519PrivateKey.generate() for _ in range(150)]
    for number, key in enumerate(keys):
        assert register(root, reactor, key, f"10.2.{number // 200}.{number % 200 + 1}").code == 200
    lists = [call(root, "GET", "/v1/peers").json()["peers"] for _ in range(3)]
    for peers in lists:
        identifiers = [peer["identifier"] for peer in peers]
        assert len(identifiers) == 100 == len(set(identifiers))
    assert lists[0] != lists[1] or lists[1] != lists[2]
    assert len(call(root, "GET", "/v1/peers?limit=7").json()["peers"]) == 7
    for bad in ("0", "101", "-1", "x", "1e3", "10&limit=20"):
        answer = call(root, "GET", f"/v1/peers?limit={bad}")
        assert answer.code == 400 and "limit" in answer.json()["error"], bad


def test_authority_endpoint(tmp_path: Path) -> None:
    """GET /v1/authority names the mode and the key (null in trustless mode)."""
    key = Ed25519PrivateKey.generate()
    _, _, root = make_server(tmp_path, mode="authority", key=key)
    raw = key.public_key().public_bytes_raw()
    assert call(root, "GET", "/v1/authority").json() == {
        "mode": "authority", "public_key": base64.b64encode(raw).decode()}
    (tmp_path / "t").mkdir()
    _, _, plain = make_server(tmp_path / "t")
    assert call(plain, "GET", "/v1/authority").json() == {"mode": "trustless", "public_key": None}


def test_unknown_or_expired_peers_get_404_and_register_again(served: Any) -> None:
    """A heartbeat from an identifier that is not registered, or whose registration expired
    after the TTL, is a 404 "not registered"; registering again works."""
    reactor, server, root = served
    key = Ed25519PrivateKey.generate()
    beat = call(root, "POST", "/v1/heartbeat", build_heartbeat(key, now=reactor.seconds()))
    assert (beat.code, beat.json()) == (404, {"error": "not registered"})
    assert register(root, reactor, key, "10.3.0.1").code == 200
    reactor.advance(server.registry.ttl)
    assert server.registry.peers == {}, "the expiry timer forgot it"
    beat = call(root, "POST", "/v1/heartbeat", build_heartbeat(key, now=reactor.seconds()))
    assert beat.code == 404
    assert register(root, reactor, key, "10.3.0.1").code == 200


def test_replayed_stale_and_forged_requests_are_refused(served: Any) -> None:
    """A replayed body is 409, a body 301 s old is 409, a changed field breaks the signature
    (401), a heartbeat signed by another key is 401; none of them changes the table."""
    reactor, server, root = served
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    body = build_register(key, 8001, now=reactor.seconds())
    assert call(root, "POST", "/v1/register", body).code == 200
    replayed = call(root, "POST", "/v1/register", body, ip="203.0.113.66")
    assert replayed.code == 409 and "nonce" in replayed.json()["error"]
    assert server.registry.peers[identifier_for_public_key(key)].ip == "10.0.0.1"
    stale = build_register(key, 8001, now=reactor.seconds() - 301)
    assert call(root, "POST", "/v1/register", stale).code == 409
    moved = dict(build_register(key, 8001, now=reactor.seconds()), port=9999)
    assert call(root, "POST", "/v1/register", moved).code == 401
    forged = build_heartbeat(other, now=reactor.seconds())
    forged["identifier"] = identifier_for_public_key(key)
    assert call(root, "POST", "/v1/heartbeat", forged).code == 401
    assert server.registry.peers[identifier_for_public_key(key)].port == 8001


def test_requests_signed_before_a_restart_are_refused_after_it(tmp_path: Path) -> None:
    """The nonce cache is in memory: a restarted server forgets it.  A register and a
    heartbeat signed before the restart, replayed 10 s after it (well inside the 300 s
    timestamp window) from another address, are refused 409 and change nothing; requests
    signed after the restart are served."""
    reactor, server, root = make_server(tmp_path)
    key = Ed25519PrivateKey.generate()
    identifier = identifier_for_public_key(key)
    body = build_register(key, 8001, now=reactor.seconds())
    assert call(root, "POST", "/v1/register", body, ip="192.0.2.10").code == 200
    reactor.advance(8)
    beat = build_heartbeat(key, now=reactor.seconds())
    assert call(root, "POST", "/v1/heartbeat", beat, ip="192.0.2.10").code == 200
    server.stop()

    reactor.advance(2)
    _, again, root2 = make_server(tmp_path, reactor=reactor)
    assert root2.v1.not_before == reactor.seconds()
    reactor.advance(10)
    record = again.registry.peers[identifier]
    before = (record.ip, record.port, record.last_seen)
    replayed = call(root2, "POST", "/v1/register", body, ip="203.0.113.66")
    assert replayed.code == 409, replayed.body
    assert "before the server started" in replayed.json()["error"]
    replayed_beat = call(root2, "POST", "/v1/heartbeat", beat, ip="203.0.113.66")
    assert replayed_beat.code == 409, replayed_beat.body
    record = again.registry.peers[identifier]
    assert (record.ip, record.port, record.last_seen) == before
    assert again.counters["v1.refused.409"] == 2
    fresh = call(root2, "POST", "/v1/heartbeat", build_heartbeat(key, now=reactor.seconds()),
                 ip="192.0.2.10")
    assert fresh.code == 200, fresh.body
    moved = call(root2, "POST", "/v1/register", build_register(key, 9001, now=reactor.seconds()),
                 ip="192.0.2.11")
    assert moved.code == 200, moved.body
    assert again.registry.peers[identifier].ip == "192.0.2.11"


def _hostile_bodies(reactor: Any) -> list[tuple[str, Any]]:
    key = Ed25519PrivateKey.generate()
    good = build_register(key, 8001, now=reactor.seconds())
    cases: list[tuple[str, Any]] = [
        ("not JSON", b"{"), ("NaN", b'{"port": NaN}'), ("a list", b"[]"), ("a string", b'"x"'),
        ("empty", b""), ("BOM", b"\xef\xbb\xbf{}"), ("lone surrogate", b'{"x": "\\ud800"}'),
        ("deep", b"[" * 5000 + b"]" * 5000),
    ]
    for field, value in (("port", "8001"), ("port", 0), ("port", 70000), ("port", True),
                         ("port", 8001.0), ("timestamp", "now"), ("timestamp", float("inf")),
                         ("nonce", "xyz"), ("nonce", "A" * 32), ("public_key", "!!"),
                         ("public_key", base64.b64encode(b"k" * 31).decode()),
                         ("signature", "not base64"), ("display_name", "n" * 65),
                         ("display_name", 5), ("identifier", 7), ("identifier", "bciq")):
        body = copy.deepcopy(good)
        body[field] = value
        cases.append((f"{field}={value!r}"[:40], json.dumps(body).encode()))
    missing = dict(good)
    del missing["nonce"]
    cases.append(("missing nonce", missing))
    cases.append(("extra field", dict(good, ip="6.6.6.6")))
    other = build_register(Ed25519PrivateKey.generate(), 8001, now=reactor.seconds())
    cases.append(("someone else's key", dict(good, public_key=other["public_key"])))
    return cases


def test_hostile_register_bodies_are_refused_with_a_reason(served: Any) -> None:
    """Malformed JSON, wrong types, missing or extra fields, bad base64, a key that is not
    the identifier's: each is a 4xx with a JSON error, and nothing is registered."""
    reactor, server, root = served
    for name, body in _hostile_bodies(reactor):
        answer = call(root, "POST", "/v1/register", body)
        assert answer.code in (400, 401), (name, answer.code, answer.body)
        assert isinstance(answer.json()["error"], str), name
    assert server.registry.peers == {}


def test_hostile_heartbeat_bodies_and_methods(served: Any) -> None:
    """Heartbeats with bad fields are 400s, wrong methods 405 with Allow, unknown paths 404;
    a body over 16 KiB is 413."""
    reactor, _, root = served
    key = Ed25519PrivateKey.generate()
    register(root, reactor, key, "10.4.0.1")
    good = build_heartbeat(key, now=reactor.seconds())
    for field, value in (("timestamp", None), ("nonce", 5), ("signature", "AA=="),
                         ("identifier", ["x"])):
        answer = call(root, "POST", "/v1/heartbeat", dict(good, **{field: value}))
        assert answer.code == 400, (field, answer.body)
    assert call(root, "POST", "/v1/heartbeat", b"\x00\xff").code == 400
    assert call(root, "POST", "/v1/heartbeat", b" " * (16 * 1024 + 1)).code == 413
    wrong = call(root, "GET", "/v1/register")
    assert wrong.code == 405 and wrong.header("allow") == "POST"
    assert call(root, "POST", "/v1/peers").code == 405
    assert call(root, "GET", "/v1/nothing").code == 404


def test_registrations_per_network_are_capped(tmp_path: Path) -> None:
    """At most max_per_group live registrations from one IPv4 /24 or IPv6 /64 (429); another
    network is not affected, and registering again from the same network is no new one."""
    reactor, server, root = make_server(tmp_path, limits=BootstrapLimits(max_per_group=2))
    keys = [Ed25519PrivateKey.generate() for _ in range(6)]
    assert register(root, reactor, keys[0], "10.5.5.1").code == 200
    assert register(root, reactor, keys[1], "10.5.5.200").code == 200
    full = register(root, reactor, keys[2], "10.5.5.3")
    assert full.code == 429 and "10.5.5.0/24" in full.json()["error"]
    assert register(root, reactor, keys[0], "10.5.5.9").code == 200, "same peer again"
    assert register(root, reactor, keys[2], "10.5.6.3").code == 200
    assert register(root, reactor, keys[3], "2001:db8:1:2::1").code == 200
    assert register(root, reactor, keys[4], "2001:db8:1:2:ffff::9").code == 200
    assert register(root, reactor, keys[5], "2001:db8:1:2:abcd::1").code == 429
    assert register(root, reactor, keys[5], "2001:db8:1:3::1").code == 200
    assert len(server.registry.peers) == 6


def test_503_until_the_store_is_read(tmp_path: Path) -> None:
    """Before the stored state is read back, every request is 503 with Retry-After."""
    _, server, root = make_server(tmp_path)
    server.ready = False
    answer = call(root, "GET", "/v1/peers")
    assert answer.code == 503 and answer.header("retry-after") == "1"
