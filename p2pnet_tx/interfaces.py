# -*- test-case-name: tests.test_peer -*-
"""
The interfaces of p2pnet_tx.

Implementations declare them with C{@implementer} and the tests check each one with
L{zope.interface.verify.verifyObject}.
"""

from __future__ import annotations

from collections.abc import Iterator

from zope.interface import Attribute, Interface


class IPeer(Interface):
    """
    A peer on the network: where it listens, and who it says it is.
    """

    address = Attribute(
        "The peer's IP address, a normalised IPv4 or IPv6 string (for a peer still to be "
        "dialled by name, a L{HostnamePeer<p2pnet_tx.peer.HostnamePeer>}, its host name).")
    port = Attribute("The peer's TCP listening port, 1 to 65535.")
    identifier = Attribute("The peer's identifier, a string of at most 256 UTF-8 bytes, or None.")


class IFrameDecoder(Interface):
    """
    An incremental, sans-I/O decoder of one wire format.
    """

    max_frame_size = Attribute(
        "The largest frame body accepted, in bytes.  It may be changed at any time, also between "
        "two items of an iter_feed() iterator, and then applies to the frames decoded after."
    )
    buffered = Attribute("The number of bytes held that do not yet form a complete frame.")

    def feed(data: bytes) -> list:
        """
        Add received bytes and return, in order, one item per frame they complete.

        Each item is a packet or a L{p2pnet_tx.errors.MalformedPacket} standing for a frame whose
        body is not a valid packet.  Every frame is judged by the C{max_frame_size} in force at
        the call.

        @raise p2pnet_tx.errors.FramingError: when the byte stream breaks the framing rules; its
            C{frames} attribute holds the items of the same call before the violation.  The
            decoder must not be fed again.
        """

    def iter_feed(data: bytes) -> Iterator:
        """
        Add received bytes and return an iterator over the items L{feed} would return, each
        decoded only when the iterator reaches it.

        The bytes are taken at the call.  C{max_frame_size} is read afresh for every frame, so a
        consumer that raises it while handling one item (its peer became trusted) has the new
        limit applied to the next frame, in the same call.  An iterator left unfinished leaves
        the frames it did not reach buffered, for the next call to decode first.

        @raise p2pnet_tx.errors.FramingError: from the iterator, at the violation, once every
            earlier item was yielded; the bytes after it are never decoded, the iterator ends,
            and the decoder must not be fed again.
        """


class ICodec(Interface):
    """
    A wire format: how packets become frames and frames become packets.
    """

    name = Attribute("The name of the format, as given to L{p2pnet_tx.wire.get_codec}.")

    def encode(packet: object) -> bytes:
        """
        Return the bytes of one whole frame carrying C{packet}.
        """

    def decoder(max_frame_size: int = ...) -> IFrameDecoder:
        """
        Return a new incremental decoder for one byte stream.
        """


class IPeerChannelOwner(Interface):
    """
    What a L{p2pnet_tx.channel.PeerChannel} reports to, and asks, the network that owns it.

    Every method is called on the reactor thread; none may block.
    """

    def channel_connected(channel: object) -> None:
        """A channel's connection is made."""

    def channel_secured(channel: object) -> None:
        """
        A channel's TLS handshake is complete: its peer proved the key of its certificate.
        (Never called on a channel that is not TLS.)
        """

    def identity_received(channel: object, packet: object) -> bool:
        """
        A channel that awaits its peer's identity received the first Identity packet.

        @return: True to accept the peer, False to refuse it (duplicate, blocked).
        """

    def channel_trusted(channel: object) -> None:
        """A channel's peer became trusted."""

    def peer_misbehaved(channel: object, error: object) -> None:
        """A channel's peer broke the protocol; the channel is being dropped."""

    def channel_closed(channel: object, reason: str) -> None:
        """A channel's connection is gone; C{reason} says why."""
