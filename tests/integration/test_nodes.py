"""
Five nodes on loopback, in one process, over TLS (the default): discovery through a seed,
broadcast, a node that dies and comes back, and the refusals (self, duplicate, blocked, a key
claiming another node's identifier).  Each node is known to the tests by its display name.
"""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import reactor

from p2pnet_tx.errors import SelfConnection
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.service import PeerNetworkService

from .support import eventually

LISTEN = "tcp:0:interface=127.0.0.1"


class Node:
    """
    A PeerNetworkService in this process that records the messages it receives, by the
    display name of their sender.
    """

    def __init__(self, name: str, seed_port: int | None = None,
                 key: Ed25519PrivateKey | None = None, **network_args: object) -> None:
        self.name = name
        self.key = key or Ed25519PrivateKey.generate()
        self.network = PeerNetwork(reactor, display_name=name, private_key=self.key,
                                   **network_args)  # type: ignore[arg-type]
        self.identifier = self.network.identifier
        self.received: list[tuple[str, str]] = []
        self.network.handlers.set_handler(PacketType.MESSAGE, self._record)
        peers = [GenericPeer("127.0.0.1", seed_port)] if seed_port else []
        self.service = PeerNetworkService(self.network, listen=LISTEN, peers=peers)
        self.service.startService()

    def _record(self, channel, packet) -> None:
        if packet.message != "Pinging":
            self.received.append((channel.properties["display_name"], packet.message))

    @property
    def port(self) -> int:
        return self.network.listening_port

    def trusted(self) -> set[str]:
        return {c.properties["display_name"] for c in self.network.trusted_peer_channels}

    async def stop(self) -> None:
        await self.service.stopService()


@pytest_twisted.ensureDeferred
async def test_five_nodes_find_each_other_and_broadcast_once() -> None:
    """Every node learns every other through the seed; each broadcast arrives once per node."""
    seed = Node("node0")
    nodes = [seed] + [Node(f"node{n}", seed_port=seed.port) for n in range(1, 5)]
    names = {node.name for node in nodes}
    identifiers = {node.identifier for node in nodes}
    try:
        await eventually(lambda: all(n.trusted() == names - {n.name} for n in nodes))
        for node in nodes:
            assert {p.identifier for p in node.network.known_peers.values()} >= (
                identifiers - {node.identifier} if node is seed else {seed.identifier}
            )
        for node in nodes:
            assert node.network.broadcast(PureMessagePacket(f"hello from {node.name}")) == 4
        await eventually(lambda: all(len(n.received) >= 4 for n in nodes))
        for node in nodes:
            counts = Counter(node.received)
            assert set(counts.values()) == {1}, counts
            assert {sender for sender, _ in node.received} == names - {node.name}

        # A node dies: everyone removes it.  It comes back (same key, new port): it is back
        # in everyone's tables.
        gone = nodes.pop(2)
        await gone.stop()
        await eventually(lambda: all(gone.name not in n.trusted() for n in nodes))
        back = Node(gone.name, seed_port=seed.port, key=gone.key)
        nodes.append(back)
        await eventually(lambda: all(n.trusted() == names - {n.name} for n in nodes))
        assert back.port != gone.port or back.port
    finally:
        for node in nodes:
            await node.stop()


@pytest_twisted.ensureDeferred
async def test_refusals_over_tls() -> None:
    """Connections to oneself, duplicates and blocked addresses are refused."""
    a = Node("alpha")
    b = Node("beta")
    blocking = Node("gamma", policy=IncomingPeerTrustPolicy(blocked_ips=["127.0.0.1"]))
    try:
        with pytest.raises(SelfConnection):
            await a.network.connect(GenericPeer("127.0.0.1", a.port))
        channel = await a.network.connect(GenericPeer("127.0.0.1", b.port))
        assert await channel.when_trusted() is channel
        assert await a.network.connect(GenericPeer("127.0.0.1", b.port)) is channel

        # A second process with alpha's key is a duplicate of alpha: refused by beta.
        twin = Node("alpha", key=a.key)
        try:
            second = await twin.network.connect(GenericPeer("127.0.0.1", b.port))
            await eventually(lambda: second.is_closed)
            assert [c.peer.identifier for c in b.network.active_peer_channels] == [a.identifier]
            assert b.network.counters["duplicates_refused"] == 1
        finally:
            await twin.stop()

        with pytest.raises(Exception):
            await a.network.connect(GenericPeer("127.0.0.1", blocking.port))
        assert blocking.network.counters["refused_connections"] == 1
        assert blocking.network.active_peer_channels == []
    finally:
        for node in (a, b, blocking):
            await node.stop()
