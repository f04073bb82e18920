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
from p2pnet_tx.channel import actions, events, keepalive, loglimit
from p2pnet_tx.channel.actions import GOODBYE_REASON_CHARS  # noqa: F401 (imported from here)
from p2pnet_tx.channel.events import ChannelWaiters
from p2pnet_tx.channel.keepalive import KEEPALIVE_MESSAGE  # noqa: F401 (imported from here)
from p2pnet_tx.channel.lifecycle import LifecycleCore, new_lifecycle
from p2pnet_tx.channel.limits import ChannelLimits
from p2pnet_tx.channel.loglimit import LogLimiter
from p2pnet_tx.channel.owner import ChannelOwner, Traffic
from p2pnet_tx.channel.receiver import OUT_COUNTERS, PacketReceiver
from p2pnet_tx.channel.timers import ChannelTimers, DeadlineQueue
from p2pnet_tx.channel.writer import ChannelWriter
from p2pnet_tx.errors import (
    ChannelClosed,
    TrustRefused,
)
from p2pnet_tx.handlers import PacketHandleProtocol
from p2pnet_tx.interfaces import ICodec, IPeer, IPeerChannelOwner
from p2pnet_tx.packets import (
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
    _pure_message_packet,
)
from p2pnet_tx.policy import IncomingPeerTrustPolicy
from p2pnet_tx.tls import ProvenKey, proven_key
from p2pnet_tx.wire import get_codec

TrustProtocol = Callable[["PeerChannel"], "Deferred[bool] | Any"]
"""A trust protocol: called with a channel, returns (a Deferred of, or a coroutine of) a bool."""

_DEFAULT_KINDS = frozenset({PacketType.MESSAGE, PacketType.DISCONNECT})

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
        derives (L{p2pnet_tx.tls.proven_key}), read from the certificate once.

        @raise InvalidPeerCertificate: if the connection is not TLS, its handshake is not over,
            or the peer's certificate holds no Ed25519 key (nothing is kept then).
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
        (the p2pnet wire), else the kernel's smoothed RTT of the TCP connection (Linux:
        L{kernel_rtt<p2pnet_tx.network.rtt.kernel_rtt>}); C{None} where neither is known.
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

    when_writable = drain  # an older name of drain()

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
        return self.send(_pure_message_packet(text, self.local_identifier, _message_time(self)))

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
        Log a line this channel's peer caused, within the channel's log budget (a token bucket
        of C{limits.peer_log_burst} lines per C{limits.peer_log_window} s; warnings have a
        budget of their own): over it the line is counted, and a later line says how many were
        not logged.  Peer text goes in C{fields}, through L{peer_text
        <p2pnet_tx.logtext.peer_text>}, never into C{format}.

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

    _closing_requested = actions.closing_requested

    # -- Protocol -------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        actions.connection_made(self)

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

    # -- Lifecycle actions: called by the machine (lifecycle.py) only; actions.py does them --

    _lifecycle_opened = actions.opened
    _lifecycle_awaiting_identity = actions.awaiting_identity
    _lifecycle_trusted = actions.trusted
    _lifecycle_untrusted = actions.untrusted
    _lifecycle_handshake_failed = actions.handshake_failed
    _lifecycle_goodbye = actions.goodbye
    _lifecycle_peer_left = actions.peer_left
    _lifecycle_stuck = actions.stuck
    _lifecycle_closing = actions.closing
    _lifecycle_closed = actions.closed

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

    # -- Dropping the peer, and the timers' calls (actions.py and keepalive.py do them) ---------

    _misbehaved = actions.misbehaved
    _writes_stalled = actions.writes_stalled
    _keepalive_due = keepalive.keepalive_due


def _message_time(channel: PeerChannel) -> datetime:
    """
    Now on the channel's clock, to the millisecond.  Messages sent within one millisecond
    share one datetime, which the codec formats once: making and formatting a time was a
    third of the cost of a small message.
    """
    millis = int(channel.clock.seconds() * 1000)
    if millis != channel._stamp_millis:
        channel._stamp_millis = millis
        channel._stamp = datetime.fromtimestamp(millis / 1000, timezone.utc)
    return channel._stamp  # type: ignore[return-value]
