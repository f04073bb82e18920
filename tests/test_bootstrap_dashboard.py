"""
The bootstrap server's dashboard API: login with the admin token, the session cookie's flags,
CSRF on every change, block and disconnect, the audit log, and P2PNet's own dashboard
endpoints (/api/peers, /api/managepeer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pnet_tx.bootstrap.dashboard import COOKIE_NAME
from p2pnet_tx.bootstrap.v1 import build_heartbeat, build_register
from p2pnet_tx.identity import identifier_for_public_key

from .bootstrap_support import ADMIN_TOKEN, call, make_server


class Browser:
    """A logged-in browser: its cookie and CSRF token."""

    def __init__(self, root: Any) -> None:
        self.root = root
        answer = call(root, "POST", "/session", {"token": ADMIN_TOKEN}, ip="192.0.2.1")
        assert answer.code == 200, answer.body
        [cookie] = answer.cookies()
        self.cookie_header = cookie
        name, _, rest = cookie.partition(b"=")
        self.cookie = {name: rest.split(b";")[0]}
        self.csrf = answer.json()["csrf"]

    def call(self, method: str, path: str, body: Any = None, csrf: bool = True) -> Any:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return call(self.root, method, path, body, ip="192.0.2.1", headers=headers,
                    cookies=self.cookie)


def registered(root: Any, reactor: Any, count: int) -> list[Ed25519PrivateKey]:
    keys = [Ed25519PrivateKey.generate() for _ in range(count)]
    for number, key in enumerate(keys):
        assert call(root, "POST", "/v1/register", build_register(key, 8001, f"node{number}",
                    now=reactor.seconds()), ip=f"10.20.{number}.1").code == 200
    return keys


def test_login_cookie_and_csrf(tmp_path: Path) -> None:
    """A wrong token is 401 and counted; the right one gives an HttpOnly, SameSite=Strict
    cookie; reading needs the session, changing needs its CSRF token too; logging out ends
    it; the page's files carry a strict CSP."""
    _, server, root = make_server(tmp_path)
    wrong = call(root, "POST", "/session", {"token": "guess"})
    assert wrong.code == 401 and "admin.token" in wrong.json()["error"]
    assert server.counters["dashboard.failed_logins"] == 1
    assert call(root, "POST", "/session", b"{").code == 400
    browser = Browser(root)
    assert browser.cookie_header.startswith(COOKIE_NAME + b"=")
    assert b"HttpOnly" in browser.cookie_header and b"SameSite=strict" in browser.cookie_header
    assert call(root, "GET", "/api/state").code == 401
    assert browser.call("GET", "/api/state").code == 200
    assert browser.call("GET", "/session").json() == {"csrf": browser.csrf}
    no_csrf = browser.call("POST", "/api/unblock", {"value": "x"}, csrf=False)
    assert no_csrf.code == 403 and "CSRF" in no_csrf.json()["error"]
    forged = call(root, "POST", "/api/unblock", {"value": "x"}, cookies=browser.cookie,
                  headers={"X-CSRF-Token": "not-it"})
    assert forged.code == 403
    assert call(root, "GET", "/api/state", headers={"Authorization": "Bearer nope"}).code == 401
    assert browser.call("DELETE", "/session").code == 200
    assert browser.call("GET", "/api/state").code == 401
    page = call(root, "GET", "/")
    assert page.code == 200 and b"<title>p2pnet bootstrap server</title>" in page.body
    assert "script-src 'self'" in page.header("content-security-policy")
    assert call(root, "POST", "/dashboard.js").code == 405
    assert call(root, "GET", "/nothing").code == 404
    assert [e.action for e in server.audit] == ["login"]


