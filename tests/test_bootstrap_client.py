"""
Tests for L{p2pnet_tx.bootstrap.client}, L{p2pnet_tx.bootstrap.http} and
L{p2pnet_tx.bootstrap.part}: the node's bootstrap client against an in-memory /v1 server
(C{treq.testing.StubTreq}) on a L{MemoryReactorClock}.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from p2pnet_tx.bootstrap import v1
from p2pnet_tx.bootstrap.client import Backoff, BootstrapClient
from p2pnet_tx.bootstrap.http import MAX_REPLY_BYTES, V1Api
from p2pnet_tx.bootstrap.part import bootstrap_part, check_url, read_authority_key
from p2pnet_tx.identity import identifier_for_public_key, public_key_bytes
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.tasks import ReplayCache, TaskType, new_task, sign_task

NOW = 1_700_000_000.0
URL = "http://bootstrap.invalid"


def identifier() -> str:
    return identifier_for_public_key(Ed25519PrivateKey.generate())


class FakeV1Server(Resource):
    """
    A /v1 server in memory, verifying requests with L{p2pnet_tx.bootstrap.v1}; C{answer}
    overrides the reply of the next requests with C{(status, body, headers)}.
    """

    isLeaf = True

    def __init__(self, clock: MemoryReactorClock) -> None:
        super().__init__()
        self.clock = clock
        self.registered: dict[str, bytes] = {}
        self.requests: list[tuple[bytes, dict[str, Any]]] = []
        self.peers: list[v1.PeerEntry] = []
        self.tasks: list[dict[str, Any]] = []
        self.answer: list[tuple[int, bytes, dict[bytes, bytes]]] = []
        self.interval = 2
        self.replay = ReplayCache()

    def render_POST(self, request: Request) -> bytes:
        body = request.content.read()
        if self.answer:
            status, data, headers = self.answer.pop(0)
            request.setResponseCode(status)
            for name, value in headers.items():
                request.setHeader(name, value)
            return data
        try:
            now = self.clock.seconds()
            if request.path == b"/v1/register":
                reg = v1.parse_register(body, now=now, replay=self.replay)
                self.requests.append((request.path, json.loads(body)))
                self.registered[reg.identifier] = reg.public_key
                reply = v1.register_reply(self.peers, heartbeat_interval=self.interval,
                                          mode="trustless", authority_key=None, server_time=now)
            else:
                beat = v1.parse_heartbeat(body)
                self.requests.append((request.path, json.loads(body)))
                if beat.identifier not in self.registered:
                    raise v1.RequestError(404, "not registered")
                v1.verify_heartbeat(beat, self.registered[beat.identifier], now=now,
                                    replay=self.replay)
                tasks, self.tasks = self.tasks, []
                reply = v1.heartbeat_reply(tasks, self.peers)
        except v1.RequestError as e:
            request.setResponseCode(e.status)
            return v1.error_body(e.message)
        return json.dumps(reply).encode()

    def paths(self) -> list[bytes]:
        return [path for path, _ in self.requests]


@attrs.define
class FakeNetwork:
    """What the client uses of a network, recording the peer lists handed over."""

    identifier: str
    private_key: Ed25519PrivateKey
    display_name: str | None = None
    listening_port: int = 8001
    lists: list[Any] = attrs.field(factory=list)
    active_peer_channels: list[Any] = attrs.field(factory=list)
    blocked: list[Any] = attrs.field(factory=list)

    def process_peer_list(self, packet: Any) -> None:
        self.lists.append(packet)

    def block(self, ip: str | None = None, identifier: str | None = None) -> list[Any]:
        self.blocked.append((ip, identifier))
        return []


class ClientTests(SynchronousTestCase):
    """Registration, heartbeats, re-registration and backoff, in virtual time."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(NOW)
        self.server = FakeV1Server(self.clock)
        self.http = StubTreq(self.server)
        key = Ed25519PrivateKey.generate()
        self.network = FakeNetwork(identifier_for_public_key(key), key)
        self.draws: list[float] = []

    def client(self, **kwargs: Any) -> BootstrapClient:
        api = V1Api(self.http, URL, self.network.private_key, self.clock)
        backoff = Backoff(1.0, 60.0, random=lambda: self.draws.pop(0) if self.draws else 0.0)
        client = BootstrapClient(self.network, api, self.clock, url=URL, backoff=backoff,
                                 **kwargs)
        client.startService()
        self.addCleanup(client.stopService)
        self.http.flush()
        return client

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.http.flush()

    def test_register_then_heartbeat(self) -> None:
        """It registers at once with its listen port, then heartbeats every interval."""
        client = self.client()
        self.assertEqual(self.server.paths(), [b"/v1/register"])
        self.assertEqual(self.server.requests[0][1]["port"], 8001)
        self.assertEqual(client.interval, 2.0)
        self.advance(1.9)
        self.assertEqual(len(self.server.requests), 1)
        self.advance(0.1)
        self.assertEqual(self.server.paths(), [b"/v1/register", b"/v1/heartbeat"])
        self.advance(2)
        self.assertEqual(client.counters["heartbeats"], 2)
        self.assertEqual(client.status()["state"], "registered")

    def test_peers_are_dialled_through_the_network(self) -> None:
        """Learnt peers go to process_peer_list, without this node, at most 32 a reply."""
        other = identifier()
        self.server.peers = [
            v1.PeerEntry(other, "127.0.0.2", 9000),
            v1.PeerEntry(self.network.identifier, "127.0.0.1", 8001),
        ]
        client = self.client()
        [packet] = self.network.lists
        self.assertEqual(packet.peers, [GenericPeer("127.0.0.2", 9000, other)])
        self.server.peers = [v1.PeerEntry(identifier(), "127.0.0.3", 1 + i) for i in range(40)]
        self.advance(2)
        self.assertEqual(len(self.network.lists[-1].peers), 32)
        self.assertEqual(client.counters["peers_skipped"], 8)

    def test_reregister_on_404(self) -> None:
        """A server that forgot the node (restart, expiry) gets a new registration at once."""
        client = self.client()
        self.server.registered.clear()
        self.advance(2)
        self.assertEqual(self.server.paths(),
                         [b"/v1/register", b"/v1/heartbeat", b"/v1/register"])
        self.assertEqual(client.counters["reregistrations"], 1)
        self.assertEqual(client.counters["failures"], 0)
        self.advance(2)
        self.assertEqual(self.server.paths()[-1], b"/v1/heartbeat")

    def test_backoff_with_jitter(self) -> None:
        """Failures in a row wait 1, 2, 4 ... s times a factor in [0.5, 1); success resets."""
        for _ in range(3):
            self.server.answer.append((500, b'{"error": "down"}', {}))
        self.draws = [0.0, 0.0, 0.999]
        client = self.client()
        self.assertEqual(client.state, "backing off")
        self.assertEqual(client.last_error, "HTTP 500: down")
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime() - NOW, 0.5)
        self.advance(0.5)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime() - self.clock.seconds(), 1.0)
        self.advance(1.0)
        [call] = self.clock.getDelayedCalls()
        self.assertAlmostEqual(call.getTime() - self.clock.seconds(), 4 * 0.9995, places=5)
        self.advance(4)
        self.assertEqual(client.counters["registrations"], 1)
        self.assertEqual(client.counters["failures"], 3)
        self.assertIsNone(client.last_error)

    def test_retry_after(self) -> None:
        """A 429 with Retry-After waits at least that long."""
        self.server.answer.append((429, b'{"error": "slow down"}', {b"Retry-After": b"30"}))
        self.client()
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime() - NOW, 30)

    def test_garbage_replies_are_failures(self) -> None:
        """HTML, null, wrong shapes, huge bodies: failures with backoff, never a crash."""
        for body in (b"<html>", b"null", b'{"peers": 5}', b"[]", b"x" * (MAX_REPLY_BYTES + 1)):
            self.server.answer.append((200, body, {}))
        client = self.client()
        for _ in range(5):
            self.advance(60)
        self.assertEqual(client.counters["failures"], 5)
        self.assertEqual(client.counters["registrations"], 1)

    def test_register_404_is_a_failure(self) -> None:
        """A 404 to a registration is a failure with backoff, not a tight re-register loop."""
        self.server.answer.append((404, b"{}", {}))
        client = self.client()
        self.assertEqual(client.counters["failures"], 1)
        self.assertEqual(client.counters["reregistrations"], 0)

    def test_timeout(self) -> None:
        """A request with no reply is abandoned at 15 s and retried."""
        client = self.client(port=None)
        client.stopService()
        hanging = V1Api(_Hanging(), URL, self.network.private_key, self.clock)
        client = BootstrapClient(self.network, hanging, self.clock, url=URL)
        client.startService()
        self.addCleanup(client.stopService)
        self.clock.advance(15)
        self.assertEqual(client.counters["failures"], 1)
        self.assertIn("no reply", client.last_error)

    def test_dotnet_gives_up_after_5_failures(self) -> None:
        """With max_failures=5 (the .NET client's rule) it stops after 5 failures in total."""
        self.server.answer.extend([(500, b"{}", {})] * 10)
        client = self.client(max_failures=5)
        for _ in range(10):
            self.advance(60)
        self.assertEqual(client.counters["failures"], 5)
        self.assertEqual(client.state, "given up")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_cancels_everything(self) -> None:
        """Stopping leaves no timer and sends nothing more."""
        client = self.client()
        client.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.advance(100)
        self.assertEqual(len(self.server.requests), 1)

    def test_tasks_go_to_the_runner(self) -> None:
        """In authority mode, delivered tasks are verified and run; forged ones do nothing."""
        authority = Ed25519PrivateKey.generate()
        part = bootstrap_part(self.network, [URL], reactor=self.clock, mode="authority",
                              authority_key=authority.public_key(), http=self.http)
        part.startService()
        self.addCleanup(part.stopService)
        self.http.flush()
        good = sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.5"}, now=NOW), authority)
        forged = sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.6"}, now=NOW),
                           Ed25519PrivateKey.generate())
        self.server.tasks = [good, forged, good]
        self.advance(2)
        self.assertEqual(self.network.blocked, [("192.0.2.5", None)])
        status = part.status()
        self.assertEqual(status["tasks.executed"], 1)
        self.assertEqual(status["tasks.rejected.forged"], 1)
        self.assertEqual(status["tasks.rejected.replayed"], 1)
        self.assertEqual(status["servers"][0]["tasks_received"], 3)

    def test_trustless_ignores_tasks(self) -> None:
        """In trustless mode, tasks are counted and never run."""
        authority = Ed25519PrivateKey.generate()
        client = self.client()
        self.server.tasks = [sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.5"},
                                                now=NOW), authority)]
        self.advance(2)
        self.assertEqual(self.network.blocked, [])
        self.assertEqual(client.counters["tasks_ignored"], 1)


