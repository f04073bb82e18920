"""
The .NET discovery datagram: written byte for byte as .NET writes it, read as leniently as
.NET reads it, and accepted only from the address it names.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.discovery.announcement import BadAnnouncement
from p2pnet_tx.discovery.dotnet_datagram import (
    DotNetDatagramReader,
    encode_dotnet_datagram,
    parse_dotnet_datagram,
)
from p2pnet_tx.peer import GenericPeer

WHEN = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)

# What P2PNet/DicoveryChannels/LANDiscoveryChannelBase.cs sends (UniqueIdentifier(): the
# IdentifierPacket("discovery", ListeningPort, LocalIPV4Address), System.Text.Json's default
# encoder), for a node "peer_one" on 10.0.0.7 listening on 8051.
DOTNET_DATAGRAM = (
    b'{"Message":"discovery","Data":8051,"IP":"10.0.0.7","SourceOriginIdentifier":"peer_one",'
    b'"SourceOriginTime":"2026-01-02T03:04:05.1234567Z"}'
)


class EncodeTests(SynchronousTestCase):
    """What a dotnet node sends."""

    def test_bytes_as_dotnet_writes_them(self) -> None:
        """The bare IdentifierPacket JSON, in .NET's field order, no tags."""
        data = encode_dotnet_datagram("peer_one", "10.0.0.7", 8051, WHEN)
        self.assertEqual(
            data,
            b'{"Message":"discovery","Data":8051,"IP":"10.0.0.7",'
            b'"SourceOriginIdentifier":"peer_one","SourceOriginTime":"2026-01-02T03:04:05.123456Z"}',
        )

    def test_escaped_as_dotnet_escapes(self) -> None:
        """An identifier with HTML-sensitive or non-ASCII characters is escaped the .NET way."""
        data = encode_dotnet_datagram("a<b>&'é", "10.0.0.7", 8051, WHEN)
        self.assertIn(b'"SourceOriginIdentifier":"a\\u003Cb\\u003E\\u0026\\u0027\\u00E9"', data)
        self.assertTrue(data.isascii())

    def test_round_trip(self) -> None:
        """Our reader reads what we write."""
        packet = parse_dotnet_datagram(encode_dotnet_datagram("x", "10.0.0.7", 8051, WHEN))
        self.assertEqual((packet.message, packet.data, packet.ip, packet.source_origin_identifier),
                         ("discovery", 8051, "10.0.0.7", "x"))


class ReaderTests(SynchronousTestCase):
    """What a dotnet node accepts."""

    def setUp(self) -> None:
        self.reader = DotNetDatagramReader("our_node")

    def cause(self, data: bytes, source: str = "10.0.0.7") -> str:
        with self.assertRaises(BadAnnouncement) as raised:
            self.reader.read(data, source)
        return raised.exception.cause

    def test_dotnet_datagram_names_a_peer(self) -> None:
        """The datagram .NET sends gives the peer at its source address and port Data, with
        no identifier (a .NET name proves nothing)."""
        self.assertEqual(self.reader.read(DOTNET_DATAGRAM, "10.0.0.7"),
                         GenericPeer("10.0.0.7", 8051))

    def test_any_message_as_dotnet(self) -> None:
        """As .NET's HandlePacket, the Message is not checked."""
        data = DOTNET_DATAGRAM.replace(b'"discovery"', b'"hello"')
        self.assertEqual(self.reader.read(data, "10.0.0.7").port, 8051)

    def test_address_must_be_the_source(self) -> None:
        """IP naming another host than the sender: refused (.NET would dial it)."""
        self.assertEqual(self.cause(DOTNET_DATAGRAM, "10.0.0.8"), "source_mismatch")
        no_ip = DOTNET_DATAGRAM.replace(b'"IP":"10.0.0.7",', b"")
        self.assertEqual(self.cause(no_ip), "source_mismatch")

    def test_port_zero(self) -> None:
        """Data 0 names no port to dial."""
        self.assertEqual(self.cause(DOTNET_DATAGRAM.replace(b"8051", b"0")), "bad_port")

    def test_own_datagram(self) -> None:
        """A datagram carrying this node's identifier is its own, looped back."""
        ours = encode_dotnet_datagram("our_node", "10.0.0.7", 8051, WHEN)
        self.assertEqual(self.cause(ours), "self")

    def test_malformed(self) -> None:
        """Junk, another JSON value, a wrong-typed field, a bad address: malformed, and said
        why."""
        for data in (b"", b"\xff\xfe", b"[1]", b'{"Data":"8051","IP":"10.0.0.7"}',
                     b'{"Data":8051,"IP":"999.0.0.1"}', b'{"Data":70000,"IP":"10.0.0.7"}'):
            with self.subTest(data=data):
                self.assertEqual(self.cause(data), "malformed")

    @given(st.binary(max_size=300))
    def test_any_bytes_are_read_or_refused(self, data: bytes) -> None:
        """Hostile input: arbitrary bytes give a peer or a BadAnnouncement, never another
        exception."""
        try:
            self.reader.read(data, "10.0.0.7")
        except BadAnnouncement:
            pass

    @given(st.dictionaries(st.sampled_from(["Message", "Data", "IP", "SourceOriginIdentifier",
                                            "SourceOriginTime"]),
                           st.none() | st.integers() | st.text(max_size=20) | st.booleans()))
    def test_any_fields_are_read_or_refused(self, fields: dict) -> None:
        """Hostile JSON: any values in the datagram's fields give a peer or a
        BadAnnouncement."""
        import json

        try:
            peer = self.reader.read(json.dumps(fields).encode(), "10.0.0.7")
        except BadAnnouncement:
            return
        self.assertEqual(peer.address, "10.0.0.7")
