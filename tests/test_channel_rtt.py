# -*- test-case-name: tests.test_channel_rtt -*-
"""
Tests for the keep-alive echo of L{p2pnet_tx.channel.PeerChannel}: how a channel of the p2pnet
wire times the round trip to its peer (C{echo_rtt}, C{rtt}), how it echoes its peer's
keep-alives (once, never an echo, only to a trusted peer with nothing queued), that a channel
of the dotnet wire does neither, and the byte totals a channel's owner keeps (L{Traffic}).
Everything runs on a L{Clock} with L{StringTransport}s or in-memory pairs.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.channel import (
    KEEPALIVE_MESSAGE,
    ChannelLimits,
    ChannelOwner,
    PeerChannel,
    Traffic,
)
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.packets import IdentifierPacket, Packet, PureMessagePacket
from p2pnet_tx.testing import RecordingHandler, connected_channels
from p2pnet_tx.wire import get_codec

INTERVAL = ChannelLimits().keepalive_interval or 30.0
T0 = datetime(2026, 11, 23, 18, 56, 42, 123456, tzinfo=timezone.utc)


def frame(packet: Packet, wire: str = "p2pnet") -> bytes:
    """One frame of C{packet}."""
    return get_codec(wire).encode(packet)


def written(transport: StringTransport, wire: str = "p2pnet") -> list[Any]:
    """Decode what a channel wrote, and forget it."""
    packets = get_codec(wire).decoder().feed(transport.value())
    transport.clear()
    return packets


def keepalive(identifier: str, when: datetime) -> PureMessagePacket:
    """A keep-alive that says it was sent by C{identifier} at C{when}."""
    return PureMessagePacket(KEEPALIVE_MESSAGE, source_origin_identifier=identifier,
                             source_origin_time=when)


def open_channel(
    wire: str = "p2pnet", trust: bool = True, owner: ChannelOwner | None = None,
    transport: StringTransport | None = None,
) -> tuple[PeerChannel, StringTransport, Clock]:
    """
    A channel of node C{"node-a"} connected to a peer C{"node-b"}: on the p2pnet wire both
    sides' Identity packets are exchanged; C{trust} decides whether the peer ends up trusted.
    """
    clock = Clock()
    clock.advance(1_800_000_000.25)  # a real time of day: keep-alives carry it
    p2pnet = wire == "p2pnet"
    channel = PeerChannel(
        wire, PacketHandleProtocol(),
        (lambda c: succeed(True)) if trust else (lambda c: Deferred()),
        clock=clock, owner=owner,
        limits=ChannelLimits(idle_timeout=None, handshake_timeout=10_000.0),
        local_identity=(IdentifierPacket("connect", 8051, "", source_origin_identifier="node-a")
                        if p2pnet else None),
        await_identity=p2pnet, local_identifier="node-a",
    )
    transport = StringTransport() if transport is None else transport
    channel.makeConnection(transport)
    if p2pnet:
        channel.dataReceived(frame(IdentifierPacket("connect", 9000, "", source_origin_time=T0,
                                                    source_origin_identifier="node-b")))
    elif trust:
        channel.trust()
    transport.clear()
    return channel, transport, clock


class KeepaliveProbeTests(SynchronousTestCase):
    """A p2pnet channel's keep-alive is a probe: its echo times the round trip."""

    def test_echo_times_the_round_trip(self) -> None:
        """
        The keep-alive carries the channel's identifier and its time to the microsecond; the
        peer sends it back unchanged, and the time between is C{echo_rtt} and C{rtt}.
        """
        channel, transport, clock = open_channel()
        self.assertIsNone(channel.echo_rtt)
        clock.advance(INTERVAL)
        [probe] = written(transport)
        self.assertEqual(probe.message, KEEPALIVE_MESSAGE)
        self.assertEqual(probe.source_origin_identifier, "node-a")
        self.assertEqual(probe.source_origin_time,
                         datetime.fromtimestamp(clock.seconds(), timezone.utc))
        clock.advance(0.125)
        channel.dataReceived(frame(probe))
        self.assertEqual(channel.echo_rtt, 0.125)
        self.assertEqual(channel.rtt, 0.125)
        self.assertEqual(written(transport), [], "an echo of ours is never echoed back")

    def test_each_round_measures_again(self) -> None:
        """The latest echo's round trip replaces the one before."""
        channel, transport, clock = open_channel()
        for delay in (0.5, 0.03125):
            clock.advance(INTERVAL)
            [probe] = written(transport)
            clock.advance(delay)
            channel.dataReceived(frame(probe))
            self.assertEqual(channel.echo_rtt, delay)

    def test_echo_of_an_older_keepalive_ignored(self) -> None:
        """An echo that does not carry the time of the last packet sent is not timed."""
        channel, transport, clock = open_channel()
        clock.advance(INTERVAL)
        [probe] = written(transport)
        clock.advance(0.5)
        channel.send_message("something else went out since")
        clock.advance(1.5)
        channel.dataReceived(frame(probe))
        self.assertIsNone(channel.echo_rtt)

    def test_forged_echo_ignored(self) -> None:
        """An "echo" with our identifier but a time we never sent is ignored and not echoed."""
        channel, transport, clock = open_channel()
        clock.advance(INTERVAL)
        [probe] = written(transport)
        for when in (datetime(2020, 1, 1, tzinfo=timezone.utc),
                     probe.source_origin_time.replace(microsecond=0)):
            channel.dataReceived(frame(keepalive("node-a", when)))
        self.assertIsNone(channel.echo_rtt)
        self.assertEqual(written(transport), [])

    def test_rtt_none_before_any_echo(self) -> None:
        """Without an echo, and with no socket to ask the kernel, the RTT is unknown."""
        channel, _transport, clock = open_channel()
        clock.advance(INTERVAL)
        self.assertIsNone(channel.echo_rtt)
        self.assertIsNone(channel.rtt)

    def test_kernel_rtt_is_the_fallback(self) -> None:
        """Until an echo is timed, C{rtt} is the kernel's smoothed RTT of the socket."""
        channel, transport, clock = open_channel(transport=SocketTransport(rtt_micros=1500))
        self.assertIsNone(channel.echo_rtt)
        self.assertEqual(channel.rtt, 0.0015)
        clock.advance(INTERVAL)
        [probe] = written(transport)
        clock.advance(0.25)
        channel.dataReceived(frame(probe))
        self.assertEqual(channel.rtt, 0.25, "the echo's figure wins")

    def test_last_seen_moves_with_any_bytes(self) -> None:
        """The time the peer was last seen is when its last bytes arrived, echoes included."""
        channel, transport, clock = open_channel()
        start = clock.seconds()
        self.assertEqual(channel.last_incoming_data_received, start)
        clock.advance(INTERVAL)
        [probe] = written(transport)
        clock.advance(1.0)
        channel.dataReceived(frame(probe))
        self.assertEqual(channel.last_incoming_data_received, start + INTERVAL + 1.0)