class _Hanging:
    """A treq-style client whose requests never answer."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred()


class PartTests(SynchronousTestCase):
    """The option helpers."""

    def test_check_url(self) -> None:
        """http(s) URLs with a host pass; others are ValueErrors."""
        self.assertEqual(check_url("http://127.0.0.1:5070/"), "http://127.0.0.1:5070")
        for bad in ("127.0.0.1:5070", "ftp://x", "http://", "", "not a url"):
            self.assertRaises(ValueError, check_url, bad)

    def test_read_authority_key(self) -> None:
        """A base64 key, or a file holding one."""
        raw = public_key_bytes(Ed25519PrivateKey.generate())
        text = base64.b64encode(raw).decode()
        self.assertEqual(public_key_bytes(read_authority_key(text)), raw)
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text + "\n")
        self.assertEqual(public_key_bytes(read_authority_key(path)), raw)
        e = self.assertRaises(ValueError, read_authority_key, "./missing.key")
        self.assertIn("no such file", str(e))
        self.assertRaises(ValueError, read_authority_key, "abc")

    def test_authority_needs_key(self) -> None:
        """Authority mode without a key is refused with a clear error."""
        network = FakeNetwork(identifier(), Ed25519PrivateKey.generate())
        e = self.assertRaises(ValueError, bootstrap_part, network, [URL],
                              reactor=MemoryReactorClock(), mode="authority")
        self.assertIn("--authority-key", str(e))


