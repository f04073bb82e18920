"""
The node service and its control API on the real reactor, over loopback sockets.
"""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.control import MAX_BODY, ControlAPI, MessageLog
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.service import ControlService, PeerNetworkService


@pytest_twisted.ensureDeferred
async def test_node_stops_and_starts_again() -> None:
    """A node service started, stopped and started again in one process listens each time;
    a peer connects and is trusted each time, and each stop closes the peer's channel."""
    node = PeerNetwork(reactor)
    service = PeerNetworkService(node, listen="tcp:0:interface=127.0.0.1")
    peer = PeerNetwork(reactor)
    ports = []
    try:
        for _ in range(2):
            trusted_here: Deferred[PeerChannel] = Deferred()
            node.peer_trusted.add(trusted_here.callback)
            service.startService()
            port = (await service.when_listening()).getHost().port
            ports.append(port)
            assert node.listening_port == port
            channel = await peer.connect(GenericPeer("127.0.0.1", port))
            assert await channel.when_trusted() is channel
            assert (await trusted_here).peer.identifier == peer.identifier
            node.peer_trusted.remove(trusted_here.callback)
            removed: Deferred[PeerChannel] = Deferred()
            peer.peer_removed.add(removed.callback)
            await service.stopService()
            assert node.active_peer_channels == []
            assert node.listening_port == 0
            assert await removed is channel  # the peer saw the node close the channel
            peer.peer_removed.remove(removed.callback)
            assert peer.active_peer_channels == []
    finally:
        if service.running:
            await service.stopService()
        await peer.close()
    assert len(ports) == 2


class RawHTTPClient(Protocol):
    """Sends bytes as written, keeps what comes back, and says when the connection ends."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = bytearray()
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure) -> None:
        self.ended.callback(None)


@pytest_twisted.ensureDeferred
async def test_control_refuses_oversized_body_over_tcp() -> None:
    """Over a real socket, a request declaring a body over MAX_BODY gets a JSON 413 and a
    closed connection while the client still owes almost all of its body."""
    network = PeerNetwork(reactor)
    api = ControlAPI(network, "token", MessageLog(reactor))
    control = ControlService(reactor, "tcp:0:interface=127.0.0.1", api)
    control.startService()
    try:
        port = (await control.when_listening()).getHost().port
        client = RawHTTPClient(
            b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer token\r\nContent-Length: %d\r\n\r\n" % (100 * MAX_BODY)
            + b"x" * 1000
        )
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        await client.ended
        head, _, body = bytes(client.received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert b"content-type: application/json" in head.lower()
        assert json.loads(body) == {"error": f"request body over {MAX_BODY} bytes"}
    finally:
        await control.stopService()
