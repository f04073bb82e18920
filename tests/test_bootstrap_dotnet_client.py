"""
Tests for L{p2pnet_tx.bootstrap.dotnet_client}: a node with C{--bootstrap-api dotnet} against
a model of P2PNet's .NET server (L{tests.dotnet_bootstrap_server}, written from
C{P2PBootstrap/Program.cs}) and against our server's real .NET-compatible resource, in memory
(C{treq.testing.StubTreq}) on a L{MemoryReactorClock}.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.bootstrap.dotnet_client import (
    DOTNET_HEARTBEAT_INTERVAL,
    MAX_TASKS,
    DotNetApi,
    parse_heartbeat_reply,
    parse_register_reply,
)
from p2pnet_tx.bootstrap.http import HTTPFailure, NotRegistered
from p2pnet_tx.bootstrap.part import bootstrap_part
from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    IdentifierPacket,
    PureMessagePacket,
    TaskType,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.tap import Options
from p2pnet_tx.wire import encode_packet_object

from .bootstrap_support import SyncReactor, call, make_server
from .dotnet_bootstrap_server import FakeDotNetServer
from .test_bootstrap_client import FakeNetwork

NOW = 1_700_000_000.0
URL = "http://dotnet-bootstrap.invalid"


def dtp(payload: bytes, data_type: DataPayloadFormat, tagged: bool = True) -> bytes:
    packet = DataTransmissionPacket(payload, data_type, source_origin_identifier="server")
    return encode_packet_object(packet, tag_payload=tagged)


def message(text: str) -> bytes:
    return encode_packet_object(PureMessagePacket(text))


class DotNetClientTests(SynchronousTestCase):
    """The client against the model of P2PNet's .NET server."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(NOW)
        key = Ed25519PrivateKey.generate()
        self.network = FakeNetwork(identifier_for_public_key(key), key)
        self.authority = Ed25519PrivateKey.generate()

    def start(self, server: FakeDotNetServer, mode: str = "trustless") -> Any:
        self.server = server
        self.http = StubTreq(server)
        part = bootstrap_part(self.network, [URL], reactor=self.clock, mode=mode, api="dotnet",
                              authority_key=self.authority.public_key(), http=self.http)
        part.startService()
        self.addCleanup(part.stopService)
        self.http.flush()
        return part

    def advance(self, seconds: float) -> None:
        self.server.now += seconds
        self.clock.advance(seconds)
        self.http.flush()

    def sent(self, index: int) -> tuple[dict[str, Any], bytes]:
        """The DTP of the index-th request, and its payload (tags kept)."""
        outer = json.loads(self.server.requests[index][1])
        return outer, base64.b64decode(outer["Data"])

    def test_trustless_registration(self) -> None:
        """It asks its public IP, then PUTs a tagged MiscData DTP of its IdentifierPacket
        (discovery, port, that IP); the untagged CollectionShare reply's peers are dialled,
        without this node; heartbeats every 8 s."""
        server = FakeDotNetServer()
        server.known_peers.append(GenericPeer("192.0.2.7", 7000, "dotnet-peer"))
        part = self.start(server)
        self.assertEqual(server.paths(), [b"/api/Bootstrap/publicip", b"/api/Bootstrap/peers"])
        outer, payload = self.sent(1)
        self.assertEqual(outer["DataType"], 2)
        self.assertEqual(outer["SourceOriginIdentifier"], self.network.identifier)
        self.assertTrue(payload.startswith(b"<MiscData>") and payload.endswith(b"</MiscData>"))
        identity = json.loads(payload[len(b"<MiscData>"):-len(b"</MiscData>")])
        self.assertEqual((identity["Message"], identity["Data"], identity["IP"]),
                         ("discovery", 8001, "127.0.0.1"))
        self.assertEqual(identity["SourceOriginIdentifier"], self.network.identifier)
        [packet] = self.network.lists
        self.assertEqual(packet.peers, [GenericPeer("192.0.2.7", 7000, "dotnet-peer")])
        client = part.clients[0]
        self.assertEqual(client.interval, DOTNET_HEARTBEAT_INTERVAL)
        self.advance(7.9)
        self.assertEqual(len(server.requests), 2)
        self.advance(0.1)
        self.assertEqual(server.paths()[-1], b"/api/Bootstrap/heartbeat")
        outer, payload = self.sent(2)
        self.assertEqual((outer["DataType"], outer["SourceOriginIdentifier"]),
                         (1, self.network.identifier))
        self.assertEqual(json.loads(payload[len(b"<Task>"):-len(b"</Task>")]),
                         {"TaskType": 15, "TaskData": {}})
        self.advance(8)
        self.assertEqual(client.counters["heartbeats"], 2)
        self.assertEqual(client.counters["failures"], 0)
        self.assertEqual(client.state, "registered")
        self.assertEqual(len(server.requests), 4, "the public IP is asked once")

    def test_authority_reply_peers_used_tasks_never_run(self) -> None:
        """The authority reply (a <Task>-tagged BootstrapInitialization with PublicKey and
        Peers) gives the peers; the PGP-signed tasks of heartbeats are refused as
        unverifiable, each logged and counted, never executed."""
        server = FakeDotNetServer(authority=True)
        server.known_peers.append(GenericPeer("192.0.2.7", 7000, "dotnet-peer"))
        part = self.start(server, mode="authority")
        [packet] = self.network.lists
        self.assertEqual(packet.peers, [GenericPeer("192.0.2.7", 7000, "dotnet-peer")])
        server.queue(TaskType.BLOCK_IP, {"TargetPeer": "192.0.2.7"})
        server.queue(TaskType.BLOCK_AND_REMOVE_PEER, {"TargetPeer": "192.0.2.7"})
        self.advance(8)
        self.assertEqual(self.network.blocked, [])
        status = part.status()
        self.assertEqual(status["tasks.rejected.unverifiable"], 2)
        self.assertNotIn("tasks.executed", status)
        self.assertEqual(status["servers"][0]["tasks_received"], 2)
        self.assertEqual(status["servers"][0].get("failures", 0), 0)

    def test_trustless_node_ignores_dotnet_tasks(self) -> None:
        """A trustless node counts the tasks of a .NET authority as ignored."""
        server = FakeDotNetServer(authority=True)
        part = self.start(server)
        server.queue(TaskType.BLOCK_IP, {"TargetPeer": "192.0.2.7"})
        self.advance(8)
        self.assertEqual(part.clients[0].counters["tasks_ignored"], 1)
        self.assertEqual(self.network.blocked, [])

    def test_tags_either_way(self) -> None:
        """Replies whose tags are left the other way round (trustless tagged, authority and
        heartbeat untagged) are read all the same."""
        for authority in (False, True):
            with self.subTest(authority=authority):
                self.network.lists.clear()
                server = FakeDotNetServer(authority=authority, untagged_replies=True)
                server.known_peers.append(GenericPeer("192.0.2.7", 7000, "dotnet-peer"))
                part = self.start(server, mode="authority" if authority else "trustless")
                [packet] = self.network.lists
                self.assertEqual(len(packet.peers), 1)
                server.queue(TaskType.BLOCK_IP, {"TargetPeer": "192.0.2.7"})
                self.advance(8)
                client = part.clients[0]
                self.assertEqual((client.counters["heartbeats"], client.counters["failures"]),
                                 (1, 0))
                self.assertEqual(client.counters["tasks_received"], 1)
                part.stopService()

    def test_error_messages_are_failures_and_five_end_it(self) -> None:
        """200 PureMessages that are errors count as failures; after 5 in total (not in a
        row) the client stops, as the .NET client does."""
        server = FakeDotNetServer()
        server.answer = [(200, b"127.0.0.1"), (200, message("Registration refused."))]
        part = self.start(server)
        client = part.clients[0]
        self.assertEqual(client.counters["failures"], 1)
        self.assertEqual(client.last_error, "server: Registration refused.")
        for _ in range(3):
            self.advance(60)
        self.assertEqual(client.counters["registrations"], 1)
        server.answer = [(200, message("Invalid heartbeat network task received."))] * 4
        for _ in range(10):
            self.advance(60)
        self.assertEqual(client.counters["failures"], 5)
        self.assertEqual(client.state, "given up")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_forgotten_client_registers_again(self) -> None:
        """After 30 idle minutes the .NET server forgets a client; the "not found" message
        makes the client register again, not count a failure."""
        server = FakeDotNetServer()
        part = self.start(server)
        client = part.clients[0]
        server.now += 30 * 60
        server.forget_idle()
        self.assertEqual(server.client_peers, {})
        self.advance(8)
        self.assertEqual(server.paths()[-2:],
                         [b"/api/Bootstrap/heartbeat", b"/api/Bootstrap/peers"])
        self.assertEqual(client.counters["reregistrations"], 1)
        self.assertEqual(client.counters["failures"], 0)
        self.assertIn(self.network.identifier, server.client_peers)

    def test_no_public_ip_endpoint(self) -> None:
        """A server that does not serve publicip gets 0.0.0.0 (which IPAddress.Parse takes)."""
        server = FakeDotNetServer(serve_public_ip=False)
        part = self.start(server)
        _, payload = self.sent(1)
        self.assertEqual(json.loads(payload[len(b"<MiscData>"):-len(b"</MiscData>")])["IP"],
                         "0.0.0.0")
        self.assertEqual(part.clients[0].counters["registrations"], 1)

    def test_hostile_replies(self) -> None:
        """HTML, JSON of other shapes, a 500, bad base64, a DTP of garbage: failures, never a
        crash; "Pinging" and empty messages are no errors but no packet either."""
        server = FakeDotNetServer()
        bad = [b"<html>", b"null", b"[]", b'{"Data": 5}', b'{"Data": "%%%", "DataType": 2}',
               dtp(b"not json", DataPayloadFormat.MISC_DATA), message("Pinging"), message("")]
        server.answer = [(200, b"127.0.0.1")] + [(200, body) for body in bad[:4]]
        part = self.start(server)
        client = part.clients[0]
        for _ in range(4):
            self.advance(60)
        self.assertEqual(client.counters["failures"], 4)
        self.assertEqual(client.counters["registrations"], 1)
        for body in bad[4:]:
            self.assertRaises(HTTPFailure, parse_register_reply, 200, body)
        self.assertRaises(HTTPFailure, parse_register_reply, 500, b"")
        self.assertRaises(HTTPFailure, parse_heartbeat_reply, 200,
                          dtp(b'{"TaskType": 14, "TaskData": {}}', DataPayloadFormat.TASK))

    def test_heartbeat_reply_values(self) -> None:
        """Task_N values that are not tasks are skipped, Signature is not a task, at most
        MAX_TASKS are read, and the not-found message is NotRegistered."""
        data = {"Signature": "x", "Task_0": "garbage", "Task_1": '{"TaskType": 4, '
                '"TaskData": {"TargetPeer": "x"}}'}
        data.update({f"Task_{n}": '{"TaskType": 3, "TaskData": {}}'
                     for n in range(2, MAX_TASKS + 5)})
        body = dtp(json.dumps({"TaskType": 16, "TaskData": data}).encode(),
                   DataPayloadFormat.TASK)
        reply = parse_heartbeat_reply(200, body)
        self.assertEqual(len(reply.unverifiable), MAX_TASKS)
        self.assertEqual(reply.unverifiable[0].task_type, TaskType.DISCONNECT_PEER)
        self.assertEqual(reply.skipped, 1 + 4)
        self.assertEqual(reply.tasks, [])
        self.assertRaises(NotRegistered, parse_heartbeat_reply, 200,
                          message("ClientPeer with SourceOriginIdentifier 'x' not found."))

    def test_duplicate_and_incomplete_peers(self) -> None:
        """A .NET server lists a node again at each registration: one entry kept."""
        share = encode_packet_object(CollectionSharePacket(100, [
            GenericPeer("192.0.2.7", 7000, "a"), GenericPeer("192.0.2.7", 7000, "a"),
            GenericPeer("192.0.2.8", 7000, None)]))
        reply = parse_register_reply(200, dtp(share, DataPayloadFormat.MISC_DATA, False))
        self.assertEqual([p.identifier for p in reply.peers], ["a"])
        self.assertEqual(reply.skipped, 2)
        self.assertEqual(reply.mode, "trustless")


