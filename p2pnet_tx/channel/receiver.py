# -*- test-case-name: tests.test_channel -*-
"""
L{PacketReceiver}: from the bytes a channel reads to the handlers of its packets.

The codec's decoder turns the bytes into packets, one frame at a time under the frame-size
limit in force.  Every packet is counted, shown to the channel's data-received observers,
checked against the trust gate and dispatched through the handler registry; malformed and
unknown frames are counted and, past the limits, drop the peer; a frame that stays incomplete
is reported to the channel's timers.  This runs for every packet: it stays small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from p2pnet_tx.channel.keepalive import KEEPALIVE_MESSAGE, keepalive_received
from p2pnet_tx.errors import FramingError, MalformedPacket, UnknownPacketType
from p2pnet_tx.interfaces import IFrameDecoder
from p2pnet_tx.logtext import REASON_TEXT_LIMIT, peer_text
from p2pnet_tx.packets import (
    PACKET_CLASSES,
    IdentifierPacket,
    Packet,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel

# The counter names, built once and keyed by packet class (hashing an Enum member runs Python
# code): formatting them per packet costs more than the counting.
IN_COUNTERS = {cls: "packets_in." + kind.value for kind, cls in PACKET_CLASSES.items()}
OUT_COUNTERS = {cls: "packets_out." + kind.value for kind, cls in PACKET_CLASSES.items()}

_MESSAGES_IN = IN_COUNTERS[PureMessagePacket]


class PacketReceiver:
    """
    Decodes, gates and dispatches the packets of one channel, and keeps its pending handlers.

    @param channel: the channel whose gate, observers, handlers and counters apply.
    @param decoder: the channel's decoder.

    @ivar decoder: the channel's decoder; its C{max_frame_size} follows trust.
    """

    log = Logger()
    __slots__ = ("_channel", "decoder", "_malformed", "_pending")

    def __init__(self, channel: PeerChannel, decoder: IFrameDecoder) -> None:
        self._channel = channel
        self.decoder = decoder
        self._malformed = 0
        self._pending: set[Deferred[Any]] | None = None

    def data_received(self, data: bytes) -> None:
        """Decode C{data} and take each packet in turn, until the channel closes."""
        channel = self._channel
        now = channel.clock.seconds()
        timers = channel._timers
        timers.last_received = now  # type: ignore[union-attr]
        counters = channel.counters
        completed = False
        try:
            for item in self.decoder.iter_feed(data):
                completed = True
                name = IN_COUNTERS.get(item.__class__)
                if name is None:  # a malformed frame (or a packet subclass: the long way)
                    if isinstance(item, MalformedPacket):
                        self.malformed_received(item)
                    else:
                        self.packet_received(item)
                elif channel._trusted and not channel._data_observers:
                    # The common case, inline: a trusted peer that nobody observes.
                    if name is _MESSAGES_IN and item.message == KEEPALIVE_MESSAGE:
                        name = "keepalives_in"  # not a message anyone sent
                    counters[name] += 1
                    self._dispatch(item)
                else:
                    self.packet_received(item)
                if not channel._open:
                    return
        except FramingError as error:
            counters["framing_errors"] += 1
            channel._misbehaved(error)
            return
        if self.decoder.buffered:
            if completed or timers.partial_since is None:  # type: ignore[union-attr]
                timers.partial_frame(now)  # type: ignore[union-attr]
        elif timers.partial_since is not None:  # type: ignore[union-attr]
            timers.partial_frame(None)  # type: ignore[union-attr]

    @property
    def pending(self) -> int:
        """Handlers whose Deferred has not fired yet."""
        return len(self._pending) if self._pending else 0

    def packet_received(self, packet: Packet) -> None:
        """Count C{packet}, show it to the observers, gate it and dispatch it."""
        channel = self._channel
        kind = packet.kind
        if packet.__class__ is PureMessagePacket and packet.message == KEEPALIVE_MESSAGE:
            channel.counters["keepalives_in"] += 1  # not a message anyone sent
        else:
            channel.counters[IN_COUNTERS.get(packet.__class__) or "packets_in." + kind.value] += 1
        if channel._awaiting_identity:
            self.identity_received(packet)
            return
        observers = channel._data_observers
        if observers is not None and observers and observers.notify_consumed(channel, packet):
            return
        if not channel._trusted and not channel.allows(kind):
            channel.counters["refused"] += 1
            channel.log_peer(self.log, LogLevel.debug, "refused {kind} from untrusted {peer}",
                             kind=kind.value, peer=channel.peer)
            return
        self._dispatch(packet)

    def _dispatch(self, packet: Packet) -> None:
        if packet.__class__ is not PureMessagePacket or packet.message != KEEPALIVE_MESSAGE:
            self._channel.last_useful_packet = self._channel.clock.seconds()
        else:  # only keep-alives pay for this: time their echo, or echo them
            keepalive_received(self._channel, packet)
        try:
            result = self._channel.handlers.dispatch(self._channel, packet)
        except BaseException:
            self._handler_failed(Failure(), packet)
            return
        # Most handlers return None; Deferred is an ABC (Awaitable), so isinstance costs more.
        if result is not None and isinstance(result, Deferred):
            if not result.called:
                if self._pending is None:
                    self._pending = set()
                self._pending.add(result)
                result.addBoth(self._handler_done, result)
            result.addErrback(self._handler_failed, packet)

    def identity_received(self, packet: Packet) -> None:
        """
        The first packet of a peer whose Identity is awaited: anything else is misbehaviour;
        an Identity names the peer and goes to the owner, which accepts or refuses it.
        """
        channel = self._channel
        if not isinstance(packet, IdentifierPacket):
            channel._awaiting_identity = False
            channel._misbehaved(
                MalformedPacket(f"first packet is {packet.kind.value}, not Identity")
            )
            return
        host = getattr(channel.peer, "address", None)
        if host is not None and packet.data:
            try:
                channel.peer = GenericPeer(
                    host, packet.data, packet.source_origin_identifier or None
                )
            except ValueError:
                pass
        channel._identified(channel.owner.identity_received(channel, packet))

    def malformed_received(self, error: MalformedPacket) -> None:
        """
        Count a frame that is no valid packet; drop the peer past the limits.  An unknown
        packet type drops a peer not yet trusted at once; from a trusted peer it is ignored
        (or drops it, with C{limits.drop_unknown_packets}).
        """
        channel = self._channel
        if isinstance(error, UnknownPacketType):
            channel.counters["unknown"] += 1
            if not channel._trusted or channel.limits.drop_unknown_packets:
                channel._misbehaved(error)
                return
            channel.log_peer(self.log, LogLevel.warn, "unknown packet type {type} from {peer}",
                             type=error.shown_type, peer=channel.peer)
            return
        channel.counters["malformed"] += 1
        self._malformed += 1
        if self._malformed >= channel.limits.max_malformed:
            channel._misbehaved(error)  # says why, once
            return
        channel.log_peer(self.log, LogLevel.warn, "malformed packet from {peer}: {reason}",
                         peer=channel.peer, reason=peer_text(error.reason, REASON_TEXT_LIMIT))

    def cancel_pending(self) -> None:
        """The channel is gone: cancel the handlers still running."""
        pending, self._pending = self._pending, None
        for deferred in pending or ():
            deferred.cancel()

    def _handler_done(self, result: object, pending: Deferred[Any]) -> object:
        if self._pending is not None:
            self._pending.discard(pending)
        return result

    def _handler_failed(self, failure: Failure, packet: Packet) -> None:
        # A closed channel cancels its pending handlers: that cancellation is no handler error.
        if failure.check(CancelledError) and self._channel.close_reason is not None:
            return
        self._channel.counters["handler_errors"] += 1
        self._channel.log_peer(self.log, LogLevel.critical,
                               "handler for {kind} from {peer} failed", log_failure=failure,
                               kind=packet.kind.value, peer=self._channel.peer)
