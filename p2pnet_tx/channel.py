# -*- test-case-name: tests.test_channel -*-
"""
L{PeerChannel}: the Protocol of one connection to a peer.

A channel decodes the peer's byte stream with its codec, shows every packet to its
data-received observers, checks it against the trust gate and hands what passes to the handler
registered for its type.  It runs the trust protocol, enforces the limits of
L{ChannelLimits} on the injected clock, and reports to its owner (the network).  It makes no
policy decisions of its own beyond the gate.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from datetime import datetime, timezone
from collections.abc import Callable
from types import CoroutineType
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pnet_tx._observer import Observers, OneShotObserver
from p2pnet_tx.errors import (
    ChannelClosed,
    FrameTooLarge,
    FramingError,
    HandshakeTimeout,
    MalformedPacket,
    TrustRefused,
    UnknownPacketType,
)
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.interfaces import ICodec, IPeer, IPeerChannelOwner
from p2pnet_tx.packets import (
    PACKET_CLASSES,
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.wire import get_codec

TrustProtocol = Callable[["PeerChannel"], "Deferred[bool] | Any"]
"""A trust protocol: called with a channel, returns (a Deferred of, or a coroutine of) a bool."""

KEEPALIVE_MESSAGE = "Pinging"
"""The text of the PureMessage a channel sends when it has said nothing for a while."""

_DEFAULT_KINDS = frozenset({PacketType.MESSAGE, PacketType.DISCONNECT})

# The counter names, built once and keyed by packet class (hashing an Enum member runs Python
# code): formatting them per packet costs more than the counting.
_IN_COUNTERS = {cls: "packets_in." + kind.value for kind, cls in PACKET_CLASSES.items()}
_OUT_COUNTERS = {cls: "packets_out." + kind.value for kind, cls in PACKET_CLASSES.items()}


@attrs.frozen
class ChannelLimits:
    """
    The limits a channel enforces; times in seconds on the channel's clock, sizes in bytes.

    :ivar handshake_timeout: from connection to trusted (and to the peer's Identity, when
        awaited); past it the peer is dropped.
    :ivar idle_timeout: with nothing received for this long, the channel closes; None: never.
    :ivar keepalive_interval: with nothing sent for this long, send a keep-alive ping; None: never.
    :ivar partial_frame_timeout: a frame must complete this long after its first byte.
    :ivar max_frame_size: the largest frame accepted from a trusted peer.
    :ivar max_untrusted_frame_size: the largest frame accepted before trust.
    :ivar max_malformed: malformed frames tolerated; reaching it drops the peer.
    :ivar max_queued_bytes: bytes queued for a peer that does not read; past it, abort.
    :ivar write_stall_timeout: how long writes may stay stalled before the channel aborts.
    :ivar close_timeout: how long a closing channel waits for its writes to drain.
    :ivar drop_unknown_packets: drop the peer on an unknown packet type (default: count and
        ignore it, for forward compatibility).
    """

    handshake_timeout: float = 10.0
    idle_timeout: float | None = 90.0
    keepalive_interval: float | None = 30.0
    partial_frame_timeout: float | None = 30.0
    max_frame_size: int = 1024 * 1024
    max_untrusted_frame_size: int = 64 * 1024
    max_malformed: int = 1
    max_queued_bytes: int = 1024 * 1024
    write_stall_timeout: float = 20.0
    close_timeout: float = 5.0
    drop_unknown_packets: bool = False


@implementer(IPeerChannelOwner)
class ChannelOwner:
    """
    An owner that accepts every peer and otherwise only logs; the base of real owners.
    """

    log = Logger()

    def channel_connected(self, channel: PeerChannel) -> None:
        """Nothing to do."""

    def identity_received(self, channel: PeerChannel, packet: IdentifierPacket) -> bool:
        """Accept every peer."""
        return True

    def channel_trusted(self, channel: PeerChannel) -> None:
        """Log it."""
        self.log.info("peer {peer} trusted", peer=channel.peer)

    def peer_misbehaved(self, channel: PeerChannel, error: Exception) -> None:
        """Nothing to do: the channel already logged it."""

    def channel_closed(self, channel: PeerChannel, reason: str) -> None:
        """Nothing to do."""


def _peer_from_address(address: Any) -> GenericPeer | None:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    try:
        return GenericPeer(host, port)
    except ValueError:
        return None


class _LazyTimer:
    """
    A deadline that moves often but fires rarely: C{check()} is called when the timer expires
    and returns the delay to wait again, or None to stop.  Moving the deadline costs nothing.
    """

    def __init__(self, clock: IReactorTime, check: Callable[[], float | None]) -> None:
        self._clock = clock
        self._check = check
        self._call: IDelayedCall | None = None
        self._stopped = False

    def start(self, delay: float) -> None:
        if self._call is None and not self._stopped:
            self._call = self._clock.callLater(delay, self._expired)

    def _expired(self) -> None:
        self._call = None
        delay = self._check()
        if delay is not None:
            self.start(max(delay, 0.0))

    def stop(self) -> None:
        """Cancel the timer for good: a check that stopped it cannot start it again."""
        self._stopped = True
        if self._call is not None:
            self._call.cancel()
            self._call = None


@implementer(IPushProducer)
class PeerChannel(Protocol):
    """
    One connection to a peer, as a Twisted L{Protocol}.

    :param codec: the wire format (an L{ICodec}, or its name: C{"p2pnet"}, C{"dotnet"}).
    :param handlers: the network's handler registry.
    :param trust_protocol: run on connection (when the policy says so) to decide trust; None:
        the peer stays untrusted until L{trust} is called.
    :param policy: the trust gate's settings.
    :param clock: every timer of the channel runs on it.
    :param owner: what the channel reports to; a L{ChannelOwner} that only logs by default.
    :param limits: the channel's limits.
    :param peer: who is expected at the other end (outbound connections); by default the
        address of the connection.
    :param local_identity: sent as the first packet on connection, when given.
    :param await_identity: expect the peer's first packet to be its Identity, hand it to
        C{owner.identity_received} before any gate, and start the trust protocol only then.
    :param local_identifier: the C{source_origin_identifier} of the packets the channel makes.

    :ivar on_data_received: observers called with C{(channel, packet)} for every decoded packet,
        before the gate and whatever the handlers.  An observer that returns C{True} consumes
        the packet: it is neither gated nor handled (trust protocols use this).
    :ivar properties: custom per-channel data.
    :ivar counters: packets in and out by type, refused, malformed, unknown, handler errors.
    :ivar close_reason: why the channel closed, once it has.
    """

    log = Logger()

    def __init__(
        self,
        codec: ICodec | str,
        handlers: PacketHandleProtocol | None = None,
        trust_protocol: TrustProtocol | None = None,
        *,
        clock: IReactorTime,
        policy: IncomingPeerTrustPolicy | None = None,
        owner: IPeerChannelOwner | None = None,
        limits: ChannelLimits | None = None,
        peer: IPeer | None = None,
        local_identity: IdentifierPacket | None = None,
        await_identity: bool = False,
        local_identifier: str = "",
    ) -> None:
        self.codec: ICodec = get_codec(codec) if isinstance(codec, str) else codec
        self.handlers = PacketHandleProtocol() if handlers is None else handlers
        self.policy = IncomingPeerTrustPolicy() if policy is None else policy
        self.owner: IPeerChannelOwner = ChannelOwner() if owner is None else owner
        self.limits = ChannelLimits() if limits is None else limits
        self.clock = clock
        self.peer: IPeer | None = peer
        self.local_identity = local_identity
        self.local_identifier = local_identifier or (
            local_identity.source_origin_identifier if local_identity else ""
        )
        self.properties: dict[str, Any] = {}
        self.counters: Counter[str] = Counter()
        self.on_data_received = Observers("data received")
        self.last_incoming_data_received: float | None = None
        self.close_reason: str | None = None

        self._trust_protocol = trust_protocol
        self._awaiting_identity = await_identity
        self._trusted = False
        self._trusted_event: OneShotObserver[PeerChannel] = OneShotObserver()
        self._closed_event: OneShotObserver[str] = OneShotObserver()
        self._closing = False
        self._connected = False
        self._handshake: Deferred[Any] | None = None
        self._handshake_deadline: IDelayedCall | None = None
        self._handshake_error: TrustRefused | None = None
        self._pending: set[Deferred[Any]] = set()
        self._decoder = self.codec.decoder(self.limits.max_untrusted_frame_size)
        self._malformed = 0
        self._last_sent = 0.0
        self._partial_since: float | None = None
        self._idle = _LazyTimer(clock, self._check_idle)
        self._keepalive = _LazyTimer(clock, self._check_keepalive)
        self._partial = _LazyTimer(clock, self._check_partial_frame)
        self._write_paused = False
        self._bytes_while_paused = 0
        self._write_stall: IDelayedCall | None = None
        self._close_abort: IDelayedCall | None = None
        self._writable_waiters: list[Deferred[PeerChannel]] = []

    def __repr__(self) -> str:
        state = "trusted" if self._trusted else "untrusted"
        return f"<PeerChannel {self.peer} {state}>"

    # -- Public API -----------------------------------------------------------------------------

    @property
    def is_trusted(self) -> bool:
        """Whether the peer is trusted."""
        return self._trusted

    @property
    def is_closed(self) -> bool:
        """Whether the connection is gone."""
        return self._closed_event.fired

    @property
    def is_writable(self) -> bool:
        """Whether the transport takes writes without queueing them (see L{when_writable})."""
        return not self._write_paused

    def when_trusted(self) -> Deferred[PeerChannel]:
        """
        Return a new Deferred that fires with this channel once the peer is trusted.

        It fails with L{HandshakeTimeout} or L{TrustRefused} if the trust protocol does not trust
        the peer, and with L{ChannelClosed} if the channel closes first.
        """
        if self._trusted:
            return succeed(self)
        return self._trusted_event.when_fired()

    def when_closed(self) -> Deferred[str]:
        """Return a new Deferred that fires with the close reason once the connection is gone."""
        return self._closed_event.when_fired()

    def when_writable(self) -> Deferred[PeerChannel]:
        """
        Return a new Deferred that fires with this channel once the transport drains below its
        buffer size (at once if it is writable); it fails with L{ChannelClosed} on close.
        """
        if self.is_closed:
            return fail(ChannelClosed(self.close_reason or "closed"))
        if not self._write_paused:
            return succeed(self)
        waiter: Deferred[PeerChannel] = Deferred()
        self._writable_waiters.append(waiter)
        return waiter

    def send(self, packet: Packet) -> bool:
        """
        Send a packet to the peer.

        :return: True if it was written, False if the channel is closing or closed (the packet
            is dropped and logged).
        """
        if not self._connected or self._closing:
            self.log.debug("dropped {kind} for closed channel {channel}",
                           kind=packet.kind.value, channel=self)
            return False
        frame = self.codec.encode(packet)
        # Only bytes written while already paused are queued beyond the transport's buffer;
        # the frame whose write pauses it is not (else one frame > max_queued_bytes aborts).
        was_paused = self._write_paused
        self.transport.write(frame)
        self._last_sent = self.clock.seconds()
        self.counters[
            _OUT_COUNTERS.get(type(packet)) or "packets_out." + packet.kind.value
        ] += 1
        if was_paused:
            self._bytes_while_paused += len(frame)
            if self._bytes_while_paused > self.limits.max_queued_bytes:
                self.log.warn("peer {peer} is not reading; dropping it", peer=self.peer)
                self.abort("send buffer full")
        return True

    def send_message(self, text: str) -> bool:
        """Send a L{PureMessagePacket} with C{text}; see L{send}."""
        return self.send(PureMessagePacket(text, source_origin_identifier=self.local_identifier))

    def trust(self) -> None:
        """
        Trust the peer: every packet type passes the gate and the larger frame limit applies.
        """
        if self._trusted or self._closing or self.is_closed:
            return
        self._trusted = True
        self._decoder.max_frame_size = self.limits.max_frame_size
        self._cancel_handshake_deadline()
        self._trusted_event.fire(self)
        self.owner.channel_trusted(self)

    def untrust(self) -> None:
        """Stop trusting the peer: the gate and the untrusted frame limit apply again."""
        if not self._trusted:
            return
        self._trusted = False
        self._decoder.max_frame_size = self.limits.max_untrusted_frame_size
        self._trusted_event = OneShotObserver()
        self.log.info("peer {peer} no longer trusted", peer=self.peer)

    def allows(self, kind: PacketType) -> bool:
        """Whether the gate lets a packet of type C{kind} through from this peer now."""
        if self._trusted:
            return True
        if kind in _DEFAULT_KINDS:
            return self.policy.allow_default_communication
        return self.policy.allow_enhanced_packet_exchange

    def close(self, reason: str = "closed") -> Deferred[str]:
        """
        Say goodbye with a Disconnect packet and close the connection once it is written; abort
        it if the peer does not let the write drain within C{limits.close_timeout}.

        :return: a Deferred that fires with the close reason once the connection is gone.
        """
        if self._connected and not self._closing:
            self._begin_close(reason)
            self._send_disconnect(reason)
            self.transport.loseConnection()
            self._close_abort = self.clock.callLater(
                self.limits.close_timeout, self._abort_stuck_close
            )
        return self.when_closed()

    def abort(self, reason: str) -> None:
        """
        Drop the connection at once, after writing a best-effort Disconnect packet; for peers
        that broke the rules or ran out of time.
        """
        if self._connected and not self._closing:
            self._begin_close(reason)
            self._send_disconnect(reason)
            self.transport.abortConnection()

    def peer_disconnected(self, packet: DisconnectPacket) -> None:
        """The peer said goodbye: close without answering."""
        if self._connected and not self._closing:
            self._begin_close("disconnected by peer")
            self.transport.loseConnection()
            self._close_abort = self.clock.callLater(
                self.limits.close_timeout, self._abort_stuck_close
            )

    # -- Protocol -------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._connected = True
        now = self.clock.seconds()
        self._last_sent = self.last_incoming_data_received = now
        if self.peer is None:
            self.peer = _peer_from_address(self.transport.getPeer())
        self.transport.registerProducer(self, True)
        if self.limits.idle_timeout is not None:
            self._idle.start(self.limits.idle_timeout)
        if self.limits.keepalive_interval is not None:
            self._keepalive.start(self.limits.keepalive_interval)
        if self.local_identity is not None:
            self.send(self.local_identity)
        self.owner.channel_connected(self)
        if self._closing:
            return
        if self._awaiting_identity or self._runs_trust_protocol():
            self._handshake_deadline = self.clock.callLater(
                self.limits.handshake_timeout, self._handshake_timed_out
            )
        if not self._awaiting_identity:
            self._start_trust_protocol()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.last_incoming_data_received = self.clock.seconds()
        error: FramingError | None = None
        try:
            items = self._decoder.feed(data)
        except FramingError as e:
            items, error = e.frames, e
        for item in items:
            if self._closing:
                return
            if isinstance(item, MalformedPacket):
                self._malformed_received(item)
            else:
                self._packet_received(item)
        if error is not None:
            if (
                isinstance(error, FrameTooLarge)
                and error.remainder
                and error.limit < self._decoder.max_frame_size
            ):
                # The frames before it made the peer trusted, which raised the limit: the
                # frame is judged by the limit now in force.
                self.dataReceived(error.remainder)
                return
            self.counters["framing_errors"] += 1
            self._misbehaved(error)
            return
        if self._decoder.buffered:
            if items or self._partial_since is None:
                self._partial_since = self.last_incoming_data_received
                if self.limits.partial_frame_timeout is not None:
                    self._partial.start(self.limits.partial_frame_timeout)
        else:
            self._partial_since = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._connected = False
        if self.close_reason is None:
            self._begin_close("connection lost: " + reason.getErrorMessage())
        for call in (self._close_abort, self._write_stall):
            if call is not None and call.active():
                call.cancel()
        self._close_abort = self._write_stall = None
        if self._handshake is not None:
            self._handshake.cancel()
        for pending in list(self._pending):
            pending.cancel()
        self.on_data_received.clear()
        if self._trusted:
            # A closed channel is no longer trusted: later when_trusted() callers must get
            # ChannelClosed, not the success of the old trust.
            self._trusted = False
            self._trusted_event = OneShotObserver()
        closed = ChannelClosed(self.close_reason or "closed")
        error = self._handshake_error or closed
        self._trusted_event.fire(Failure(error))
        waiters, self._writable_waiters = self._writable_waiters, []
        for waiter in waiters:
            waiter.errback(Failure(closed))
        self.log.info("channel to {peer} closed: {reason}", peer=self.peer,
                      reason=self.close_reason)
        self._closed_event.fire(self.close_reason or "closed")
        self.owner.channel_closed(self, self.close_reason or "closed")

    # -- IPushProducer: the transport tells us when our writes back up ------------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: stop reading from the peer until it drains."""
        if self._write_paused or self._closing:
            return
        self._write_paused = True
        self._bytes_while_paused = 0
        self.transport.pauseProducing()
        self._write_stall = self.clock.callLater(
            self.limits.write_stall_timeout, self._writes_stalled
        )

    def resumeProducing(self) -> None:
        """The transport drained: read from the peer again and wake writers."""
        if not self._write_paused:
            return
        self._write_paused = False
        if self._write_stall is not None and self._write_stall.active():
            self._write_stall.cancel()
        self._write_stall = None
        if not self._closing:
            self.transport.resumeProducing()
        waiters, self._writable_waiters = self._writable_waiters, []
        for waiter in waiters:
            waiter.callback(self)

    def stopProducing(self) -> None:
        """The transport is going away; L{connectionLost} follows."""

    # -- Internals ------------------------------------------------------------------------------

    def _runs_trust_protocol(self) -> bool:
        return self._trust_protocol is not None and self.policy.run_default_trust_protocol

    def _start_trust_protocol(self) -> None:
        if not self._runs_trust_protocol() or self._trusted:
            self._cancel_handshake_deadline()
            return
        self._handshake = maybeDeferred(self._trust_protocol, self)  # type: ignore[arg-type]
        self._handshake.addCallbacks(self._trust_decided, self._trust_failed)

    def _trust_decided(self, result: object) -> None:
        self._handshake = None
        if result is True:
            self.trust()
            return
        if result is False:
            error = TrustRefused(f"trust protocol refused {self.peer}")
        else:
            error = TrustRefused(f"trust protocol returned {result!r}, not a bool")
            self.log.error("trust protocol {protocol!r} returned {result!r}, not a bool",
                           protocol=self._trust_protocol, result=result)
        self._refuse_trust(error)

    def _trust_failed(self, failure: Failure) -> None:
        self._handshake = None
        if self._handshake_error is not None or self._closing:
            return  # We cancelled it: the deadline passed or the connection went away.
        if not failure.check(CancelledError, TrustRefused):
            self.log.failure("trust protocol failed for {peer}", failure, peer=self.peer)
        error = failure.value if failure.check(TrustRefused) else TrustRefused(str(failure.value))
        self._refuse_trust(error)

    def _refuse_trust(self, error: TrustRefused) -> None:
        self.counters["handshakes_failed"] += 1
        self.log.warn("not trusting {peer}: {reason}", peer=self.peer, reason=str(error))
        self._handshake_error = error
        self.untrust()
        self._trusted_event.fire(Failure(error))
        # A wrong key or signature, a replay or a step out of order is a protocol violation:
        # the owner discourages the address (RELIABILITY.md row 10).  Silence is not.
        self.owner.peer_misbehaved(self, error)
        self.abort(f"trust refused: {error}")

    def _handshake_timed_out(self) -> None:
        self._handshake_deadline = None
        timeout = self.limits.handshake_timeout
        self.counters["handshakes_failed"] += 1
        self.log.warn("peer {peer} not trusted within {timeout} s", peer=self.peer,
                      timeout=timeout)
        self._handshake_error = HandshakeTimeout(timeout)
        self._trusted_event.fire(Failure(self._handshake_error))
        if self._handshake is not None:
            self._handshake.cancel()
        self.abort("handshake timeout")

    def _cancel_handshake_deadline(self) -> None:
        if self._handshake_deadline is not None:
            if self._handshake_deadline.active():
                self._handshake_deadline.cancel()
            self._handshake_deadline = None

    def _packet_received(self, packet: Packet) -> None:
        kind = packet.kind
        self.counters[_IN_COUNTERS.get(type(packet)) or "packets_in." + kind.value] += 1
        if self._awaiting_identity:
            self._first_packet_received(packet)
            return
        # _observers, not len(): this runs for every packet.
        if self.on_data_received._observers and True in self.on_data_received.notify(
            self, packet
        ):
            return
        if not self._trusted and not self.allows(kind):
            self.counters["refused"] += 1
            self.log.debug("refused {kind} from untrusted {peer}", kind=kind.value,
                           peer=self.peer)
            return
        # What PacketHandleProtocol.handle() does through maybeDeferred, without building a
        # Deferred for the common handler that returns None: same outcomes, a fraction of the
        # cost per packet.
        try:
            result = self.handlers.get_handler(kind)(self, packet)
        except BaseException:
            self._handler_failed(Failure(), packet)
            return
        if result is None:
            return
        if type(result) is CoroutineType:
            result = Deferred.fromCoroutine(result)
        elif not isinstance(result, Deferred):
            return
        if not result.called:
            self._pending.add(result)
            result.addBoth(self._handler_done, result)
        result.addErrback(self._handler_failed, packet)

    def _first_packet_received(self, packet: Packet) -> None:
        self._awaiting_identity = False
        if not isinstance(packet, IdentifierPacket):
            self._misbehaved(MalformedPacket(f"first packet is {packet.kind.value}, not Identity"))
            return
        identity_peer = self._peer_from_identity(packet)
        if identity_peer is not None:
            self.peer = identity_peer
        if not self.owner.identity_received(self, packet):
            self.counters["refused_identities"] += 1
            self.close("refused")
            return
        self._start_trust_protocol()

    def _peer_from_identity(self, packet: IdentifierPacket) -> GenericPeer | None:
        host = getattr(self.peer, "address", None)
        if host is None or not packet.data:
            return None
        try:
            return GenericPeer(host, packet.data, packet.source_origin_identifier or None)
        except ValueError:
            return None

    def _handler_done(self, result: object, pending: Deferred[Any]) -> object:
        self._pending.discard(pending)
        return result

    def _handler_failed(self, failure: Failure, packet: Packet) -> None:
        # connectionLost cancels pending handlers before the closed event fires, so test the
        # connection, not is_closed: that cancellation is no handler error.
        if failure.check(CancelledError) and not self._connected:
            return
        self.counters["handler_errors"] += 1
        self.log.failure("handler for {kind} from {peer} failed", failure,
                         kind=packet.kind.value, peer=self.peer)

    def _malformed_received(self, error: MalformedPacket) -> None:
        if isinstance(error, UnknownPacketType):
            self.counters["unknown"] += 1
            self.log.warn("unknown packet type {type!r} from {peer}",
                          type=error.packet_type, peer=self.peer)
            if self.limits.drop_unknown_packets:
                self._misbehaved(error)
            return
        self.counters["malformed"] += 1
        self._malformed += 1
        self.log.warn("malformed packet from {peer}: {reason}", peer=self.peer,
                      reason=error.reason)
        if self._malformed >= self.limits.max_malformed:
            self._misbehaved(error)

    def _misbehaved(self, error: Exception) -> None:
        self.log.warn("dropping misbehaving peer {peer}: {error}", peer=self.peer,
                      error=str(error))
        self.owner.peer_misbehaved(self, error)
        self.abort(f"misbehaving: {error}")

    def _send_disconnect(self, reason: str) -> None:
        host = self.transport.getHost()
        packet = DisconnectPacket(
            _ip_or_empty(getattr(host, "host", "")),
            self.local_identity.data if self.local_identity else 0,
            datetime.fromtimestamp(self.clock.seconds(), timezone.utc),
            {"Reason": reason},
            source_origin_identifier=self.local_identifier,
        )
        self.transport.write(self.codec.encode(packet))
        self.counters[_OUT_COUNTERS[DisconnectPacket]] += 1

    def _begin_close(self, reason: str) -> None:
        self._closing = True
        if self.close_reason is None:
            self.close_reason = reason
        self._idle.stop()
        self._keepalive.stop()
        self._partial.stop()
        self._cancel_handshake_deadline()
        if self._handshake is not None:
            handshake, self._handshake = self._handshake, None
            handshake.cancel()

    def _check_idle(self) -> float | None:
        timeout = self.limits.idle_timeout
        assert timeout is not None and self.last_incoming_data_received is not None
        remaining = self.last_incoming_data_received + timeout - self.clock.seconds()
        if remaining > 0:
            return remaining
        self.log.info("peer {peer} idle for {timeout} s", peer=self.peer, timeout=timeout)
        self.close("idle timeout")
        return None

    def _check_keepalive(self) -> float | None:
        interval = self.limits.keepalive_interval
        assert interval is not None
        remaining = self._last_sent + interval - self.clock.seconds()
        if remaining > 0:
            return remaining
        self.send_message(KEEPALIVE_MESSAGE)
        return interval

    def _check_partial_frame(self) -> float | None:
        if self._partial_since is None:
            return None
        timeout = self.limits.partial_frame_timeout
        assert timeout is not None
        remaining = self._partial_since + timeout - self.clock.seconds()
        if remaining > 0:
            return remaining
        self.counters["partial_frame_timeouts"] += 1
        self._misbehaved(MalformedPacket(f"frame incomplete after {timeout} s"))
        return None

    def _writes_stalled(self) -> None:
        self._write_stall = None
        self.log.warn("writes to {peer} stalled for {timeout} s", peer=self.peer,
                      timeout=self.limits.write_stall_timeout)
        self.abort("write stall")

    def _abort_stuck_close(self) -> None:
        self._close_abort = None
        self.transport.abortConnection()


def _ip_or_empty(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ""
    return host