def test_block_removes_refuses_and_audits(tmp_path: Path) -> None:
    """Blocking a peer drops it from the table and the state, refuses its identifier and
    address (IP and port) on register (403), leaves another peer at the same IP (a NAT)
    alone, writes an audit entry, and is undone by unblock."""
    reactor, _, root = make_server(tmp_path)
    keys = registered(root, reactor, 2)
    victim = identifier_for_public_key(keys[0])
    browser = Browser(root)
    done = browser.call("POST", "/api/block", {"identifier": victim})
    assert done.code == 200 and done.json()["done"] == f"Blocked {victim}"
    state = browser.call("GET", "/api/state").json()
    assert victim not in [peer["identifier"] for peer in state["peers"]]
    assert state["blocked"] == {"identifiers": [victim], "ips": [],
                                "addresses": ["10.20.0.1:8001"]}
    assert state["audit"][0]["action"] == "block" and state["audit"][0]["target"] == victim
    assert state["tasks"] == [], "trustless mode queues no task"
    again = call(root, "POST", "/v1/register", build_register(keys[0], 8001,
                 now=reactor.seconds()), ip="10.99.0.1")
    assert again.code == 403
    other = Ed25519PrivateKey.generate()
    from_address = call(root, "POST", "/v1/register", build_register(other, 8001,
                        now=reactor.seconds()), ip="10.20.0.1")
    assert from_address.code == 403
    behind_the_nat = call(root, "POST", "/v1/register", build_register(other, 8002,
                          now=reactor.seconds()), ip="10.20.0.1")
    assert behind_the_nat.code == 200
    assert browser.call("POST", "/api/block", {"identifier": victim}).code == 404
    assert browser.call("POST", "/api/block", {"identifier": 5}).code == 400
    assert browser.call("POST", "/api/block", b"[").code == 400
    assert browser.call("POST", "/api/unblock", {"value": victim}).code == 200
    assert browser.call("POST", "/api/unblock", {"value": "10.20.0.1:8001"}).code == 200
    assert call(root, "POST", "/v1/register", build_register(keys[0], 8001,
                now=reactor.seconds()), ip="10.20.0.1").code == 200


def test_disconnect_in_authority_mode_queues_signed_tasks(tmp_path: Path) -> None:
    """Disconnecting a peer drops it (it may come back) and queues a DisconnectPeer task for
    every other peer; the state shows the tasks, and a heartbeat takes them."""
    reactor, _, root = make_server(tmp_path, mode="authority")
    keys = registered(root, reactor, 3)
    victim = identifier_for_public_key(keys[2])
    browser = Browser(root)
    assert browser.call("POST", "/api/disconnect", {"identifier": victim}).code == 200
    state = browser.call("GET", "/api/state").json()
    assert len(state["peers"]) == 2 and state["counts"]["tasks"] == 2
    assert {task["task_type"] for task in state["tasks"]} == {4}
    assert state["history"][-1][1] == 2
    beat = call(root, "POST", "/v1/heartbeat", build_heartbeat(keys[0], now=reactor.seconds()),
                ip="10.20.0.1")
    assert beat.json()["tasks"][0]["task"]["data"] == {"Identifier": victim}
    assert call(root, "POST", "/v1/register", build_register(keys[2], 8001,
                now=reactor.seconds()), ip="10.20.2.1").code == 200


def test_dotnet_dashboard_endpoints(tmp_path: Path) -> None:
    """GET /api/peers lists peers in P2PNet's dashboard shape, and PUT /api/managepeer acts on
    a peer by address, both behind the session (CSRF for the PUT)."""
    reactor, server, root = make_server(tmp_path)
    keys = registered(root, reactor, 2)
    assert call(root, "GET", "/api/peers").code == 401
    browser = Browser(root)
    peers = browser.call("GET", "/api/peers").json()
    assert sorted(p["address"] for p in peers) == ["10.20.0.1", "10.20.1.1"]
    assert set(peers[0]) == {"ip", "port", "address", "identifier"}
    assert browser.call("PUT", "/api/managepeer", {"peerAddress": "10.20.1.1",
                                                   "action": "Block"}, csrf=False).code == 403
    for body, code in (({"peerAddress": "10.20.1.1"}, 400), ({"peerAddress": "", "action": "block"}, 400),
                       ({"peerAddress": "10.20.1.1", "action": "explode"}, 400),
                       ({"peerAddress": "10.1.1.1", "action": "block"}, 404)):
        assert browser.call("PUT", "/api/managepeer", body).code == code, body
    done = browser.call("PUT", "/api/managepeer", {"peerAddress": "10.20.1.1", "action": "Block"})
    assert done.code == 200
    assert identifier_for_public_key(keys[1]) in server.registry.blocked_identifiers
    assert browser.call("GET", "/api/managepeer").code == 405
