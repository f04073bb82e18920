# -*- test-case-name: tests.test_channel -*-
"""
The channel: one connection to a peer, as a Twisted Protocol, and its parts.

  - L{PeerChannel} (C{protocol.py}) wires the parts together and runs the trust gate;
  - C{lifecycle.py}: the Automat machine of trust and closing;
  - L{ChannelTimers} (C{timers.py}): idle, keep-alive and partial-frame deadlines;
  - L{ChannelWriter} (C{writer.py}): sending, queueing and backpressure;
  - C{keepalive.py}: keep-alives, their echoes and the round-trip time;
  - C{events.py}: the waiters for trust, the close and the peer's trust in us;
  - L{ChannelLimits} (C{limits.py}): the limits and timeouts, as one frozen value;
  - L{LogLimiter} (C{loglimit.py}): the log budget of the lines a peer causes;
  - L{ChannelOwner} and L{Traffic} (C{owner.py}): the default owner and its byte totals.
"""

from p2pnet_tx.channel.keepalive import KEEPALIVE_MESSAGE
from p2pnet_tx.channel.limits import DEFAULT_MAX_QUEUED_BYTES, ChannelLimits
from p2pnet_tx.channel.loglimit import LogLimiter
from p2pnet_tx.channel.owner import ChannelOwner, Traffic
from p2pnet_tx.channel.protocol import PeerChannel, TrustProtocol
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
