"""
Sending over real sockets on loopback, through TLS (the default): a plain loop of sends reaches
a peer that reads, whole and in order; a peer that stops reading is dropped once its writes
stall, and a send past the queue's cap is a loud error, not a dropped peer.
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
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from p2pnet_tx.channel import ChannelLimits, PeerChannel
from p2pnet_tx.errors import SendBufferFull
from p2pnet_tx.identity import identifier_for_public_key
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import IdentifierPacket, PacketType, PureMessagePacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.tls import NodeTLS
from p2pnet_tx.wire import get_codec

from .support import eventually

BURST_BYTES = 50 * 1024 * 1024


@pytest_twisted.ensureDeferred
async def test_plain_loop_burst_arrives_whole_and_in_order() -> None:
    """50 MiB of messages sent in one plain loop all arrive, in order; nobody is dropped."""
    server = PeerNetwork(reactor, display_name="server")
    client = PeerNetwork(reactor, display_name="client")
    await server.listen("tcp:0:interface=127.0.0.1")
    received: list[int] = []
    server.handlers.set_handler(
        PacketType.MESSAGE, lambda channel, packet: received.append(int(packet.message[:8]))
    )
    try:
        channel = await client.connect(GenericPeer("127.0.0.1", server.listening_port))
        await channel.when_trusted()
        padding = "x" * 1000
        count = BURST_BYTES // len(padding)
        for number in range(count):
            channel.send_message(f"{number:08d}{padding}")
        assert channel.queued_bytes > BURST_BYTES // 2  # the loop outran the socket
        await eventually(lambda: len(received) == count, timeout=120.0)
        assert received == list(range(count))
        assert not channel.is_closed
        await channel.drain()
        assert channel.queued_bytes == 0
    finally:
        await client.close()
        await server.close()


@implementer(IHandshakeListener)
class SilentPeer(Protocol):
    """Says who it is (over TLS, with its own key), then never reads another byte."""

    key = Ed25519PrivateKey.generate()

    def handshakeCompleted(self) -> None:
        self.transport.write(get_codec("p2pnet").encode(IdentifierPacket(
            "connect", 0, "", source_origin_identifier=identifier_for_public_key(self.key))))
        self.transport.pauseProducing()


@pytest_twisted.ensureDeferred
async def test_peer_that_stops_reading_is_dropped() -> None:
    """
    Writing to a peer that reads nothing fills the socket buffers, then the channel's queue up
    to its cap (further sends raise SendBufferFull, the channel stays open); once nothing has
    drained for write_stall_timeout, the channel aborts.  (The cap is larger than the kernel's
    buffers on loopback, so that data is still waiting when they are full.)
    """
    limits = ChannelLimits(max_queued_bytes=32 * 1024 * 1024, write_stall_timeout=1.0)
    server = PeerNetwork(reactor, display_name="server", trust_protocol="none",
                         channel_limits=limits)
    await server.listen("tcp:0:interface=127.0.0.1")
    added: list[PeerChannel] = []
    server.peer_added.add(added.append)
    peer = await connectProtocol(
        wrapClientTLS(NodeTLS(SilentPeer.key, reactor),
                      TCP4ClientEndpoint(reactor, "127.0.0.1", server.listening_port)),
        SilentPeer(),
    )
    try:
        await eventually(lambda: added)
        [channel] = added
        refused = 0
        message = PureMessagePacket("y" * 60_000)
        for _ in range(2_000):  # 120 MB: more than any socket buffer and the cap together
            try:
                channel.send(message)
            except SendBufferFull:
                refused += 1
        assert refused > 0
        assert channel.close_reason is None
        assert channel.queued_bytes <= limits.max_queued_bytes
        start = reactor.seconds()
        reason = await channel.when_closed()
        assert reactor.seconds() - start < 10.0
        assert channel.close_reason == "write stall", reason
        assert server.active_peer_channels == []
    finally:
        peer.transport.abortConnection()
        await server.close()


@pytest_twisted.ensureDeferred
async def test_graceful_close_under_backpressure_is_not_aborted() -> None:
    """
    close() with writes backed up closes once they drain: the writer stops being the
    transport's producer, which a transport needs before it can finish losing its connection.
    (Before, every such close ran into close_timeout and was aborted.)
    """
    limits = ChannelLimits(close_timeout=30.0)
    server = PeerNetwork(reactor, display_name="server", channel_limits=limits)
    client = PeerNetwork(reactor, display_name="client", channel_limits=limits)
    await server.listen("tcp:0:interface=127.0.0.1")
    received: list[int] = []
    server.handlers.set_handler(PacketType.MESSAGE, lambda channel, packet: received.append(1))
    try:
        channel = await client.connect(GenericPeer("127.0.0.1", server.listening_port))
        await channel.when_trusted()
        for _ in range(2000):
            channel.send_message("x" * 1000)  # about 2 MB: the transport pauses the writer
        assert not channel.is_writable
        start = reactor.seconds()
        await channel.close("done")
        assert reactor.seconds() - start < 10.0  # not the 30 s abort
        # Everything sent before the close arrives: the peer's own unread data (its peer list)
        # must not turn our close into an RST that drops our tail at the peer.
        await eventually(lambda: len(received) == 2000, timeout=10.0)
    finally:
        await client.close()
        await server.close()
