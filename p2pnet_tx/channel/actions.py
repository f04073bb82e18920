# -*- test-case-name: tests.test_channel_lifecycle,tests.test_channel -*-
"""
What a L{PeerChannel<p2pnet_tx.channel.PeerChannel>} does when its lifecycle machine
(L{p2pnet_tx.channel.lifecycle}) changes state, and when it drops a peer: the channel's
C{_lifecycle_*}, C{_misbehaved} and C{_writes_stalled} methods are these functions.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from p2pnet_tx.channel import events, loglimit
from p2pnet_tx.channel.receiver import OUT_COUNTERS
from p2pnet_tx.channel.timers import ChannelTimers, DeadlineQueue
from p2pnet_tx.errors import ChannelClosed, HandshakeTimeout, TrustRefused
from p2pnet_tx.logtext import REASON_TEXT_LIMIT, peer_text
from p2pnet_tx.packets import DisconnectPacket
from p2pnet_tx.peer import GenericPeer

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel

def _peer_from_address(address: Any) -> GenericPeer | None:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    try:
        return GenericPeer(host, port)
    except ValueError:
        return None


GOODBYE_REASON_CHARS = 200
"""How much of the close reason the Disconnect packet a channel sends carries."""


def connection_made(channel: PeerChannel) -> None:
    """The connection is made: start the timers and the writer, greet the peer, tell the owner."""
    deadlines = DeadlineQueue(channel.clock) if channel._deadlines is None else channel._deadlines
    timers = channel._timers = ChannelTimers(channel, channel.limits, deadlines)
    channel._writer = channel._writer_class(
        channel.transport, channel.clock, channel.limits.max_queued_bytes,
        channel.limits.write_stall_timeout, channel._writes_stalled,
    )
    channel._lifecycle.connected()
    if channel.peer is None:
        channel.peer = _peer_from_address(channel.transport.getPeer())
    timers.start(channel.clock.seconds())
    if channel.local_identity is not None:
        channel.send(channel.local_identity)
    channel.owner.channel_connected(channel)
    if channel._await_identity:
        channel._lifecycle.expect_identity()
    elif channel._trust_protocol is not None and channel.policy.run_default_trust_protocol:
        channel._lifecycle.start_handshake()


def closing_requested(channel: PeerChannel, reason: str) -> None:
    """Closing was asked for: stop sending and reading now."""
    # Automat runs an input given during a transition (an owner callback, a waiter) only
    # once that transition is over: stop sending and reading now, not then.
    if channel._open:
        channel._open = False
        channel.close_reason = reason


def opened(channel: PeerChannel) -> None:
    """The channel is open for traffic."""
    channel._open = True


def awaiting_identity(channel: PeerChannel) -> None:
    """The channel waits for the peer's Identity before anything else."""
    channel._awaiting_identity = True


def trusted(channel: PeerChannel) -> None:
    """The peer is trusted: lift the frame cap, tell the owner, then the waiters."""
    channel._trusted = True
    channel.trusted_since = channel.clock.seconds()
    channel._receiver.decoder.max_frame_size = channel.limits.max_frame_size
    channel.owner.channel_trusted(channel)
    if channel._waiters is not None and channel._open:  # the owner may have closed it
        channel._waiters.trusted(channel)


def untrusted(channel: PeerChannel) -> None:
    """The peer is no longer trusted: the pre-trust frame cap again."""
    channel._trusted = False
    channel.trusted_since = None
    channel._receiver.decoder.max_frame_size = channel.limits.max_untrusted_frame_size
    channel.log.info("peer {peer} no longer trusted", peer=channel.peer)


def handshake_failed(channel: PeerChannel, error: TrustRefused) -> None:
    """The trust protocol refused the peer (or timed out): count, log, discourage."""
    channel.counters["handshakes_failed"] += 1
    channel._handshake_error = error
    if isinstance(error, HandshakeTimeout):
        channel.log.warn(
            "peer {peer} not trusted within {timeout} s", peer=channel.peer, timeout=error.timeout
        )
        return
    channel.log.warn(
        "not trusting {peer}: {reason}",
        peer=channel.peer,
        reason=peer_text(str(error), REASON_TEXT_LIMIT),
    )
    # A wrong key or signature, a replay or a step out of order is a protocol violation:
    # the owner discourages the address (RELIABILITY.md row 10).  Silence is not.
    channel.owner.peer_misbehaved(channel, error)


