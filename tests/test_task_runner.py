"""
Tests for L{p2pnet_tx.task_runner}: authority tasks executed on a node, and forged, stale,
replayed and misdirected tasks refused.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.packets import (
    DataPayloadFormat,
    DataTransmissionPacket,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.task_runner import TaskRunner
from p2pnet_tx.tasks import TaskType, new_task, sign_task

NOW = 1_700_000_000.0
AUTHORITY = Ed25519PrivateKey.generate()


def identifier() -> str:
    return identifier_for_public_key(Ed25519PrivateKey.generate())


@attrs.define
class FakeChannel:
    """A channel that records what is done to it."""

    peer: GenericPeer
    sent: list[Any] = attrs.field(factory=list)
    closed: list[str] = attrs.field(factory=list)

    def send(self, packet: Any) -> bool:
        self.sent.append(packet)
        return True

    def close(self, reason: str = "closed") -> None:
        self.closed.append(reason)


@attrs.define
class FakeNetwork:
    """The public API of a network the runner uses, recording each call."""

    identifier: str
    active_peer_channels: list[FakeChannel] = attrs.field(factory=list)
    calls: list[tuple[str, Any]] = attrs.field(factory=list)

    def remove_peer(self, channel: FakeChannel) -> None:
        self.calls.append(("remove_peer", channel))

    def block(self, ip: str | None = None, identifier: str | None = None) -> list[Any]:
        self.calls.append(("block", (ip, identifier)))
        return []

    def elevate_peer_permission(self, channel: FakeChannel) -> None:
        self.calls.append(("elevate", channel))

    def process_peer_list(self, packet: Any) -> None:
        self.calls.append(("peer_list", packet))


class TaskRunnerTests(SynchronousTestCase):
    """Each task type's effect, through the network's public API."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.me = identifier()
        self.other = identifier()
        self.channel = FakeChannel(GenericPeer("192.0.2.7", 8001, self.other))
        self.network = FakeNetwork(self.me, [self.channel])
        self.runner = TaskRunner(self.network, AUTHORITY.public_key(), self.clock)
        self.logs = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def execute(self, task_type: TaskType, data: dict[str, str], key: Any = AUTHORITY,
            **kwargs: Any) -> str:
        task = new_task(task_type, data, now=kwargs.pop("issued", NOW), **kwargs)
        return self.runner.run_signed_task(json.loads(json.dumps(sign_task(task, key))))

    def test_block_and_remove_peer(self) -> None:
        """BlockAndRemovePeer removes the peer's channels and blocks it."""
        done = self.execute(TaskType.BLOCK_AND_REMOVE_PEER, {"Identifier": self.other})
        self.assertIn("blocked", done)
        self.assertEqual(self.network.calls, [
            ("remove_peer", self.channel), ("block", (None, self.other)),
        ])
        self.assertEqual(self.runner.status()["tasks.executed.BLOCK_AND_REMOVE_PEER"], 1)

    def test_block_and_remove_by_identifier_spares_the_address(self) -> None:
        """With Identifier and IP, only the identifier is blocked: others may share the IP."""
        neighbour = FakeChannel(GenericPeer("192.0.2.7", 8002, identifier()))
        self.network.active_peer_channels.append(neighbour)
        self.execute(TaskType.BLOCK_AND_REMOVE_PEER, {"Identifier": self.other, "IP": "192.0.2.7"})
        self.assertEqual(self.network.calls, [
            ("remove_peer", self.channel), ("block", (None, self.other)),
        ])
        self.execute(TaskType.BLOCK_AND_REMOVE_PEER, {"IP": "192.0.2.7"})
        self.assertEqual(self.network.calls[2:], [
            ("remove_peer", self.channel), ("remove_peer", neighbour),
            ("block", ("192.0.2.7", None)),
        ])

    def test_block_and_remove_self(self) -> None:
        """Naming this node itself does nothing (every node gets the "*" task)."""
        done = self.execute(TaskType.BLOCK_AND_REMOVE_PEER, {"Identifier": self.me})
        self.assertIn("nothing to do", done)
        self.assertEqual(self.network.calls, [])

    def test_block_ip(self) -> None:
        """BlockIP blocks the address."""
        self.execute(TaskType.BLOCK_IP, {"IP": "192.0.2.9"})
        self.assertEqual(self.network.calls, [("block", ("192.0.2.9", None))])

    def test_ping(self) -> None:
        """PingPeer sends the peer a ping message."""
        self.execute(TaskType.PING_PEER, {"Identifier": self.other})
        [packet] = self.channel.sent
        self.assertIsInstance(packet, PureMessagePacket)
        self.assertEqual((packet.message, packet.source_origin_identifier), ("Pinging", self.me))

    def test_disconnect(self) -> None:
        """DisconnectPeer closes the peer's channel, without blocking it."""
        self.execute(TaskType.DISCONNECT_PEER, {"Identifier": self.other})
        self.assertEqual(self.channel.closed, ["disconnected by the authority"])
        self.assertEqual(self.network.calls, [])

    def test_authorize(self) -> None:
        """AuthorizePeer trusts the peer (elevate_peer_permission)."""
        self.execute(TaskType.AUTHORIZE_PEER, {"Identifier": self.other})
        self.assertEqual(self.network.calls, [("elevate", self.channel)])

    def test_peer_list(self) -> None:
        """BootstrapInitialization's Peers are handed to the peer-list entry point, not self."""
        third = identifier()
        peers = [{"identifier": third, "ip": "192.0.2.3", "port": 9},
                 {"identifier": self.me, "ip": "192.0.2.4", "port": 9},
                 {"identifier": "bad", "ip": "x", "port": 0}]
        done = self.execute(TaskType.BOOTSTRAP_INITIALIZATION, {"Peers": json.dumps(peers)})
        self.assertEqual(done, "learned 1 peer(s), skipped 1")
        [(name, packet)] = self.network.calls
        self.assertEqual(packet.peers, [GenericPeer("192.0.2.3", 9, third)])

    def test_bad_data_is_malformed(self) -> None:
        """Missing or invalid data: refused, nothing done."""
        for task_type, data in [
            (TaskType.BLOCK_IP, {"IP": "999.0.0.1"}), (TaskType.BLOCK_IP, {}),
            (TaskType.DISCONNECT_PEER, {}), (TaskType.BOOTSTRAP_INITIALIZATION, {"Peers": "{"}),
        ]:
            self.assertTrue(self.execute(task_type, data).startswith("rejected: malformed"))
        self.assertEqual(self.network.calls, [])
        self.assertEqual(self.runner.counters["rejected.malformed"], 4)

    def test_unsupported(self) -> None:
        """A task type the node does not execute is refused and counted."""
        self.assertTrue(self.execute(TaskType.SEND_DATA, {}).startswith("rejected: unsupported"))

    def test_forged(self) -> None:
        """A task signed by another key does nothing, is logged once and counted."""
        done = self.execute(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, key=Ed25519PrivateKey.generate())
        self.assertTrue(done.startswith("rejected: forged"))
        self.assertEqual(self.network.calls, [])
        self.assertEqual(self.runner.status()["tasks.rejected.forged"], 1)
        refused = [e for e in self.logs if "refused" in e.get("log_format", "")]
        self.assertEqual(len(refused), 1)

    def test_replayed(self) -> None:
        """The same signed task twice runs once; the replay is logged once however often."""
        task = new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, now=NOW)
        signed = sign_task(task, AUTHORITY)
        self.runner.run_signed_task(signed)
        for _ in range(3):
            self.assertTrue(self.runner.run_signed_task(signed).startswith("rejected: replayed"))
        self.assertEqual(self.network.calls, [("block", ("192.0.2.9", None))])
        self.assertEqual(self.runner.counters["rejected.replayed"], 3)
        refused = [e for e in self.logs if "refused" in e.get("log_format", "")]
        self.assertEqual(len(refused), 1)

    def test_stale(self) -> None:
        """An expired task does nothing."""
        done = self.execute(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, issued=NOW - 7200, ttl=3600)
        self.assertTrue(done.startswith("rejected: stale"))
        self.assertEqual(self.network.calls, [])

    def test_wrong_target(self) -> None:
        """A task for another node does nothing here."""
        done = self.execute(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, target=self.other)
        self.assertTrue(done.startswith("rejected: wrong_target"))
        self.execute(TaskType.BLOCK_IP, {"IP": "192.0.2.8"}, target=self.me)
        self.assertEqual(self.network.calls, [("block", ("192.0.2.8", None))])

    def test_no_authority(self) -> None:
        """A runner without an authority key refuses everything."""
        runner = TaskRunner(self.network, None, self.clock)
        signed = sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, now=NOW), AUTHORITY)
        self.assertTrue(runner.run_signed_task(signed).startswith("rejected: forged"))
        self.assertEqual(self.network.calls, [])

    def test_garbage(self) -> None:
        """Anything that is not a signed task is refused as malformed."""
        for garbage in (None, 1, "x", [], {"task": {}}, {"task": [], "signature": ""}):
            self.assertTrue(self.runner.run_signed_task(garbage).startswith("rejected: malformed"))


