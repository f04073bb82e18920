"""
Tests for L{p2pnet_tx.files.protocol} and the binary chunk frame of the p2pnet wire.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import FrameTooLarge, MalformedPacket
from p2pnet_tx.files.manifest import manifest_of
from p2pnet_tx.files.protocol import (
    CHUNK_HEADER,
    BadOffer,
    Chunk,
    FileMessage,
    ProtocolError,
    chunk_packet,
    encode_chunk,
    encode_message,
    parse,
)
from p2pnet_tx.packets import (
    MIN_TIME,
    DataPayloadFormat,
    DataTransmissionPacket,
    PureMessagePacket,
)
from p2pnet_tx.wire import BINARY_FRAME, FILE_CHUNK_MARK, DotNetCodec, P2PNetCodec

ID = "0123456789ab"


class MessageTests(SynchronousTestCase):
    """Every control message reads back; hostile ones raise ProtocolError."""

    def test_round_trips(self) -> None:
        """encode_message then parse gives the message back."""
        path = Path(self.mktemp())
        path.write_bytes(b"hello")
        manifest = manifest_of(str(path))
        for message in (
            FileMessage("offer", ID, manifest=manifest),
            FileMessage("accept", ID, need=((0, 3), (5, 6))),
            FileMessage("request", ID, need=((2, 3),)),
            FileMessage("refuse", ID, reason="too large"),
            FileMessage("cancel", ID, reason="bye"),
            FileMessage("ack", ID, done=12345),
            FileMessage("done", ID, sha256=manifest.sha256),
        ):
            self.assertEqual(parse(encode_message(message)), message)

    def test_chunk_round_trip(self) -> None:
        """A chunk's payload is the mark, the id, the index and the bytes."""
        payload = encode_chunk(ID, 70000, b"data")
        self.assertEqual(payload[0], FILE_CHUNK_MARK)
        self.assertEqual(len(payload), CHUNK_HEADER + 4)
        chunk = parse(payload)
        assert isinstance(chunk, Chunk)
        self.assertEqual((chunk.transfer_id, chunk.index, bytes(chunk.data)), (ID, 70000, b"data"))

    def test_hostile_messages(self) -> None:
        """Bad JSON, ops, ids, ranges and fields are refused, saying why."""
        cases = [
            b"{", b"{}", b"[]", b'{"op":"offer"}', b'{"op":"nope","id":"0123456789ab"}',
            b'{"op":"ack","id":"0123456789AB","done":1}',
            b'{"op":"ack","id":"../../etc/x","done":1}',
            b'{"op":"ack","id":"0123456789ab","done":-1}',
            b'{"op":"ack","id":"0123456789ab","done":"1"}',
            b'{"op":"accept","id":"0123456789ab","need":[[3,3]]}',
            b'{"op":"accept","id":"0123456789ab","need":[[0,99999999]]}',
            b'{"op":"accept","id":"0123456789ab","need":[[0]]}',
            b'{"op":"accept","id":"0123456789ab","need":' + b"[[0,1]," * 5000 + b"[0,1]]",
            b'{"op":"refuse","id":"0123456789ab"}',
            b'{"op":"done","id":"0123456789ab","sha256":"xyz"}',
            b"\xc4short", b"\xc4" + b"\xff" * 12 + b"\0\0\0\0", b"plain bytes", b"",
        ]
        for payload in cases:
            self.assertRaises(ProtocolError, parse, payload)

    def test_bad_offer_keeps_the_id(self) -> None:
        """An offer with a bad manifest says which transfer, so it can be refused."""
        with self.assertRaises(BadOffer) as caught:
            parse(b'{"op":"offer","id":"0123456789ab","manifest":{"name":"x"}}')
        self.assertEqual(caught.exception.transfer_id, ID)

    def test_long_reason_cut(self) -> None:
        """Reasons are cut to 300 characters both ways."""
        message = parse(encode_message(FileMessage("cancel", ID, reason="x" * 1000)))
        assert isinstance(message, FileMessage)
        self.assertEqual(len(message.reason or ""), 300)

    @given(st.binary(max_size=200))
    def test_parse_only_raises_protocol_error(self, payload: bytes) -> None:
        """Any bytes parse or raise ProtocolError."""
        try:
            parse(payload)
        except ProtocolError:
            pass

    @given(st.dictionaries(st.sampled_from(["op", "id", "need", "reason", "done", "sha256",
                                            "manifest"]),
                           st.recursive(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.text(max_size=20)),
                                        lambda inner: st.lists(inner, max_size=3), max_leaves=8)))
    def test_parse_json_objects(self, obj: dict) -> None:
        """Any JSON object parses or raises ProtocolError."""
        import orjson

        try:
            parse(orjson.dumps(obj))
        except ProtocolError:
            pass