class KeepaliveEchoTests(SynchronousTestCase):
    """A p2pnet channel echoes its trusted peer's keep-alives, once each, and nothing more."""

    def test_peer_keepalive_echoed_unchanged(self) -> None:
        """The peer's keep-alive goes back as it came: its identifier, its time."""
        channel, transport, _clock = open_channel()
        theirs = keepalive("node-b", datetime(2027, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc))
        channel.dataReceived(frame(theirs))
        self.assertEqual(written(transport), [theirs])
        self.assertEqual(channel.counters["keepalives_out"], 1)

    def test_each_keepalive_echoed_once(self) -> None:
        """Two keep-alives get two echoes, one each, in order."""
        channel, transport, _clock = open_channel()
        first = keepalive("node-b", datetime(2027, 1, 1, tzinfo=timezone.utc))
        second = keepalive("node-b", datetime(2027, 1, 1, 0, 0, 30, tzinfo=timezone.utc))
        channel.dataReceived(frame(first) + frame(second))
        self.assertEqual(written(transport), [first, second])

    def test_echo_does_not_move_the_keepalive_deadline(self) -> None:
        """An echo is no sign of life of ours: our own keep-alive still goes out on time."""
        channel, transport, clock = open_channel()
        clock.advance(INTERVAL - 1)
        channel.dataReceived(frame(keepalive("node-b", datetime(2027, 1, 1,
                                                                 tzinfo=timezone.utc))))
        written(transport)
        clock.advance(1)
        [probe] = written(transport)
        self.assertEqual(probe.source_origin_identifier, "node-a")

    def test_untrusted_peer_not_echoed(self) -> None:
        """A peer still in its handshake gets no echo."""
        channel, transport, _clock = open_channel(trust=False)
        self.assertFalse(channel.is_trusted)
        channel.dataReceived(frame(keepalive("node-b", datetime(2027, 1, 1,
                                                                 tzinfo=timezone.utc))))
        self.assertEqual(written(transport), [])

    def test_no_echo_while_writes_wait(self) -> None:
        """With the transport full (frames queued), an echo is not sent nor queued."""
        channel, transport, _clock = open_channel()
        transport.producer.pauseProducing()
        channel.send_message("queued")
        queued = channel.queued_bytes
        self.assertGreater(queued, 0)
        channel.dataReceived(frame(keepalive("node-b", datetime(2027, 1, 1,
                                                                 tzinfo=timezone.utc))))
        self.assertEqual(channel.queued_bytes, queued)
        self.assertEqual(written(transport), [])

    def test_handlers_still_see_keepalives(self) -> None:
        """An echo does not take the keep-alive from the handlers (they decide what to do)."""
        channel, _transport, _clock = open_channel()
        handler = RecordingHandler()
        channel.handlers.set_handler(PureMessagePacket.kind, handler)
        theirs = keepalive("node-b", datetime(2027, 1, 1, tzinfo=timezone.utc))
        channel.dataReceived(frame(theirs))
        self.assertEqual(handler.packets, [theirs])
        self.assertIsNone(channel.last_useful_packet, "a keep-alive is no useful packet")

    def test_two_channels_time_each_other_without_a_loop(self) -> None:
        """
        Two p2pnet channels joined in memory each send one keep-alive and echo the other's,
        then fall quiet: four keep-alive frames in all, and each side knows its RTT.
        """
        clock = Clock()

        def make(name: str) -> PeerChannel:
            return PeerChannel(
                "p2pnet", PacketHandleProtocol(), lambda c: succeed(True), clock=clock,
                limits=ChannelLimits(idle_timeout=None),
                local_identity=IdentifierPacket("connect", 8051, "",
                                                source_origin_identifier=name),
                await_identity=True, local_identifier=name,
            )

        server, client, pump = connected_channels(lambda: make("server"),
                                                  lambda: make("client"), clock)
        pump.flush()
        self.assertTrue(server.is_trusted and client.is_trusted)
        clock.advance(INTERVAL)
        for _ in range(10):
            pump.flush()
        for side in (server, client):
            self.assertEqual(side.counters["keepalives_out"], 2, side)
            self.assertEqual(side.counters["keepalives_in"], 2, side)
            self.assertEqual(side.echo_rtt, 0.0)


