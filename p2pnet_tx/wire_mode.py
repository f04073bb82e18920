# -*- test-case-name: tests.test_wire_mode -*-
"""
L{WireMode}: what differs between the two wire formats beyond the bytes, in one object per mode.

The codec (L{p2pnet_tx.wire}) says how packets become bytes.  A wire mode says how a network
behaves around them: whether peers introduce themselves, how an inbound peer is known, whether
an empty peer list is worth sending.  Code asks the mode (C{mode.exchanges_identity}), never
compares its name, so a third mode is one more instance here and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from p2pnet_tx.channel.limits import ChannelLimits
from p2pnet_tx.channel.paced import PacedWriter
from p2pnet_tx.channel.writer import ChannelWriter
from p2pnet_tx.interfaces import ICodec
from p2pnet_tx.wire import get_codec


@attrs.frozen
class WireMode:
    """
    How a network talks on one wire format.

    @ivar name: the wire format's name, as given to L{p2pnet_tx.wire.get_codec} and as
        C{PeerNetwork.wire} reports it.
    @ivar exchanges_identity: channels open with an Identity packet and wait for the peer's
        before anything else; a peer is accepted, or refused as a duplicate, only then.
    @ivar peer_known_by_connection: a peer is accepted as soon as its connection is made, with
        no Identity; an inbound one is known by its connection's address and port, which is no
        listening port, so it is neither remembered nor shared.
    @ivar sends_empty_peer_group: a newly trusted peer is sent the node's peer list even when it
        is empty (.NET nodes never send an empty one, and do not expect it).
    @ivar says_goodbye: channels close with a Disconnect packet (else they close the socket).
    @ivar writer_class: the writer of each channel (L{PacedWriter} paces frames for .NET).
    @ivar channel_limits: the channel limits a network of this mode uses unless given others.
    @ivar peer_group_awaits_peer_trust: a newly trusted peer is sent the peer list only once
        the trust protocol reports that the peer trusts us too (ping trust does), since the
        peer drops a list from a peer it does not trust (.NET does, and never asks again).
    """

    name: str
    exchanges_identity: bool
    peer_known_by_connection: bool
    sends_empty_peer_group: bool
    says_goodbye: bool = True
    writer_class: type[ChannelWriter] = ChannelWriter
    channel_limits: ChannelLimits = attrs.field(factory=ChannelLimits)
    peer_group_awaits_peer_trust: bool = False

    def codec(self) -> ICodec:
        """
        @return: a new codec of this mode's wire format.
        """
        return get_codec(self.name)


P2PNET = WireMode(
    "p2pnet", exchanges_identity=True, peer_known_by_connection=False, sends_empty_peer_group=True
)
"""The native mode: Identity first, peers known by identifier and listening port."""

DOTNET_FRAME_LIMIT = 64 * 1024 * 1024
"""The frame cap for .NET peers, trusted or not: .NET sends a file whole, in one frame."""

DOTNET_CHANNEL_LIMITS = ChannelLimits(
    # .NET trusts at its 3rd read with "Ping from" and answers pings only from its 7th: when it
    # trusts us first, our 3rd ping comes back about 18 s in (docs/dotnet.md).
    handshake_timeout=45.0,
    # A trusted .NET peer sends nothing more, and answers no keep-alive: never idle-close it.
    idle_timeout=None,
    max_frame_size=DOTNET_FRAME_LIMIT,
    max_untrusted_frame_size=DOTNET_FRAME_LIMIT,
)
"""The channel limits of the dotnet mode (see docs/dotnet.md)."""

DOTNET = WireMode(
    "dotnet", exchanges_identity=False, peer_known_by_connection=True,
    sends_empty_peer_group=False, says_goodbye=False, writer_class=PacedWriter,
    channel_limits=DOTNET_CHANNEL_LIMITS, peer_group_awaits_peer_trust=True,
)
"""Compatibility with .NET P2PNet nodes: no Identity, peers known by their connection, no
Disconnect, frames paced 300 ms apart, no idle close, 64 MiB frames."""

WIRE_MODES: Mapping[str, WireMode] = MappingProxyType(
    {mode.name: mode for mode in (P2PNET, DOTNET)}
)
"""Every wire mode, by name."""


def get_wire_mode(mode: str | WireMode) -> WireMode:
    """
    Return the wire mode of a name (C{"p2pnet"} or C{"dotnet"}); a L{WireMode} is returned as is.

    @raise ValueError: for any other name, naming the choices.
    """
    if isinstance(mode, WireMode):
        return mode
    try:
        return WIRE_MODES[mode]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown wire mode {mode!r}; choose one of {', '.join(sorted(WIRE_MODES))}"
        ) from None