def goodbye(channel: PeerChannel, reason: str, graceful: bool) -> None:
    """Close: the Disconnect (where the wire mode says one), then the socket."""
    if not channel._says_goodbye:
        channel._writer.finish(b"", graceful)  # type: ignore[union-attr]
        channel._lifecycle_closing(reason)
        return
    goodbye = channel.codec.encode(goodbye_packet(channel, reason))
    channel._writer.finish(goodbye, graceful)  # type: ignore[union-attr]
    channel._traffic.bytes_out += len(goodbye)
    channel.counters[OUT_COUNTERS[DisconnectPacket]] += 1
    channel._lifecycle_closing(reason)


def peer_left(channel: PeerChannel, reason: str) -> None:
    """The peer said goodbye: close our side."""
    channel.transport.loseConnection()
    channel._lifecycle_closing(reason)


def stuck(channel: PeerChannel) -> None:
    """A closing connection did not drain in time: abort it."""
    channel.transport.abortConnection()


def closing(channel: PeerChannel, reason: str) -> None:
    """Closing starts: stop the timers and the writer, tell the owner, fail the waiters."""
    # The owner first: whoever waits on this channel and reconnects from an errback must
    # find it gone from the network already.
    channel.close_reason = reason
    channel._open = channel._trusted = channel._awaiting_identity = False
    if channel._timers is not None:
        channel._timers.stop()
    if channel._writer is not None:
        channel._writer.stop(reason)
    channel.owner.channel_closed(channel, reason)
    if channel._waiters is not None:
        channel._waiters.untrustable(channel._handshake_error or ChannelClosed(reason))
    events.peer_trust_lost(channel, reason)


def closed(channel: PeerChannel, reason: str) -> None:
    """The connection is gone: cancel handlers, log, fire the close waiters."""
    if channel.close_reason is None:
        channel.close_reason = reason
    events.peer_trust_lost(channel, channel.close_reason)
    channel._receiver.cancel_pending()
    channel._data_observers = None
    loglimit.log_suppressed_lines(channel)
    channel.log.info(
        "channel to {peer} closed: {reason}",
        peer=channel.peer,
        reason=peer_text(channel.close_reason, REASON_TEXT_LIMIT),
    )
    channel._waiting().closed_with(channel.close_reason)


def misbehaved(channel: PeerChannel, error: Exception) -> None:
    """The peer broke the protocol: log, tell the owner, abort."""
    reason = peer_text(str(error), REASON_TEXT_LIMIT)
    channel.log.warn("dropping misbehaving peer {peer}: {error}", peer=channel.peer, error=reason)
    channel.owner.peer_misbehaved(channel, error)
    channel.abort(f"misbehaving: {reason}")


def writes_stalled(channel: PeerChannel) -> None:
    """The peer read nothing of what was written for too long: abort."""
    channel.log.warn(
        "writes to {peer} stalled for {timeout} s",
        peer=channel.peer,
        timeout=channel.limits.write_stall_timeout,
    )
    channel.abort("write stall")


def goodbye_packet(channel: PeerChannel, reason: str) -> DisconnectPacket:
    """The Disconnect packet that tells the peer why C{channel} closes."""
    host = getattr(channel.transport.getHost(), "host", "")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ""
    return DisconnectPacket(
        host,
        channel.local_identity.data if channel.local_identity else 0,
        datetime.fromtimestamp(channel.clock.seconds(), timezone.utc),
        # Cut, so that the goodbye fits the peer's pre-trust frame cap even when the reason
        # quotes the peer (in the dotnet format a character may take 12 bytes).
        {"Reason": peer_text(reason, GOODBYE_REASON_CHARS)},
        source_origin_identifier=channel.local_identifier,
    )
