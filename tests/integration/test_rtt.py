"""
The keep-alive echo between two real nodes over TLS on loopback: each times its round trip
to the other, the kernel's figure stands in until then, and the echoes stop there.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor

from p2pnet_tx.channel import ChannelLimits
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.peer import GenericPeer

from .support import eventually

LISTEN = "tcp:0:interface=127.0.0.1"
INTERVAL = 0.2


@pytest_twisted.ensureDeferred
async def test_nodes_time_each_other() -> None:
    """
    Two nodes whose keep-alive interval is 0.2 s: before any echo, C{rtt} is the kernel's;
    after one, each side's C{echo_rtt} is a loopback round trip, and each side has sent no
    more keep-alives than its own and one echo per keep-alive of its peer.
    """
    limits = ChannelLimits(keepalive_interval=INTERVAL)
    a = PeerNetwork(reactor, display_name="a", channel_limits=limits)
    b = PeerNetwork(reactor, display_name="b", channel_limits=limits)
    await a.listen(LISTEN)
    try:
        outbound = await b.connect(GenericPeer("127.0.0.1", a.listening_port))
        await outbound.when_trusted()
        await eventually(lambda: a.trusted_peer_channels, timeout=10)
        [inbound] = a.trusted_peer_channels
        if outbound.echo_rtt is None:
            assert outbound.rtt is not None, "Linux tells the kernel's RTT of a TCP socket"
        await eventually(lambda: inbound.echo_rtt is not None and outbound.echo_rtt is not None,
                         timeout=10)
        for channel in (inbound, outbound):
            assert 0 <= channel.echo_rtt < 2.0, channel.echo_rtt
            assert channel.rtt == channel.echo_rtt
        await b.close()
        await eventually(lambda: not a.active_peer_channels, timeout=10)
        # What each side sent as Messages: its keep-alives and its echoes of the other's.
        # With no echo of an echo, that is at most twice what the other side sent.
        sent_a = a.counters["keepalives_out"]
        sent_b = b.counters["keepalives_out"]
        assert sent_a >= 2 and sent_b >= 2, (sent_a, sent_b)
        assert sent_a <= 2 * sent_b + 2 and sent_b <= 2 * sent_a + 2, (sent_a, sent_b)
    finally:
        await a.close()
        await b.close()
