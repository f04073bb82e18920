# -*- test-case-name: tests.test_peer -*-
"""
The interfaces of p2pnet_tx.

Implementations declare them with C{@implementer} and the tests check each one with
L{zope.interface.verify.verifyObject}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IPeer(Interface):
    """
    A peer on the network: where it listens, and who it says it is.
    """

    address = Attribute("The peer's IP address, a normalised IPv4 or IPv6 string.")
    port = Attribute("The peer's TCP listening port, 1 to 65535.")
    identifier = Attribute("The peer's identifier, a string of at most 256 UTF-8 bytes, or None.")


class IFrameDecoder(Interface):
    """
    An incremental, sans-I/O decoder of one wire format.
    """

    max_frame_size = Attribute("The largest frame body accepted, in bytes; may be changed.")
    buffered = Attribute("The number of bytes held that do not yet form a complete frame.")

    def feed(data: bytes) -> list:
        """
        Add received bytes and return, in order, one item per frame they complete.

        Each item is a packet or a L{p2pnet_tx.errors.MalformedPacket} standing for a frame whose
        body is not a valid packet.

        @raise p2pnet_tx.errors.FramingError: when the byte stream breaks the framing rules; the
            decoder must not be fed again.
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
