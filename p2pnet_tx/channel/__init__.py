# -*- test-case-name: tests.test_channel -*-
"""
The channel: one connection to a peer, as a Twisted Protocol, and its parts.

  - L{PeerChannel} (C{protocol.py}) wires the parts together and runs the trust gate;
  - C{lifecycle.py}: the Automat machine of trust and closing;
  - L{ChannelTimers} (C{timers.py}): idle, keep-alive and partial-frame deadlines;
  - L{ChannelWriter} (C{writer.py}): sending, queueing and backpressure;
  - L{ChannelLimits} (C{limits.py}): the limits and timeouts, as one frozen value;
  - L{LogLimiter} (C{loglimit.py}): the log budget of the lines a peer causes.
"""

from p2pnet_tx.channel.limits import DEFAULT_MAX_QUEUED_BYTES, ChannelLimits
from p2pnet_tx.channel.loglimit import LogLimiter
from p2pnet_tx.channel.protocol import (
    KEEPALIVE_MESSAGE,
    ChannelOwner,
    PeerChannel,
    Traffic,
    TrustProtocol,
)
from p2pnet_tx.channel.timers import ChannelTimers, DeadlineQueue
from p2pnet_tx.channel.writer import ChannelWriter

__all__ = [
    "DEFAULT_MAX_QUEUED_BYTES",
    "KEEPALIVE_MESSAGE",
    "ChannelLimits",
    "ChannelOwner",
    "ChannelTimers",
    "ChannelWriter",
    "DeadlineQueue",
    "LogLimiter",
    "PeerChannel",
    "Traffic",
    "TrustProtocol",
]
