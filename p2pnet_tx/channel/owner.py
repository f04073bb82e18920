# -*- test-case-name: tests.test_channel,tests.test_channel_rtt -*-
"""
L{ChannelOwner}: what a channel reports to when nobody else listens, and the base of real
owners (the network); L{Traffic}: the byte totals an owner keeps for all its channels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger
from zope.interface import implementer

from p2pnet_tx.interfaces import IPeerChannelOwner
from p2pnet_tx.packets import IdentifierPacket

if TYPE_CHECKING:
    from p2pnet_tx.channel.protocol import PeerChannel

class Traffic:
    """
    Bytes to and from the peers of all the channels of one owner, since it was made.

    @ivar bytes_in: bytes read (over TLS, the decrypted bytes: the frames themselves).
    @ivar bytes_out: bytes of the frames written, or queued to be written.
    """

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = self.bytes_out = 0


@implementer(IPeerChannelOwner)
class ChannelOwner:
    """
    An owner that accepts every peer and otherwise only logs; the base of real owners.
    """

    log = Logger()

    @property
    def traffic(self) -> Traffic:
        """
        The bytes all of this owner's channels read and wrote (a channel whose owner has no
        C{traffic} counts its own, out of sight).
        """
        traffic: Traffic | None = self.__dict__.get("_traffic")
        if traffic is None:
            traffic = self.__dict__["_traffic"] = Traffic()
        return traffic

    def channel_connected(self, channel: PeerChannel) -> None:
        """Nothing to do."""

    def channel_secured(self, channel: PeerChannel) -> None:
        """Nothing to do: a trust protocol (L{p2pnet_tx.trust.KeyTrust}) may check the key."""

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