class RelayedTaskTests(SynchronousTestCase):
    """Tasks a peer relays in a Task DataTransmit (Distribution's task runner): they run only
    if the authority signed them, whoever relayed them."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.relay = FakeChannel(GenericPeer("192.0.2.7", 8001, identifier()))
        self.network = FakeNetwork(identifier(), [self.relay])
        self.runner = TaskRunner(self.network, AUTHORITY.public_key(), self.clock)

    def packet(self, payload: bytes) -> DataTransmissionPacket:
        return DataTransmissionPacket(payload, DataPayloadFormat.TASK)

    def test_signed_task_runs(self) -> None:
        """The authority's task, relayed by an ordinary peer, is executed."""
        signed = sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, now=NOW), AUTHORITY)
        done = self.runner.task_packet_received(
            self.relay, self.packet(json.dumps(signed).encode()))  # type: ignore[arg-type]
        self.assertFalse(done.startswith("rejected"), done)
        self.assertEqual(self.network.calls, [("block", ("192.0.2.9", None))])

    def test_peer_signed_or_garbage_refused(self) -> None:
        """A task the relaying peer signed itself, and a payload that is not JSON, are refused
        and counted; nothing is done."""
        forged = sign_task(new_task(TaskType.BLOCK_IP, {"IP": "192.0.2.9"}, now=NOW),
                           Ed25519PrivateKey.generate())
        for payload, cause in ((json.dumps(forged).encode(), "forged"),
                               (b"\xff{not json", "malformed"),
                               (b"[1, 2]", "malformed")):
            done = self.runner.task_packet_received(
                self.relay, self.packet(payload))  # type: ignore[arg-type]
            self.assertTrue(done.startswith(f"rejected: {cause}"), done)
        self.assertEqual(self.network.calls, [])
        status = self.runner.status()
        self.assertEqual((status["tasks.rejected.forged"], status["tasks.rejected.malformed"]),
                         (1, 2))
