"""
Hostile peers against a real listener on loopback: the offender is dropped at once, honest
peers are unaffected, and one address cannot take every slot.
"""

from __future__ import annotations

import pytest_twisted
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)

from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.tls import NodeTLS

from .support import RawPeer, eventually


async def raw_connect(port: int, source: str = "127.0.0.1", tls: bool = True) -> RawPeer:
    """
    Connect a L{RawPeer} from C{source}; over TLS (as the nodes speak by default) with a
    fresh key of its own: what it writes then reaches the node's channel, past TLS.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
    if tls:
        endpoint = wrapClientTLS(NodeTLS(Ed25519PrivateKey.generate(), reactor), endpoint)
    return await connectProtocol(endpoint, RawPeer())


@pytest_twisted.ensureDeferred
async def test_oversized_frame_drops_only_the_offender() -> None:
    """A 4 GiB length prefix closes that connection at once; a trusted peer keeps talking."""
    server = PeerNetwork(reactor, display_name="server")
    client = PeerNetwork(reactor, display_name="client")
    await server.listen("tcp:0:interface=127.0.0.1")
    try:
        channel = await client.connect(GenericPeer("127.0.0.1", server.listening_port))
        await channel.when_trusted()
        attacker = await raw_connect(server.listening_port)
        attacker.transport.write(b"\xff\xff\xff\xff" + b"x" * 100)
        await attacker.lost
        assert server.counters["misbehaving_peers"] == 1
        received = []
        [inbound] = server.trusted_peer_channels
        inbound.on_data_received.add(lambda ch, packet: received.append(packet))
        channel.send(PureMessagePacket("still here"))
        await eventually(lambda: received)
        assert received[0].message == "still here"
        assert not channel.is_closed
    finally:
        await client.close()
        await server.close()


@pytest_twisted.ensureDeferred
async def test_one_address_cannot_take_every_slot() -> None:
    """At most 8 connections from one address are kept; another address still gets in."""
    server = PeerNetwork(reactor, display_name="server")
    await server.listen("tcp:0:interface=127.0.0.1")
    peers = []
    try:
        for _ in range(12):
            peers.append(await raw_connect(server.listening_port))
        await eventually(lambda: sum(p.lost.called for p in peers) == 4)
        assert len(server.pending_channels) == 8
        assert all(p.received for p in peers if not p.lost.called)  # each got our Identity
        assert all(not p.received for p in peers if p.lost.called)  # refused before a byte
        other = await raw_connect(server.listening_port, source="127.0.0.2")
        peers.append(other)
        await eventually(lambda: bool(other.received))
        assert not other.lost.called
    finally:
        for peer in peers:
            if not peer.lost.called:
                peer.transport.abortConnection()
        await server.close()


@pytest_twisted.ensureDeferred
async def test_control_api_refuses_huge_body_before_reading_it(tmp_path) -> None:
    """A declared body over 64 KiB is answered 413 and the connection closed at once."""
    from p2pnet_tx.control import ControlAPI, MessageLog
    from p2pnet_tx.service import ControlService

    network = PeerNetwork(reactor, display_name="node")
    api = ControlAPI(network, "token", MessageLog(reactor))
    control = ControlService(reactor, "tcp:0:interface=127.0.0.1", api)
    control.startService()
    try:
        client = await raw_connect(control.port.getHost().port, tls=False)
        client.transport.write(b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Authorization: Bearer token\r\n"
                               b"Content-Length: 300000000\r\n\r\n" + b"x" * 1000)
        await client.lost
        assert client.received.startswith(b"HTTP/1.1 413 ")
        assert b"request body over" in client.received
    finally:
        await control.stopService()
        await network.close()
