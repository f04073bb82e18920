"""
The dotnet mode against the .NET model (tests/interop/dotnet_peer.py), on a clock: each test
is one finding of issue 9, driven through a real L{PeerChannel} built as a dotnet network
builds it.
"""

from __future__ import annotations

import os

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import PeerChannel
from p2pnet_tx.network import PeerNetwork
from p2pnet_tx.packets import DataTransmissionPacket, Packet
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.trust import ping_trust
from p2pnet_tx.wire import get_codec
from p2pnet_tx.wire_mode import DOTNET
from tests.interop.dotnet_peer import HELLO, DotnetNode

STEP = 0.01


class Link:
    """Our channel and a .NET model channel, joined by two StringTransports on one clock."""

    def __init__(self, ping_interval: float = 3.0, dotnet_first: float = 0.0,
                 clock: Clock | None = None, channel: PeerChannel | None = None,
                 dotnet_ip: str = "127.0.0.1") -> None:
        self.clock = Clock() if clock is None else clock
        self.node = DotnetNode(self.clock, ping_interval=ping_interval, local_ip=dotnet_ip)
        ours = IPv4Address("TCP", "127.0.0.2", 40000)
        theirs = IPv4Address("TCP", dotnet_ip, 8051)
        self.ours = channel or PeerChannel(
            get_codec("dotnet"), None, ping_trust, clock=self.clock,
            limits=DOTNET.channel_limits, writer_class=DOTNET.writer_class,
            says_goodbye=DOTNET.says_goodbye,
        )
        self.received: list[Packet] = []
        self.ours.on_data_received.add(lambda channel, packet: self.received.append(packet))
        self.dotnet = self.node.buildProtocol(ours)
        self.our_transport = StringTransport(hostAddress=ours, peerAddress=theirs)
        self.their_transport = StringTransport(hostAddress=theirs, peerAddress=ours)
        self.dotnet.makeConnection(self.their_transport)
        self.run(dotnet_first)
        self.ours.makeConnection(self.our_transport)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / STEP)):
            self.clock.advance(STEP)
            self.pump()

    def pump(self) -> None:
        # Each side's writes reach the other at once, in the pieces they were written in.
        for source, sink in ((self.our_transport, self.dotnet),
                             (self.their_transport, self.ours)):
            data = source.value()
            if data:
                source.clear()
                if sink.transport is not None and not sink.transport.disconnecting:
                    sink.dataReceived(data)

    def trusted_both_ways(self) -> bool:
        return self.ours.is_trusted and self.dotnet.trusted


class TrustTests(SynchronousTestCase):
    """Finding 1: ping trust reached both ways within 30 s, at any small skew."""

    def check(self, interval: float, dotnet_first: float) -> None:
        link = Link(interval, dotnet_first)
        elapsed = 0.0
        while not link.trusted_both_ways() and elapsed < 30:
            link.run(0.5)
            elapsed += 0.5
        self.assertTrue(link.ours.is_trusted, f"we never trusted .NET ({interval} s)")
        self.assertTrue(link.dotnet.trusted, f".NET never trusted us ({interval} s)")
        self.assertIsNone(link.dotnet.handler_error)
        self.assertFalse(link.ours.is_closed)

    def test_skews_we_dial(self) -> None:
        for interval in (2.9, 3.0, 3.1):
            self.check(interval, 0.0)

    def test_skews_dotnet_dials(self) -> None:
        # The dialling side's channel opens first; .NET's ping reaches us before ours goes.
        for interval in (2.9, 3.0, 3.1):
            self.check(interval, 0.2)


class ConnectedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.link = Link()
        self.link.run(30)
        self.assertTrue(self.link.trusted_both_ways())

    def test_ten_minutes_idle(self) -> None:
        """Finding 2: no idle close; the channel is up after 10 minutes of .NET's silence."""
        self.link.run(600)
        self.assertFalse(self.link.ours.is_closed)
        self.assertIsNone(self.link.dotnet.handler_error)
        self.assertFalse(self.link.our_transport.disconnecting)

    def test_back_to_back_messages_delivered_intact(self) -> None:
        """Findings 5 and 2.7: two sends at once arrive in separate reads, text intact."""
        texts = ["<>&'+\"`\\ first", "second: é 中 \U0001F600"]
        for text in texts:
            self.link.ours.send_message(text)
        self.link.run(2)
        self.assertIsNone(self.link.dotnet.handler_error)
        self.assertEqual(self.link.dotnet.messages[-2:], texts)
        self.assertIn(HELLO, [getattr(p, "message", None) for p in self.link.received])

    def test_messages_from_dotnet_intact(self) -> None:
        self.link.node.send_message("<>&'+\"` é 中")
        self.link.run(1)
        self.assertEqual(self.link.received[-1].message, "<>&'+\"` é 中")

    def test_close_sends_no_disconnect(self) -> None:
        """Finding 3: the socket is simply closed; .NET's handler lives."""
        self.link.ours.close("bye")
        self.link.run(1)
        self.assertTrue(self.link.our_transport.disconnecting)
        self.assertIsNone(self.link.dotnet.handler_error)
        self.assertEqual(self.link.ours.counters["packets_out.Disconnect"], 0)

    def test_two_mib_file_from_dotnet(self) -> None:
        """Finding 6: a 2 MiB file, sent whole and untagged, is received; the peer stays."""
        data = os.urandom(2 * 1024 * 1024)
        self.link.node.distribute_file(data)
        self.link.run(1)
        files = [p for p in self.link.received if isinstance(p, DataTransmissionPacket)]
        self.assertEqual([f.payload for f in files], [data])
        self.assertFalse(self.link.ours.is_closed)




class PeerGroupTests(SynchronousTestCase):
    """
    Finding 7: the PeerGroup a network sends a newly trusted .NET peer reaches it, whichever
    side trusts first.  .NET's gate (PeerChannelBase.HandlePeerGroupPacket) drops a PeerGroup
    from a peer it does not trust yet, and .NET never sends an enhanced packet that would
    show it trusts us; but it trusts at its 3rd read with "Ping from" (PeerNetwork.cs,
    DefaultPingHandler), and our pacing makes each ping a read of its own: so the network
    sends the list once ping trust has sent its 3rd ping, queued behind it.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = PeerNetwork(self.reactor, wire="dotnet", trust_protocol="ping",
                                   identifier="python_node")
        # A first .NET peer, trusted both ways: the one the list will name.
        self.first = self.link("127.0.0.3", 3.0)
        self.first.run(30)
        self.assertTrue(self.first.trusted_both_ways())

    def link(self, ip: str, interval: float) -> Link:
        channel = self.network.make_channel(True, GenericPeer(ip, 8051))
        return Link(interval, clock=self.reactor, channel=channel, dotnet_ip=ip)

    def check(self, interval: float, we_trust_first: bool) -> None:
        link = self.link("127.0.0.4", interval)
        first = None
        for _ in range(60):
            link.run(0.5)
            if first is None and (link.ours.is_trusted or link.dotnet.trusted):
                first = "we" if link.ours.is_trusted and not link.dotnet.trusted else "dotnet"
            if link.trusted_both_ways() and link.dotnet.peer_groups:
                break
        link.run(2)
        self.assertEqual(first, "we" if we_trust_first else "dotnet")
        self.assertTrue(link.trusted_both_ways())
        self.assertIsNone(link.dotnet.handler_error)
        [group] = link.dotnet.peer_groups
        self.assertEqual([(p["Address"], p["Port"]) for p in group["peers"]],
                         [("127.0.0.3", 8051)])
        self.assertEqual(link.ours.counters["packets_out.PeerGroup"], 1)

    def test_we_trust_first(self) -> None:
        """.NET pings faster (2.9 s): we trust it before it trusts us; the list waits."""
        self.check(2.9, we_trust_first=True)

    def test_dotnet_trusts_first(self) -> None:
        """.NET pings slower (3.1 s): it trusts us first; the list goes when we trust it."""
        self.check(3.1, we_trust_first=False)

    def test_list_not_sent_before_dotnet_trusts(self) -> None:
        """While .NET does not trust us yet, no PeerGroup is sent (it would be dropped)."""
        link = self.link("127.0.0.4", 2.9)
        for _ in range(100):
            link.run(0.1)
            if link.ours.is_trusted:
                break
        self.assertTrue(link.ours.is_trusted)
        self.assertFalse(link.ours.is_trusted_by_peer)
        self.assertEqual(link.ours.counters["packets_out.PeerGroup"], 0)
