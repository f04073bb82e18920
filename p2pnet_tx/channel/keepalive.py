# -*- test-case-name: tests.test_channel_rtt -*-
"""
Keep-alives: what a channel sends when it has said nothing for a while, how it echoes its
peer's, and the round-trip time it learns from the echoes of its own.

A channel whose peer introduces itself with an Identity (the p2pnet wire) stamps each
keep-alive with its identifier and the time it sent it; the peer sends it back unchanged, and
the time between is the round trip (L{PeerChannel.echo_rtt
<p2pnet_tx.channel.PeerChannel.echo_rtt>}).  A .NET peer (the dotnet wire) echoes nothing: its
channel sends plain keep-alives and is never sent an echo.

These are functions of the channel, not an object of it: an idle channel holds nothing for
them but the times its L{ChannelTimers <p2pnet_tx.channel.ChannelTimers>} keep.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from p2pnet_tx.packets import PureMessagePacket

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel

KEEPALIVE_MESSAGE = "Pinging"
"""The text of the PureMessage a channel sends when it has said nothing for a while."""


def keepalive_due(channel: PeerChannel) -> None:
    """
    The channel said nothing for C{limits.keepalive_interval} (its timers call this): send a
    keep-alive, unless data is queued or the channel is not open.
    """
    writer = channel._writer
    if writer is None or writer.queued or not channel._open:
        return  # queued data is on its way: the peer will hear from us
    if echoes_keepalives(channel):
        # Its time, to the microsecond, is what its echo is known by (see
        # keepalive_received); it is the time the timers keep as last_sent.
        now = channel.clock.seconds()
        channel._timers.last_sent = now  # type: ignore[union-attr]
        packet = PureMessagePacket(KEEPALIVE_MESSAGE,
                                   source_origin_identifier=channel.local_identifier,
                                   source_origin_time=keepalive_time(now))
    else:
        packet = PureMessagePacket(KEEPALIVE_MESSAGE,
                                   source_origin_identifier=channel.local_identifier)
    write_keepalive(channel, channel.codec.encode(packet))


def echoes_keepalives(channel: PeerChannel) -> bool:
    """Whether C{channel} times its keep-alives' echoes and echoes its peer's."""
    # Peers that introduce themselves with an Identity (the p2pnet wire) echo keep-alives;
    # .NET peers (the dotnet wire, no Identity) do not, and are never sent an echo.  An
    # anonymous channel could not tell its keep-alives' echoes from its peer's.
    return channel._await_identity and bool(channel.local_identifier)


def keepalive_received(channel: PeerChannel, packet: PureMessagePacket) -> None:
    """
    A keep-alive arrived (the channel's receiver calls this for each one, before its
    handler).  On a channel that echoes keep-alives, it is one of two things, told apart by
    the identifier it carries:

      - ours (our own identifier): the echo of a keep-alive of ours.  If it carries the
        time of the last packet we sent, that was the keep-alive it answers, and its round
        trip is timed (L{PeerChannel.echo_rtt <p2pnet_tx.channel.PeerChannel.echo_rtt>}); an
        echo of anything older is ignored.
      - the peer's: its keep-alive, sent back to it unchanged, once, if the peer is trusted
        and nothing waits in our send queue.  The echo carries the peer's identifier, so
        the peer never echoes it: an echo is never echoed, and a peer gets back no more
        than it sent.
    """
    if not echoes_keepalives(channel):
        return
    if packet.source_origin_identifier == channel.local_identifier:
        timers = channel._timers
        if timers is not None and packet.source_origin_time == keepalive_time(
            timers.last_sent
        ):
            timers.echo_received(channel.clock.seconds())
    elif channel._trusted and channel._open and channel.is_writable:
        write_keepalive(channel, channel.codec.encode(packet))


def write_keepalive(channel: PeerChannel, frame: bytes) -> None:
    """Write a keep-alive or its echo: past the send cap, and moving no deadline."""
    channel._writer.write_control(frame)  # type: ignore[union-attr]
    channel._traffic.bytes_out += len(frame)
    channel.counters["keepalives_out"] += 1


def keepalive_time(seconds: float) -> datetime:
    """The time a keep-alive sent at C{seconds} (on the channel's clock) carries."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def echo_rtt(channel: PeerChannel) -> float | None:
    """
    The round-trip time, in seconds, of the last keep-alive C{channel}'s peer echoed, or
    C{None}.
    """
    return channel._timers.rtt if channel._timers is not None else None


def rtt(channel: PeerChannel) -> float | None:
    """
    The round-trip time to C{channel}'s peer, in seconds: L{echo_rtt}, or else the kernel's
    smoothed RTT of the TCP connection (L{kernel_rtt <p2pnet_tx.network.rtt.kernel_rtt>});
    C{None} where neither is known.
    """
    seconds = channel.echo_rtt
    if seconds is not None:
        return seconds
    # Imported here: the network package imports this one.
    from p2pnet_tx.network.rtt import kernel_rtt

    return kernel_rtt(channel.transport)
