# -*- test-case-name: tests.test_errors -*-
"""
The errors p2pnet_tx reports.

Every error a caller can see is a subclass of L{P2PNetError} and carries the facts that
explain it (the limit that was exceeded, the reason a packet was refused).  Errors about bad
input from a peer are data: decoders return L{MalformedPacket} instances in place of a bad
frame, and raise L{FramingError} only when the byte stream itself cannot be trusted any more.
"""

from __future__ import annotations

from p2pnet_tx.logtext import peer_text


class P2PNetError(Exception):
    """The base of every error raised or returned by p2pnet_tx."""


class InvalidPeer(P2PNetError, ValueError):
    """An address, port or identifier that cannot name a peer."""


class MalformedPacket(P2PNetError):
    """
    A complete frame whose body is not a valid packet.

    Decoders return instances of this class in place of the bad frame, so one bad frame never
    hides its neighbours.

    @ivar reason: a human-readable explanation.
    @ivar raw: the bytes of the frame body, as received.
    """

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, raw=<{len(self.raw)} bytes>)"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, MalformedPacket)
        return (self.reason, self.raw) == (other.reason, other.raw)

    def __hash__(self) -> int:
        return hash((type(self), self.reason, self.raw))


class UnknownPacketType(MalformedPacket):
    """
    A well-formed frame naming a packet type this node does not know.

    From a trusted peer, forward compatibility asks that it be ignored and counted, not
    punished; before trust it is misbehaviour.

    @ivar packet_type: the unknown type, as received; a text type is cut to its first
        C{MAX_PACKET_TYPE_CHARS} (256) characters (C{raw} keeps the whole frame).
    @ivar shown_type: the type as logs and the reason show it: as L{peer_text} makes it (short
        and escaped), in quotes if it is text.
    """

    MAX_PACKET_TYPE_CHARS = 256

    def __init__(self, packet_type: object, raw: bytes = b"") -> None:
        shown = peer_text(packet_type)
        if isinstance(packet_type, str):
            shown = f"'{shown}'"
            packet_type = packet_type[: self.MAX_PACKET_TYPE_CHARS]
        super().__init__(f"unknown packet type {shown}", raw)
        self.packet_type = packet_type
        self.shown_type = shown


class FramingError(P2PNetError):
    """
    The byte stream of a peer broke the framing rules; the connection cannot go on.

    @ivar frames: what C{feed()} completed in the same call before the violation: the caller
        may still act on them (or not) before it drops the peer.  (C{iter_feed()} has yielded
        them already, and judges each frame by the limit in force when it reaches it.)
    """

    frames: list = []


class FrameTooLarge(FramingError):
    """
    A frame is (or would become) larger than the decoder accepts.

    @ivar size: the declared or buffered size, in bytes.
    @ivar limit: the maximum frame size in force.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class TooMuchGarbage(FramingError):
    """
    More bytes than the maximum frame size arrived outside of any frame.

    @ivar size: the number of garbage bytes seen since the last complete frame.
    @ivar limit: the maximum frame size in force.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes of garbage outside any frame (limit {limit})")
        self.size = size
        self.limit = limit


class TrustPolicyConflict(P2PNetError, ValueError):
    """An L{IncomingPeerTrustPolicy} whose settings contradict each other."""


class ChannelClosed(P2PNetError):
    """
    The channel closed before what was waited for happened.

    @ivar reason: why it closed, as text.
    """

    def __init__(self, reason: str = "channel closed") -> None:
        super().__init__(reason)
        self.reason = reason


class SendBufferFull(P2PNetError):
    """
    A send to a live peer would take its channel's queue of unsent bytes past the cap.

    The packet was not queued; the channel stays open.  A peer that reads is never dropped for
    what the application sends: wait for C{channel.drain()} and send again.

    @ivar queued: the bytes queued for the peer when the send was refused.
    @ivar limit: the cap (L{p2pnet_tx.channel.ChannelLimits.max_queued_bytes}).
    """

    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"{queued} bytes already queued for the peer (cap {limit} bytes)")
        self.queued = queued
        self.limit = limit


class TrustRefused(P2PNetError):
    """The trust protocol decided not to trust the peer, or failed."""


class HandshakeTimeout(TrustRefused):
    """
    The peer did not become trusted within the handshake deadline.

    @ivar timeout: the deadline, in seconds.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no trust within {timeout} seconds")
        self.timeout = timeout


class PeerRefused(P2PNetError):
    """
    The network would not (or could not) add a peer.

    @ivar peer: the peer concerned, if known.
    """

    def __init__(self, message: str, peer: object = None) -> None:
        super().__init__(message)
        self.peer = peer


class DuplicatePeer(PeerRefused):
    """The peer is already connected: same identifier, or same address and listening port."""


class SelfConnection(PeerRefused):
    """The peer is this node."""


class PeerBlocked(PeerRefused):
    """The peer's address or identifier is blocked."""


class TooManyPeers(PeerRefused):
    """A connection limit of the network is reached."""


class NetworkClosed(P2PNetError):
    """The network is closed and makes no more connections."""


class InvalidPeerCertificate(PeerRefused):
    """
    The peer's TLS connection proved no usable key: no TLS, no certificate, or a certificate
    whose key is not Ed25519.  A protocol violation: the peer is dropped as misbehaving.
    """


class IdentityMismatch(PeerRefused):
    """
    The peer's identifier is not the one its TLS-proven key derives: it claimed (or was dialled
    as) an identifier it does not own.  A protocol violation: the peer is dropped as
    misbehaving.

    @ivar claimed: the identifier claimed or expected.
    @ivar derived: the identifier the peer's key derives.
    """

    def __init__(self, message: str, peer: object = None, *, claimed: str | None = None,
                 derived: str | None = None) -> None:
        super().__init__(message, peer)
        self.claimed = claimed
        self.derived = derived