class OptionsTests(SynchronousTestCase):
    """C{--bootstrap-api dotnet} is accepted now."""

    def test_tap_accepts_dotnet(self) -> None:
        options = Options()
        options.parseOptions(["--bootstrap", URL, "--bootstrap-api", "dotnet"])
        self.assertEqual(options["bootstrap-api"], "dotnet")

    def test_part_builds_dotnet_clients(self) -> None:
        """bootstrap_part(api="dotnet") gives clients that speak the .NET API and stop after
        5 failures."""
        key = Ed25519PrivateKey.generate()
        network = FakeNetwork(identifier_for_public_key(key), key)
        part = bootstrap_part(network, [URL], reactor=MemoryReactorClock(), api="dotnet",
                              http=StubTreq(FakeDotNetServer()))
        [client] = part.clients
        self.assertIsInstance(client._api, DotNetApi)
        self.assertEqual(client._max_failures, 5)


class RealResourceTests(SynchronousTestCase):
    """The client against p2pnet-bootstrap's own .NET-compatible resource (in memory)."""

    def setUp(self) -> None:
        self.authority = Ed25519PrivateKey.generate()
        self.reactor = SyncReactor()
        key = Ed25519PrivateKey.generate()
        self.network = FakeNetwork(identifier_for_public_key(key), key)

    def directory(self) -> Path:
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        return path

    def test_authority_tasks_with_our_signature_run(self) -> None:
        """Against our server in authority mode: the peer list (with the other .NET peer) is
        learnt; blocking that peer on the server queues a task that the node verifies
        (SignedTask + Ed25519 Signature) and executes; the heartbeats go on."""
        _, server, root = make_server(self.directory(), mode="authority", key=self.authority,
                                      reactor=self.reactor)
        registered = call(root, "PUT", "/api/Bootstrap/peers", _register_body("victim", 7002),
                          ip="10.7.0.2")
        self.assertEqual(registered.code, 200)
        http = StubTreq(root)
        part = bootstrap_part(self.network, [URL], reactor=self.reactor, mode="authority",
                              api="dotnet", authority_key=self.authority.public_key(), http=http)
        part.startService()
        self.addCleanup(part.stopService)
        http.flush()
        client = part.clients[0]
        self.assertEqual(client.counters["registrations"], 1, client.last_error)
        [packet] = self.network.lists
        self.assertEqual([(p.address, p.port, p.identifier) for p in packet.peers],
                         [("10.7.0.2", 7002, "victim")])
        server.block("victim", "test")
        self.reactor.advance(8)
        http.flush()
        self.assertEqual(self.network.blocked, [(None, "victim")])
        status = part.status()
        self.assertEqual(status["tasks.executed.BLOCK_AND_REMOVE_PEER"], 1)
        self.assertEqual(client.counters["failures"], 0)
        self.reactor.advance(8)
        http.flush()
        self.assertEqual(client.counters["heartbeats"], 2)

    def test_trustless_server(self) -> None:
        """Against our server in trustless mode: registered, peers learnt, heartbeats."""
        _, server, root = make_server(self.directory(), reactor=self.reactor)
        call(root, "PUT", "/api/Bootstrap/peers", _register_body("other", 7003), ip="10.7.0.3")
        http = StubTreq(root)
        part = bootstrap_part(self.network, [URL], reactor=self.reactor, api="dotnet", http=http)
        part.startService()
        self.addCleanup(part.stopService)
        http.flush()
        client = part.clients[0]
        self.assertEqual([p.identifier for p in self.network.lists[0].peers], ["other"])
        self.assertIn(self.network.identifier, server.registry.peers)
        self.reactor.advance(8)
        http.flush()
        self.assertEqual((client.counters["heartbeats"], client.counters["failures"]), (1, 0))


def _register_body(identifier: str, port: int) -> bytes:
    identity = encode_packet_object(IdentifierPacket(
        "discovery", port, "203.0.113.9", source_origin_identifier=identifier))
    return dtp_from(identity, identifier)


def dtp_from(payload: bytes, identifier: str) -> bytes:
    return encode_packet_object(DataTransmissionPacket(
        payload, DataPayloadFormat.MISC_DATA, source_origin_identifier=identifier))
