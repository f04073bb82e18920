# -*- test-case-name: tests.test_discovery_dotnet_datagram -*-
"""
The LAN discovery datagram of the reference .NET P2PNet, sans I/O.

.NET sends the bare UTF-8 JSON of an IdentifierPacket, with no tags
(C{P2PNet/DicoveryChannels/LANDiscoveryChannelBase.cs}, C{UniqueIdentifier()})::

    {"Message":"discovery","Data":8051,"IP":"10.0.0.7","SourceOriginIdentifier":"peer_one",
     "SourceOriginTime":"2026-01-01T00:00:00Z"}

C{Data} is the TCP listening port and C{IP} the sender's LAN IPv4 address; the receiver dials
C{IP:Data} (C{HandlePacket}).  It is written and read with the C{dotnet} codec's JSON
(L{encode_packet_object <p2pnet_tx.wire.encode_packet_object>}, L{decode_packet_object
<p2pnet_tx.wire.decode_packet_object>}), so its escaping is .NET's.  Nothing in it is
authenticated: a node accepts it only in C{dotnet} mode, and only from the address it names.
"""

from __future__ import annotations

from datetime import datetime

from p2pnet_tx.discovery.announcement import BadAnnouncement
from p2pnet_tx.errors import MalformedPacket
from p2pnet_tx.packets import IdentifierPacket, PacketType
from p2pnet_tx.peer import GenericPeer, normalize_address
from p2pnet_tx.wire import decode_packet_object, encode_packet_object

__all__ = ["DISCOVERY_MESSAGE", "DotNetDatagramReader", "encode_dotnet_datagram",
           "parse_dotnet_datagram"]

DISCOVERY_MESSAGE = "discovery"
"""The C{Message} of the datagrams .NET sends (and we send)."""


def encode_dotnet_datagram(identifier: str, address: str, port: int, when: datetime) -> bytes:
    """
    Write the datagram .NET sends: its IdentifierPacket, bare.

    @param identifier: the node's identifier (C{SourceOriginIdentifier}).
    @param address: the IPv4 address the node sends from (C{IP}), which .NET dials.
    @param port: the TCP listening port (C{Data}).
    @param when: C{SourceOriginTime}.
    """
    return encode_packet_object(IdentifierPacket(
        DISCOVERY_MESSAGE, port, address, source_origin_identifier=identifier,
        source_origin_time=when,
    ))


def parse_dotnet_datagram(data: bytes) -> IdentifierPacket:
    """
    Read a .NET discovery datagram.

    @raise BadAnnouncement: C{malformed}, saying why.
    """
    packet = decode_packet_object(PacketType.IDENTITY, data)
    if isinstance(packet, MalformedPacket):
        raise BadAnnouncement("malformed", str(packet))
    assert isinstance(packet, IdentifierPacket)
    return packet


class DotNetDatagramReader:
    """
    Turns .NET discovery datagrams into peers to dial.

    As .NET's C{HandlePacket}, any C{Message} is taken; unlike it, C{IP} must be the datagram's
    source, C{Data} a port, and an identifier equal to this node's means the datagram is ours.

    @param own_identifier: this node's identifier.
    """

    def __init__(self, own_identifier: str) -> None:
        self._own_identifier = own_identifier

    def read(self, data: bytes, source: str) -> GenericPeer:
        """
        Check one datagram from C{source}.

        @return: the peer to dial: C{source}, port C{Data}; no identifier (a .NET identifier is
            a name, proven by nothing).
        @raise BadAnnouncement: C{malformed}, C{source_mismatch}, C{bad_port} or C{self}.
        """
        packet = parse_dotnet_datagram(data)
        if not packet.ip or normalize_address(packet.ip) != source:
            raise BadAnnouncement(
                "source_mismatch", f"names {packet.ip or 'no address'} but was sent from {source}"
            )
        if packet.data == 0:
            raise BadAnnouncement("bad_port", "names port 0")
        if packet.source_origin_identifier == self._own_identifier:
            raise BadAnnouncement("self", "this node's own datagram")
        return GenericPeer(source, packet.data)