class DotnetKeepaliveTests(SynchronousTestCase):
    """On the dotnet wire (.NET peers) keep-alives stay plain: no probe, no echo."""

    def test_dotnet_peer_keepalive_not_echoed(self) -> None:
        """A .NET peer's "Pinging" gets no answer."""
        channel, transport, _clock = open_channel("dotnet")
        self.assertTrue(channel.is_trusted)
        channel.dataReceived(frame(keepalive("dotnet-peer", datetime(2027, 1, 1,
                                                                      tzinfo=timezone.utc)),
                                   "dotnet"))
        self.assertEqual(written(transport, "dotnet"), [])

    def test_dotnet_keepalive_is_not_timed(self) -> None:
        """The dotnet channel's own keep-alive, sent back, times nothing."""
        channel, transport, clock = open_channel("dotnet")
        clock.advance(INTERVAL)
        [ping] = written(transport, "dotnet")
        self.assertEqual(ping.message, KEEPALIVE_MESSAGE)
        channel.dataReceived(frame(ping, "dotnet"))
        self.assertIsNone(channel.echo_rtt)
        self.assertEqual(written(transport, "dotnet"), [])


class TrafficTests(SynchronousTestCase):
    """An owner's L{Traffic} counts the bytes all its channels read and write."""

    def test_bytes_counted_in_the_owner(self) -> None:
        """Every byte read, and every frame written (keep-alives, echoes, goodbye) counts."""
        owner = ChannelOwner()
        channel, transport, clock = open_channel(owner=owner)
        transport.clear()
        before_in, before_out = owner.traffic.bytes_in, owner.traffic.bytes_out
        self.assertGreater(before_in, 0)  # the peer's Identity
        self.assertGreater(before_out, 0)  # ours
        theirs = frame(keepalive("node-b", datetime(2027, 1, 1, tzinfo=timezone.utc)))
        channel.dataReceived(theirs)
        channel.send_message("hello")
        clock.advance(INTERVAL)
        channel.close("done")
        self.assertEqual(owner.traffic.bytes_in - before_in, len(theirs))
        self.assertEqual(owner.traffic.bytes_out - before_out, len(transport.value()))

    def test_channels_share_their_owner_totals(self) -> None:
        """Two channels of one owner add up in one L{Traffic}; a lone channel has its own."""
        owner = ChannelOwner()
        open_channel(owner=owner)
        total = owner.traffic.bytes_in
        open_channel(owner=owner)
        self.assertEqual(owner.traffic.bytes_in, 2 * total)
        self.assertIsInstance(owner.traffic, Traffic)
        self.assertIs(owner.traffic, owner.traffic)
        lone, _, _ = open_channel()
        self.assertEqual(owner.traffic.bytes_in, 2 * total)
        self.assertIsNot(lone._traffic, owner.traffic)


class SocketTransport(StringTransport):
    """A L{StringTransport} over a fake socket whose TCP_INFO says the RTT is C{rtt_micros}."""

    def __init__(self, rtt_micros: int) -> None:
        super().__init__()
        self._socket = _FakeSocket(rtt_micros)

    def getHandle(self) -> Any:
        return self._socket


class _FakeSocket:
    def __init__(self, rtt_micros: int) -> None:
        self._rtt_micros = rtt_micros

    def fileno(self) -> int:
        return 3

    def getsockopt(self, level: int, option: int, length: int) -> bytes:
        info = bytearray(104)
        struct.pack_into("=I", info, 68, self._rtt_micros)
        return bytes(info)
