# -*- test-case-name: tests.test_channel -*-
"""
L{PeerChannel}: the Protocol of one connection to a peer.

A channel wires four small parts together: the codec's decoder, the L{lifecycle
<p2pnet_tx.channel.lifecycle>} machine (trust and closing), the L{ChannelTimers} (idle,
keep-alive, partial frame) and the L{ChannelWriter} (sending and backpressure).  It shows every
decoded packet to its data-received observers, checks it against the trust gate and hands what
passes to the handler registry.  It makes no policy decisions of its own beyond the gate: it
reports to its owner (the network).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pnet_tx._observer import Observers
from p2pnet_tx.channel import events, keepalive, loglimit
from p2pnet_tx.channel.lifecycle import LifecycleCore, new_lifecycle
from p2pnet_tx.channel.events import ChannelWaiters
from p2pnet_tx.channel.keepalive import KEEPALIVE_MESSAGE  # noqa: F401 (imported from here)
from p2pnet_tx.channel.limits import ChannelLimits
from p2pnet_tx.channel.loglimit import LogLimiter
from p2pnet_tx.channel.owner import ChannelOwner, Traffic
from p2pnet_tx.channel.receiver import OUT_COUNTERS, PacketReceiver
from p2pnet_tx.channel.timers import ChannelTimers, DeadlineQueue
from p2pnet_tx.channel.writer import ChannelWriter
from p2pnet_tx.errors import (
    ChannelClosed,
    HandshakeTimeout,
    TrustRefused,
)
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.interfaces import ICodec, IPeer, IPeerChannelOwner
from p2pnet_tx.logtext import REASON_TEXT_LIMIT, peer_text
from p2pnet_tx.packets import (
    _pure_message_packet,
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.tls import ProvenKey, proven_key
from p2pnet_tx.wire import get_codec

TrustProtocol = Callable[["PeerChannel"], "Deferred[bool] | Any"]
"""A trust protocol: called with a channel, returns (a Deferred of, or a coroutine of) a bool."""

_DEFAULT_KINDS = frozenset({PacketType.MESSAGE, PacketType.DISCONNECT})

GOODBYE_REASON_CHARS = 200
"""How much of the close reason the Disconnect packet a channel sends carries."""


def _peer_from_address(address: Any) -> GenericPeer | None:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    try:
        return GenericPeer(host, port)
    except ValueError:
        return None


@implementer(IHandshakeListener)
class PeerChannel(Protocol):
    """
    One connection to a peer, as a Twisted L{Protocol <twisted.internet.protocol.Protocol>}.
    Over TLS, it tells its owner when the handshake is complete (L{IHandshakeListener
    <twisted.internet.interfaces.IHandshakeListener>}); the TLS layer holds back what it sends
    and receives until then.

    @param codec: the wire format (an L{ICodec}, or its name: C{"p2pnet"}, C{"dotnet"}).
    @param handlers: the network's handler registry.
    @param trust_protocol: run on connection (when the policy says so) to decide trust; None:
        the peer stays untrusted until L{trust} is called.
    @param policy: the trust gate's settings.
    @param clock: every timer of the channel runs on it.
    @param owner: what the channel reports to; a L{ChannelOwner} that only logs by default.
    @param limits: the channel's limits.
    @param peer: who is expected at the other end (outbound connections); by default the
        address of the connection.
    @param local_identity: sent as the first packet on connection, when given.
    @param await_identity: expect the peer's first packet to be its Identity, hand it to
        C{owner.identity_received} before any gate, and start the trust protocol only then.
    @param local_identifier: the C{source_origin_identifier} of the packets the channel makes.
    @param deadlines: the queue that wakes the channel's idle, keep-alive and partial-frame
        timers; a network shares one among its channels.  By default the channel has its own.
    @param writer_class: the L{ChannelWriter} class the channel writes with (the dotnet wire
        mode's is L{PacedWriter<p2pnet_tx.channel.paced.PacedWriter>}).
    @param says_goodbye: close with a Disconnect packet; C{False}: simply close the socket
        (a .NET peer's packet handler dies on a Disconnect).

    @ivar counters: packets in and out by type, refused, malformed, unknown, handler errors.
    @ivar close_reason: why the channel closed, once it has.
    @ivar trusted_since: when (on the clock) the peer became trusted; C{None} while it is not.
    @ivar last_useful_packet: when (on the clock) the peer last sent a packet that went to a
        handler, keep-alives aside; C{None} until it does.
    """

    log = Logger()
    # Slots keep an idle channel small: Twisted's own attributes (transport, connected,
    # factory) still go to the instance dict, which then stays tiny.
    __slots__ = (
        "codec", "handlers", "policy", "owner", "limits", "clock", "peer", "local_identity",
        "_proven_key",
        "local_identifier", "counters", "close_reason", "_data_observers", "_waiters",
        "_deadlines", "_properties", "_trust_protocol", "_await_identity", "_lifecycle",
        "_open", "_trusted", "_awaiting_identity", "_handshake_error",
        "_receiver", "_timers", "_writer", "_stamp_millis", "_stamp",
        "trusted_since", "last_useful_packet",
        "_warning_budget", "_chatter_budget", "_traffic", "_writer_class", "_says_goodbye",
        "_trusted_by_peer", "_peer_trust_waiters",
    )

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
        deadlines: DeadlineQueue | None = None,
        writer_class: type[ChannelWriter] = ChannelWriter,
        says_goodbye: bool = True,
    ) -> None:
        self.codec: ICodec = get_codec(codec) if isinstance(codec, str) else codec
        self.handlers = PacketHandleProtocol() if handlers is None else handlers
        self.policy = IncomingPeerTrustPolicy() if policy is None else policy
        self.owner: IPeerChannelOwner = ChannelOwner() if owner is None else owner
        self.limits = ChannelLimits() if limits is None else limits
        self.clock = clock
        self._proven_key: ProvenKey | None = None  # asked for over TLS only
        self.peer: IPeer | None = peer
        self.local_identity = local_identity
        self.local_identifier = local_identifier or (
            local_identity.source_origin_identifier if local_identity else ""
        )
        self.counters: Counter[str] = Counter()
        self.close_reason: str | None = None
        self.trusted_since: float | None = None
        self.last_useful_packet: float | None = None
        # The owner's byte totals, shared by its channels: no count of its own per channel.
        traffic = getattr(self.owner, "traffic", None)
        self._traffic: Traffic = traffic if isinstance(traffic, Traffic) else Traffic()
        # Made when first asked for: an idle channel of a network holds as little as it can.
        self._data_observers: Observers | None = None
        self._waiters: ChannelWaiters | None = None
        self._deadlines = deadlines
        self._writer_class = writer_class
        self._says_goodbye = says_goodbye
        self._trusted_by_peer = False
        self._peer_trust_waiters: list[Deferred[PeerChannel]] | None = None
        self._properties: dict[str, Any] | None = None
        self._trust_protocol = trust_protocol
        self._await_identity = await_identity
        self._lifecycle = new_lifecycle(LifecycleCore(self, clock))
        # Projections of the lifecycle's state, read for every packet; only its actions set them.
        self._open = False
        self._trusted = False
        self._awaiting_identity = False
        self._handshake_error: TrustRefused | None = None
        decoder = self.codec.decoder(self.limits.max_untrusted_frame_size)
        if isinstance(getattr(decoder, "counters", None), Counter):
            # The dotnet decoder counts the frames it read leniently: in the channel's counters.
            decoder.counters = self.counters  # type: ignore[attr-defined]
        self._receiver = PacketReceiver(self, decoder)
        self._timers: ChannelTimers | None = None
        self._writer: ChannelWriter | None = None
        self._stamp_millis = -1
        self._stamp: datetime | None = None
        # Made on the first line logged about the peer: most channels never need them.
        self._warning_budget: LogLimiter | None = None
        self._chatter_budget: LogLimiter | None = None

    def __repr__(self) -> str:
        state = "trusted" if self._trusted else "untrusted"
        return f"<PeerChannel {self.peer} {state}>"

    # -- Public API -----------------------------------------------------------------------------

    @property
    def on_data_received(self) -> Observers:
        """
        Observers called with C{(channel, packet)} for every decoded packet, before the gate
        and whatever the handlers.  An observer that returns C{True} consumes the packet: it is
        neither gated nor handled (trust protocols use this).
        """
        if self._data_observers is None:
            self._data_observers = Observers("data received")
        return self._data_observers

    @property
    def properties(self) -> dict[str, Any]:
        """Custom per-channel data."""
        if self._properties is None:
            self._properties = {}
        return self._properties

    def proven_key(self) -> ProvenKey:
        """
        The Ed25519 key this connection's TLS peer proved it holds, and the identifier it
        derives (L{p2pnet_tx.tls.proven_key}).  The certificate is parsed and the identifier
        derived on the first call only: the key binding and key trust both ask, and a TLS 1.3
        connection (the only version a node speaks) never changes its peer's certificate.

        @raise InvalidPeerCertificate: if the connection is not TLS, its handshake is not over,
            or the peer's certificate holds no Ed25519 key; nothing is kept then, and the
            next call reads the certificate again.
        """
        if self._proven_key is None:
            self._proven_key = proven_key(self.transport)
        return self._proven_key

    @property
    def is_trusted(self) -> bool:
        """Whether the peer is trusted."""
        return self._trusted

    @property
    def is_closed(self) -> bool:
        """Whether the connection is gone."""
        return self._waiters is not None and self._waiters.closed

    @property
    def is_writable(self) -> bool:
        """Whether a packet sent now goes straight to the transport (see L{drain})."""
        return self._writer is not None and self._writer.is_writable

    @property
    def queued_bytes(self) -> int:
        """Bytes sent but still queued in the channel, waiting for the transport to drain."""
        return self._writer.queued if self._writer is not None else 0

    @property
    def last_incoming_data_received(self) -> float | None:
        """
        When bytes last arrived from the peer (on the channel's clock): when it was last
        seen; its connection time until it says something.  C{None} before the connection.
        """
        return self._timers.last_received if self._timers is not None else None

    @property
    def echo_rtt(self) -> float | None:
        """
        The round-trip time, in seconds, of the last keep-alive the peer echoed (see
        L{rtt}), or C{None}.
        """
        return keepalive.echo_rtt(self)

    @property
    def rtt(self) -> float | None:
        """
        The round-trip time to the peer, in seconds: that of the last keep-alive it echoed
        (a channel that exchanges Identity packets, the p2pnet wire, sends one after
        C{limits.keepalive_interval} without sending and its peer echoes it), or else the
        kernel's smoothed RTT of the TCP connection (Linux only: L{kernel_rtt
        <p2pnet_tx.network.rtt.kernel_rtt>}, one system call); C{None} where neither is known.
        The dotnet wire has no echo: the kernel's figure is all there is.
        """
        return keepalive.rtt(self)

    def when_trusted(self) -> Deferred[PeerChannel]:
        """
        Return a new Deferred that fires with this channel once the peer is trusted.

        It fails with L{HandshakeTimeout} or L{TrustRefused} if the trust protocol does not trust
        the peer, and with L{ChannelClosed} if the channel closes first.  The owner learns of
        the close before any of these fail, so an errback that reconnects gets a new channel.
        """
        if self._trusted:
            return succeed(self)
        if self.close_reason is not None:
            return fail(self._handshake_error or ChannelClosed(self.close_reason))
        return self._waiting().when_trusted()

    @property
    def is_trusted_by_peer(self) -> bool:
        """Whether the trust protocol reported that the peer trusts us (L{peer_trusts_us})."""
        return self._trusted_by_peer

    def peer_trusts_us(self) -> None:
        """
        Note that the peer now trusts this node, as far as the trust protocol can tell (ping
        trust: once it has sent the peer the pings the peer needs).  Fires the
        L{when_peer_trusts_us} waiters; nothing once the channel is closing.
        """
        events.peer_trusts_us(self)

    def when_peer_trusts_us(self) -> Deferred[PeerChannel]:
        """
        Return a new Deferred that fires with this channel once the trust protocol reports
        that the peer trusts us (L{peer_trusts_us}), at once if it did.  It fails with
        L{ChannelClosed} if the channel closes first.  A trust protocol that cannot tell never
        reports it.
        """
        return events.when_peer_trusts_us(self)

    def when_closed(self) -> Deferred[str]:
        """Return a new Deferred that fires with the close reason once the connection is gone."""
        return self._waiting().when_closed()

    def _waiting(self) -> ChannelWaiters:
        if self._waiters is None:
            self._waiters = ChannelWaiters()
        return self._waiters

    def drain(self) -> Deferred[PeerChannel]:
        """
        Return a new Deferred that fires with this channel once everything sent so far is in
        the transport and the transport takes writes again (at once if it does).  A producer
        that must not grow the queue sends, then waits for it.

        It fails with L{ChannelClosed} if the channel closes first.
        """
        if self._writer is None:
            return fail(ChannelClosed(self.close_reason or "not connected"))
        return self._writer.drain().addCallback(lambda _: self)

    when_writable = drain
    """An older name of L{drain}."""

    def send(self, packet: Packet) -> bool:
        """
        Send a packet to the peer, as C{transport.write} does: at once while the transport
        takes writes, else queued in order behind what is waiting.

        @return: True if it was sent or queued; False if the channel is not open (closing or
            closed: the packet is dropped and logged at debug level).
        @raise SendBufferFull: if the queue already holds C{limits.max_queued_bytes}; the
            packet is not queued and the channel stays open.  Wait for L{drain}.
        """
        if not self._open:
            self.log.debug("dropped {kind} for closed channel {channel}",
                           kind=packet.kind.value, channel=self)
            return False
        frame = self.codec.encode(packet)
        self._writer.write(frame)  # type: ignore[union-attr]
        self._traffic.bytes_out += len(frame)
        self._timers.last_sent = self.clock.seconds()  # type: ignore[union-attr]
        self.counters[OUT_COUNTERS.get(type(packet)) or "packets_out." + packet.kind.value] += 1
        return True

    def send_message(self, text: str) -> bool:
        """
        Send a L{PureMessagePacket} with C{text}; see L{send}.

        @raise TypeError: if C{text} is not a str.
        """
        if text.__class__ is not str:
            raise TypeError(f"a message is a str, not {type(text).__name__}")
        # The one check the packet's validators would make: the identifier was checked once.
        return self.send(_pure_message_packet(text, self.local_identifier, self._timestamp()))

    def _timestamp(self) -> datetime:
        """
        Now on the channel's clock, to the millisecond.  Messages sent within one millisecond
        share one datetime, which the codec formats once: making and formatting a time was a
        third of the cost of a small message.
        """
        millis = int(self.clock.seconds() * 1000)
        if millis != self._stamp_millis:
            self._stamp_millis = millis
            self._stamp = datetime.fromtimestamp(millis / 1000, timezone.utc)
        return self._stamp  # type: ignore[return-value]

    def trust(self) -> None:
        """
        Trust the peer: every packet type passes the gate and the larger frame limit applies.
        (Ignored while the peer's Identity is awaited, and once the channel is closing.)
        """
        self._lifecycle.trust()

    def untrust(self) -> None:
        """Stop trusting the peer: the gate and the untrusted frame limit apply again."""
        self._lifecycle.untrust()

    def log_peer(self, log: Logger, level: LogLevel, format: str, **fields: Any) -> bool:
        """
        Log a line that this channel's peer caused, within the channel's log budget: at most
        C{limits.peer_log_burst} lines at once, then as many per C{limits.peer_log_window}
        seconds (a token bucket on the channel's clock).  Warnings and worse have one budget;
        debug and info lines another.  A line over budget is counted, not logged; the next
        line logged, or the channel's close, says how many were not.

        Whatever the peer chose goes in C{fields} through L{peer_text
        <p2pnet_tx.logtext.peer_text>}, never into C{format}.

        @param log: the logger the line belongs to.
        @param level: its level.
        @param format: its template.
        @param fields: its fields (C{log_failure=failure} logs a failure, as C{log.failure}).
        @return: whether the line was logged.
        """
        return loglimit.log_peer(self, log, level, format, fields)

    def allows(self, kind: PacketType) -> bool:
        """Whether the gate lets a packet of type C{kind} through from this peer now."""
        if self._trusted:
            return True
        if kind in _DEFAULT_KINDS:
            return self.policy.allow_default_communication
        return self.policy.allow_enhanced_packet_exchange

    def close(self, reason: str = "closed") -> Deferred[str]:
        """
        Say goodbye with a Disconnect packet and close the connection once what was sent is
        written; abort it if the peer does not let the writes drain within
        C{limits.close_timeout}.

        @return: a Deferred that fires with the close reason once the connection is gone.
        """
        self._closing_requested(reason)
        self._lifecycle.close(reason)
        return self.when_closed()

    def abort(self, reason: str) -> None:
        """
        Drop the connection at once, after writing a best-effort Disconnect packet; for peers
        that broke the rules or ran out of time.  What is still queued is dropped.
        """
        self._closing_requested(reason)
        self._lifecycle.abort(reason)

    def peer_disconnected(self, packet: DisconnectPacket) -> None:
        """The peer said goodbye: close without answering."""
        self._closing_requested("disconnected by peer")
        self._lifecycle.peer_left("disconnected by peer")

    def _closing_requested(self, reason: str) -> None:
        # Automat runs an input given during a transition (an owner callback, a waiter) only
        # once that transition is over: stop sending and reading now, not then.
        if self._open:
            self._open = False
            self.close_reason = reason

    # -- Protocol -------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        deadlines = DeadlineQueue(self.clock) if self._deadlines is None else self._deadlines
        timers = self._timers = ChannelTimers(self, self.limits, deadlines)
        self._writer = self._writer_class(
            self.transport, self.clock, self.limits.max_queued_bytes,
            self.limits.write_stall_timeout, self._writes_stalled,
        )
        self._lifecycle.connected()
        if self.peer is None:
            self.peer = _peer_from_address(self.transport.getPeer())
        timers.start(self.clock.seconds())
        if self.local_identity is not None:
            self.send(self.local_identity)
        self.owner.channel_connected(self)
        if self._await_identity:
            self._lifecycle.expect_identity()
        elif self._trust_protocol is not None and self.policy.run_default_trust_protocol:
            self._lifecycle.start_handshake()

    def handshakeCompleted(self) -> None:
        """The TLS handshake is over (L{IHandshakeListener
        <twisted.internet.interfaces.IHandshakeListener>}): tell the owner."""
        if self._open:
            self.owner.channel_secured(self)

    def dataReceived(self, data: bytes) -> None:
        if self._open:
            self._traffic.bytes_in += len(data)
            self._receiver.data_received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lifecycle.connection_lost("connection lost: " + reason.getErrorMessage())

    # -- Lifecycle actions (called by the machine in p2pnet_tx.channel.lifecycle only) ----------

    def _lifecycle_opened(self) -> None:
        self._open = True

    def _lifecycle_awaiting_identity(self) -> None:
        self._awaiting_identity = True

    def _lifecycle_trusted(self) -> None:
        self._trusted = True
        self.trusted_since = self.clock.seconds()
        self._receiver.decoder.max_frame_size = self.limits.max_frame_size
        self.owner.channel_trusted(self)
        if self._waiters is not None and self._open:  # the owner may have closed it
            self._waiters.trusted(self)

    def _lifecycle_untrusted(self) -> None:
        self._trusted = False
        self.trusted_since = None
        self._receiver.decoder.max_frame_size = self.limits.max_untrusted_frame_size
        self.log.info("peer {peer} no longer trusted", peer=self.peer)

    def _lifecycle_handshake_failed(self, error: TrustRefused) -> None:
        self.counters["handshakes_failed"] += 1
        self._handshake_error = error
        if isinstance(error, HandshakeTimeout):
            self.log.warn("peer {peer} not trusted within {timeout} s", peer=self.peer,
                          timeout=error.timeout)
            return
        self.log.warn("not trusting {peer}: {reason}", peer=self.peer,
                      reason=peer_text(str(error), REASON_TEXT_LIMIT))
        # A wrong key or signature, a replay or a step out of order is a protocol violation:
        # the owner discourages the address (RELIABILITY.md row 10).  Silence is not.
        self.owner.peer_misbehaved(self, error)

    def _lifecycle_goodbye(self, reason: str, graceful: bool) -> None:
        if not self._says_goodbye:
            self._writer.finish(b"", graceful)  # type: ignore[union-attr]
            self._lifecycle_closing(reason)
            return
        goodbye = self.codec.encode(_goodbye(self, reason))
        self._writer.finish(goodbye, graceful)  # type: ignore[union-attr]
        self._traffic.bytes_out += len(goodbye)
        self.counters[OUT_COUNTERS[DisconnectPacket]] += 1
        self._lifecycle_closing(reason)

    def _lifecycle_peer_left(self, reason: str) -> None:
        self.transport.loseConnection()
        self._lifecycle_closing(reason)

    def _lifecycle_stuck(self) -> None:
        self.transport.abortConnection()

    def _lifecycle_closing(self, reason: str) -> None:
        # The owner first: whoever waits on this channel and reconnects from an errback must
        # find it gone from the network already.
        self.close_reason = reason
        self._open = self._trusted = self._awaiting_identity = False
        if self._timers is not None:
            self._timers.stop()
        if self._writer is not None:
            self._writer.stop(reason)
        self.owner.channel_closed(self, reason)
        if self._waiters is not None:
            self._waiters.untrustable(self._handshake_error or ChannelClosed(reason))
        events.peer_trust_lost(self, reason)

    def _lifecycle_closed(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        events.peer_trust_lost(self, self.close_reason)
        self._receiver.cancel_pending()
        self._data_observers = None
        loglimit.log_suppressed_lines(self)
        self.log.info("channel to {peer} closed: {reason}", peer=self.peer,
                      reason=peer_text(self.close_reason, REASON_TEXT_LIMIT))
        self._waiting().closed_with(self.close_reason)

    # -- Receiving (the packet path itself is the PacketReceiver's) -----------------------------

    def _identified(self, accepted: bool) -> None:
        """The peer's first packet was judged (see L{PacketReceiver.identity_received})."""
        self._awaiting_identity = False
        if not accepted:
            self.counters["refused_identities"] += 1
            self.close("refused")
        elif self._trust_protocol is not None and self.policy.run_default_trust_protocol:
            self._lifecycle.start_handshake()
        else:
            self._lifecycle.open()

    def _misbehaved(self, error: Exception) -> None:
        reason = peer_text(str(error), REASON_TEXT_LIMIT)
        self.log.warn("dropping misbehaving peer {peer}: {error}", peer=self.peer, error=reason)
        self.owner.peer_misbehaved(self, error)
        self.abort(f"misbehaving: {reason}")

    # -- Sending and timers ---------------------------------------------------------------------

    # The keep-alives are keepalive.py's; the timers call this when one is due.
    _keepalive_due = keepalive.keepalive_due

    def _writes_stalled(self) -> None:
        self.log.warn("writes to {peer} stalled for {timeout} s", peer=self.peer,
                      timeout=self.limits.write_stall_timeout)
        self.abort("write stall")


def _goodbye(channel: PeerChannel, reason: str) -> DisconnectPacket:
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
