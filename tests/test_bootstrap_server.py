"""
The bootstrap server's logic across time and restarts: expiry on one timer at the exact TTL,
state read back from the same SQLite file by a new server, bounded task queues; and the
twistd options and plugin.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.python import usage

from p2pnet_tx.bootstrap.limits import BootstrapLimits
from p2pnet_tx.bootstrap.service import BootstrapService
from p2pnet_tx.bootstrap.tap import Options, makeService
from p2pnet_tx.bootstrap.v1 import build_heartbeat, build_register
from p2pnet_tx.identity import identifier_for_public_key

from .bootstrap_support import ADMIN_TOKEN, call, make_server


def test_expiry_at_the_ttl_on_one_timer(tmp_path: Path) -> None:
    """A peer is forgotten exactly ttl seconds after its last heartbeat, not before; a
    heartbeat moves its deadline; one timer is pending at a time; nothing is left when none
    is registered."""
    reactor, server, root = make_server(tmp_path, ttl=100.0)
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    call(root, "POST", "/v1/register", build_register(a, 1, now=reactor.seconds()), ip="10.0.0.1")
    reactor.advance(30)
    call(root, "POST", "/v1/register", build_register(b, 2, now=reactor.seconds()), ip="10.0.1.1")
    assert len(reactor.getDelayedCalls()) == 1
    reactor.advance(60)
    assert call(root, "POST", "/v1/heartbeat", build_heartbeat(a, now=reactor.seconds()),
                ip="10.0.0.1").code == 200
    reactor.advance(39.9)
    assert len(server.registry.peers) == 2
    reactor.advance(0.1)  # b: 100 s after it registered
    assert list(server.registry.peers) == [identifier_for_public_key(a)]
    reactor.advance(59.9)
    assert len(server.registry.peers) == 1
    reactor.advance(0.1)  # a: 100 s after its heartbeat
    assert server.registry.peers == {} and reactor.getDelayedCalls() == []
    assert server.counters["expired"] == 2


def test_a_restarted_server_loses_nothing(tmp_path: Path) -> None:
    """Peers (with their last heartbeat), queued tasks, blocks and the audit log written by
    one server are there for a new server on the same file; the peer can heartbeat at once
    and gets its task."""
    reactor, server, root = make_server(tmp_path, mode="authority")
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    for number, key in enumerate(keys):
        call(root, "POST", "/v1/register", build_register(key, 8000 + number,
             now=reactor.seconds()), ip=f"10.30.{number}.1")
    victim = identifier_for_public_key(keys[2])
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert call(root, "POST", "/api/block", {"identifier": victim}, headers=bearer).code == 200
    reactor.advance(100)
    call(root, "POST", "/v1/heartbeat", build_heartbeat(keys[1], now=reactor.seconds()),
         ip="10.30.1.1")  # takes its task; keys[0]'s stays queued
    before = server.status()
    server.stop()

    reactor.advance(5)
    _, again, root2 = make_server(tmp_path, mode="authority", reactor=reactor,
                                  key=None)
    after = again.status()
    for name in ("peers", "tasks", "blocked", "audit"):
        assert after[name] == before[name], name
    assert after["peers"][0]["last_seen"] == reactor.seconds() - 5
    beat = call(root2, "POST", "/v1/heartbeat", build_heartbeat(keys[0], now=reactor.seconds()),
                ip="10.30.0.1")
    assert beat.code == 200 and beat.json()["tasks"][0]["task"]["data"]["Identifier"] == victim
    assert call(root2, "POST", "/v1/register", build_register(keys[2], 1,
                now=reactor.seconds()), ip="10.31.0.1").code == 403


def test_task_queues_are_bounded(tmp_path: Path) -> None:
    """Past max_tasks_per_peer, the oldest task of a peer's queue is dropped and counted."""
    reactor, server, root = make_server(tmp_path, mode="authority",
                                        limits=BootstrapLimits(max_tasks_per_peer=2))
    keeper = Ed25519PrivateKey.generate()
    call(root, "POST", "/v1/register", build_register(keeper, 1, now=reactor.seconds()),
         ip="10.40.0.1")
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for number in range(4):
        key = Ed25519PrivateKey.generate()
        call(root, "POST", "/v1/register", build_register(key, 1, now=reactor.seconds()),
             ip=f"10.41.{number}.1")
        call(root, "POST", "/api/disconnect", {"identifier": identifier_for_public_key(key)},
             headers=bearer)
    assert len(server.registry.queued()) == 2
    assert server.counters["tasks_dropped"] == 2


def test_options(tmp_path: Path) -> None:
    """Defaults as the issue asks; bad values are usage errors; the data directory gets the
    key and the token, mode 0600; makeService builds the service."""
    options = Options()
    options.parseOptions(["--data-dir", str(tmp_path / "d")])
    assert (options["listen"], options["mode"], options["peer-ttl"]) == ("tcp:5070", "trustless",
                                                                          1800.0)
    for name in ("admin.token", "authority.key"):
        assert stat.S_IMODE(os.stat(tmp_path / "d" / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o700
    token = (tmp_path / "d" / "admin.token").read_text().strip()
    assert options["admin-token"] == token and len(token) >= 40
    for bad in (["--mode", "chaos"], ["--peer-ttl", "1"], ["--listen", "nonsense:1"],
                ["--heartbeat-interval", "x"], ["--max-per-network", "0"],
                ["--data-dir", str(tmp_path / "d" / "admin.token")]):
        with pytest.raises(usage.UsageError):
            Options().parseOptions(["--data-dir", str(tmp_path / "e"), *bad])
    authority = Options()
    authority.parseOptions(["--data-dir", str(tmp_path / "d"), "--mode", "authority",
                            "--listen", "tcp:0:interface=127.0.0.1", "--heartbeat-interval", "1"])
    assert authority["authority"].signs and authority["admin-token"] == token
    service = makeService(authority)
    assert isinstance(service, BootstrapService) and service.server.heartbeat_interval == 1.0
    service.resource.server.store.close()


def test_twistd_lists_the_plugin() -> None:
    """twistd knows p2pnet-bootstrap (next to p2pnet), and a bad option is one line."""
    run = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    listing = subprocess.run([*run, "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert "p2pnet-bootstrap" in listing.stdout and "p2pnet " in listing.stdout
    bad = subprocess.run([*run, "-n", "p2pnet-bootstrap", "--mode", "chaos"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-2:] == [
        "twistd p2pnet-bootstrap: --mode must be trustless or authority, not 'chaos'",
        "Run 'twistd p2pnet-bootstrap --help' for usage."]