class ChunkFrameTests(SynchronousTestCase):
    """The p2pnet codec writes a File packet holding a chunk as a binary frame."""

    def packet(self, data: bytes = b"x" * 1000) -> DataTransmissionPacket:
        return chunk_packet(ID, 3, data)

    def test_binary_frame(self) -> None:
        """The frame is the length with the high bit, then the payload as it is."""
        packet = self.packet()
        frame = P2PNetCodec().encode(packet)
        self.assertEqual(int.from_bytes(frame[:4], "big"), BINARY_FRAME | len(packet.payload))
        self.assertEqual(frame[4:], packet.payload)

    def test_decoded_whole_and_byte_by_byte(self) -> None:
        """Between JSON frames, read at once or a byte at a time, the chunk comes back."""
        codec = P2PNetCodec()
        chunk = self.packet(os.urandom(3000))
        ping = PureMessagePacket("hi")
        stream = codec.encode(ping) + codec.encode(chunk) + codec.encode(ping)
        at_once = codec.decoder().feed(stream)
        decoder = codec.decoder()
        one_by_one = [item for i in range(len(stream)) for item in decoder.feed(stream[i:i + 1])]
        for items in (at_once, one_by_one):
            self.assertEqual([type(item) for item in items],
                             [PureMessagePacket, DataTransmissionPacket, PureMessagePacket])
            self.assertEqual(items[1].payload, chunk.payload)
            self.assertEqual(items[1].data_type, DataPayloadFormat.FILE)

    def test_binary_frame_is_smaller(self) -> None:
        """A chunk in a binary frame takes a third less than in base64 JSON."""
        packet = self.packet(b"x" * 262144)
        binary = len(P2PNetCodec().encode(packet))
        self.assertLess(binary, 262144 + 64)
        self.assertGreater(len(DotNetCodec().encode(packet)), 262144 * 4 // 3)

    def test_chunk_with_source_fields_goes_as_json(self) -> None:
        """A chunk packet that has a source identifier or a time other than the minimum
        goes as JSON, and decodes to exactly the packet sent (the binary frame has no room
        for them)."""
        payload = encode_chunk(ID, 3, b"x" * 10)
        codec = P2PNetCodec()
        for sent in (DataTransmissionPacket(payload, DataPayloadFormat.FILE),
                     DataTransmissionPacket(payload, DataPayloadFormat.FILE,
                                            source_origin_identifier="peer",
                                            source_origin_time=MIN_TIME)):
            frame = codec.encode(sent)
            self.assertFalse(int.from_bytes(frame[:4], "big") & BINARY_FRAME)
            self.assertEqual(codec.decoder().feed(frame), [sent])

    def test_only_chunks(self) -> None:
        """A File packet that is not a chunk, or another type, stays JSON."""
        codec = P2PNetCodec()
        for packet in (DataTransmissionPacket(b'{"op":"x"}', DataPayloadFormat.FILE),
                       DataTransmissionPacket(b"\xc4" * 40, DataPayloadFormat.MISC_DATA)):
            self.assertEqual(codec.encode(packet)[4:5], b"{")

    def test_binary_frame_that_is_not_a_chunk(self) -> None:
        """A binary frame must hold a chunk: anything else is a malformed frame."""
        body = b"not a chunk"
        [item] = P2PNetCodec().decoder().feed((BINARY_FRAME | len(body)).to_bytes(4, "big") + body)
        self.assertIsInstance(item, MalformedPacket)

    def test_binary_frame_size_limit(self) -> None:
        """The frame limit applies to binary frames, before the body is read."""
        decoder = P2PNetCodec().decoder(4096)
        self.assertRaises(FrameTooLarge, decoder.feed, (BINARY_FRAME | 4097).to_bytes(4, "big"))
        self.assertEqual(decoder.buffered, 0)
