"""
Issue 8's attacks against real nodes over TLS on loopback: a fresh key claiming an offline
node's identifier, a relay forwarding another node's Identity, and plaintext peers.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.errors import ChannelClosed
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import IdentifierPacket
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.tls import NodeTLS
from p2pnet_tx.trust import always_trust
from p2pnet_tx.wire import get_codec

from .support import RawPeer, eventually

LISTEN = "tcp:0:interface=127.0.0.1"


def tls_endpoint(port: int, key: Ed25519PrivateKey | None = None) -> object:
    """A client endpoint to 127.0.0.1:C{port} over TLS, with C{key} (a fresh one by default)."""
    tls = NodeTLS(Ed25519PrivateKey.generate() if key is None else key, reactor)
    return wrapClientTLS(tls, TCP4ClientEndpoint(reactor, "127.0.0.1", port))


@pytest_twisted.ensureDeferred
async def test_identifier_theft_refused() -> None:
    """
    Finding 1: while B is offline, a fresh key claims B's identifier to A.  A refuses it at
    the handshake (counted, discouraged); B, back with its key, is trusted again, not refused
    as a duplicate.
    """
    a = PeerNetwork(reactor, display_name="a")
    b_key = Ed25519PrivateKey.generate()
    b = PeerNetwork(reactor, display_name="b", private_key=b_key)
    await a.listen(LISTEN)
    try:
        channel = await b.connect(GenericPeer("127.0.0.1", a.listening_port))
        await channel.when_trusted()
        await b.close()  # B goes offline
        await eventually(lambda: not a.active_peer_channels)

        impostor = PeerChannel("p2pnet", clock=reactor, local_identity=IdentifierPacket(
            "connect", 9, "", source_origin_identifier=b.identifier))
        await connectProtocol(tls_endpoint(a.listening_port), impostor)
        await impostor.when_closed()
        assert a.counters["identities_unbound"] == 1
        assert a.counters["misbehaving_peers"] == 1
        assert a.active_peer_channels == []
        assert not impostor.is_trusted

        # Discouragement only bites when the node is half full: B (same address) gets in.
        back = PeerNetwork(reactor, display_name="b", private_key=b_key)
        try:
            channel = await back.connect(GenericPeer("127.0.0.1", a.listening_port))
            await channel.when_trusted()
            await eventually(lambda: len(a.trusted_peer_channels) == 1)
            [inbound] = a.trusted_peer_channels
            assert inbound.peer.identifier == b.identifier
            assert a.counters["duplicates_refused"] == 0
        finally:
            await back.close()
    finally:
        await a.close()


@pytest_twisted.ensureDeferred
async def test_relay_not_trusted_as_the_relayed_node() -> None:
    """
    Finding 2: an attacker holds TLS sessions with C and with A, each under its own key, and
    forwards to A what C sends it (C's Identity first).  A does not trust it as C.
    """
    a = PeerNetwork(reactor, display_name="a")
    c = PeerNetwork(reactor, display_name="c")
    await a.listen(LISTEN)
    await c.listen(LISTEN)
    relay_key = Ed25519PrivateKey.generate()
    to_c = RawPeer()
    to_a = RawPeer()
    try:
        await connectProtocol(tls_endpoint(c.listening_port, relay_key), to_c)
        await eventually(lambda: len(to_c.received) > 4)
        [identity] = get_codec("p2pnet").decoder().feed(bytes(to_c.received))[:1]
        assert identity.source_origin_identifier == c.identifier
        await connectProtocol(tls_endpoint(a.listening_port, relay_key), to_a)
        to_a.transport.write(bytes(to_c.received))  # C's Identity, as C sent it
        await to_a.lost
        assert a.counters["identities_unbound"] == 1
        assert a.trusted_peer_channels == []
        assert all(ch.peer.identifier != c.identifier for ch in a.active_peer_channels)
    finally:
        to_c.transport.loseConnection()
        await a.close()
        await c.close()


@pytest_twisted.ensureDeferred
async def test_plaintext_and_tls_do_not_mix() -> None:
    """A plaintext node dialling a TLS node is refused; a TLS node dialling it gets nowhere."""
    secure = PeerNetwork(reactor, display_name="secure")
    plain = PeerNetwork(reactor, transport="tcp", trust_protocol=always_trust)
    await secure.listen(LISTEN)
    await plain.listen(LISTEN)
    try:
        with pytest.raises(ChannelClosed):
            await plain.connect(GenericPeer("127.0.0.1", secure.listening_port), timeout=5)
        with pytest.raises(ChannelClosed):
            await secure.connect(GenericPeer("127.0.0.1", plain.listening_port), timeout=5)
        await eventually(lambda: not secure.active_peer_channels and not secure.pending_channels)
        assert secure.trusted_peer_channels == []
        assert plain.trusted_peer_channels == []
    finally:
        await secure.close()
        await plain.close()


@pytest_twisted.ensureDeferred
async def test_goodbye_reaches_the_peer_over_tls() -> None:
    """
    A channel closed gracefully over TLS sends its Disconnect, then TLS's close alert: the peer
    hears "disconnected by peer" (not a connection lost in a non-clean fashion), and the side
    that closed logs no unhandled error (the TCP socket is not half-closed beneath TLS).
    """
    server = PeerNetwork(reactor, display_name="server")
    client = PeerNetwork(reactor, display_name="client")
    await server.listen(LISTEN)
    removed: list[PeerChannel] = []
    server.peer_removed.add(removed.append)
    try:
        channel = await client.connect(GenericPeer("127.0.0.1", server.listening_port),
                                       timeout=5)
        await channel.when_trusted()
        await channel.close("done for today")
        await eventually(lambda: bool(removed))
        assert removed[0].close_reason == "disconnected by peer"
        assert channel.close_reason == "done for today"
    finally:
        await client.close()
        await server.close()
