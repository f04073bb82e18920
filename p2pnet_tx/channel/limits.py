# -*- test-case-name: tests.test_channel -*-
"""
L{ChannelLimits}: the limits and timeouts one channel enforces.
"""

from __future__ import annotations

import attrs

DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""The default cap on bytes queued for one peer: generous, so a reading peer is never hurt."""


@attrs.frozen
class ChannelLimits:
    """
    The limits a channel enforces; times in seconds on the channel's clock, sizes in bytes.

    @ivar handshake_timeout: from connection to trusted (and to the peer's Identity, when
        awaited); past it the peer is dropped.
    @ivar idle_timeout: with nothing received for this long, the channel closes; None: never.
    @ivar keepalive_interval: with nothing sent for this long, send a keep-alive ping; None:
        never.
    @ivar partial_frame_timeout: a frame must complete this long after its first byte.
    @ivar max_frame_size: the largest frame accepted from a trusted peer.
    @ivar max_untrusted_frame_size: the largest frame accepted before trust: 4 KiB, room for
        everything a node sends before trust (an Identity, the handshake's nonce and proof, a
        ping) and little more, so an unknown peer costs little to read.
    @ivar max_malformed: malformed frames tolerated; reaching it drops the peer.
    @ivar max_queued_bytes: bytes the channel queues for a peer beyond what the transport
        buffers.  A send that would go past it raises L{p2pnet_tx.errors.SendBufferFull} and
        the channel stays open: the cap protects the node's memory, never a reading peer.
    @ivar write_stall_timeout: a peer that drains nothing of what was written to it for this
        long is not reading: the channel aborts.  "Drains" is what Twisted reports: its
        transport resumes a producer only once its whole buffer (64 KiB, plus the batch that
        filled it) is written, so a peer must take about 128 KiB within this time to count as
        reading: about 6 KiB/s at the default 20 s.
    @ivar close_timeout: how long a closing channel waits for its writes to drain.
    @ivar drop_unknown_packets: drop a trusted peer on an unknown packet type (default: count
        and ignore it, for forward compatibility).  Before trust an unknown type always drops
        the peer.
    @ivar peer_log_burst: the lines that a peer causes which the channel logs at once, at
        least 1; warnings have a budget of this many, debug and info lines another.
    @ivar peer_log_window: the seconds, more than 0, in which a spent budget fills up again,
        line by line.  The lines over budget are counted, and one line says how many when
        logging resumes or when the channel closes (see L{PeerChannel.log_peer
        <p2pnet_tx.channel.PeerChannel.log_peer>}).
    """

    handshake_timeout: float = 10.0
    idle_timeout: float | None = 90.0
    keepalive_interval: float | None = 30.0
    partial_frame_timeout: float | None = 30.0
    max_frame_size: int = 1024 * 1024
    max_untrusted_frame_size: int = 4 * 1024
    max_malformed: int = 1
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    write_stall_timeout: float = 20.0
    close_timeout: float = 5.0
    drop_unknown_packets: bool = False
    peer_log_burst: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    peer_log_window: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
