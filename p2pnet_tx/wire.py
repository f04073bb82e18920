# -*- test-case-name: tests.test_wire -*-
"""
The two wire formats of a peer channel, sans I/O.

C{get_codec("p2pnet")} (the default) frames each packet as a 4-byte big-endian length and the
UTF-8 JSON C{{"type": <tag>, "packet": {...}}}.  C{get_codec("dotnet")} speaks the byte stream
of the reference .NET implementation: C{<Tag>} + JSON + C{</Tag>}, with the .NET default JSON
escaping.  Both carry the same packets (see WIRE.md); the codecs (and L{p2pnet_tx._json}, which
they share with the packets) are the only place where the wire's PascalCase field names appear.

A codec's C{decoder()} is incremental: C{feed(data)} returns one item per frame completed, in
order: the packet, or a L{MalformedPacket} standing for a frame whose body is bad.  It raises a
L{FramingError} when the stream itself breaks the rules, before an oversized body is buffered.
C{iter_feed(data)} yields the same items one at a time and judges each frame by the
C{max_frame_size} in force when it reaches it, for a consumer whose limit changes between frames.

Nothing here imports Twisted: the codecs are plain functions of bytes.
"""

from __future__ import annotations

import binascii
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
import pybase64
from zope.interface import implementer

from p2pnet_tx.errors import (
    FrameTooLarge,
    FramingError,
    InvalidPeer,
    MalformedPacket,
    TooMuchGarbage,
    UnknownPacketType,
)
from p2pnet_tx.logtext import peer_text
from p2pnet_tx._json import (
    Invalid,
    JSONText,
    dotnet_dumps,
    dotnet_string,
    field,
    loads,
    required,
    str_dict,
)
from p2pnet_tx.interfaces import ICodec, IFrameDecoder
from p2pnet_tx.packets import (
    MIN_TIME,
    PACKET_CLASSES,
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    Packet,
    PacketType,
    PureMessagePacket,
    _collection_share_packet,
    _data_transmission_packet,
    _disconnect_packet,
    _identifier_packet,
    _pure_message_packet,
    decode_task,
    encode_task,
)
from p2pnet_tx.peer import GenericPeer, normalize_address

__all__ = [
    "BINARY_FRAME",
    "DEFAULT_MAX_FRAME_SIZE",
    "FILE_CHUNK_MARK",
    "LENIENCIES",
    "DotNetCodec",
    "P2PNetCodec",
    "decode_packet_object",
    "decode_task",
    "encode_packet_object",
    "encode_task",
    "format_timestamp",
    "get_codec",
    "parse_timestamp",
    "untag_payload",
]

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
"""The largest frame body a decoder accepts unless told otherwise (WIRE.md: 16 MiB)."""

_unpack_length = struct.Struct(">I").unpack_from
_pack_length = struct.Struct(">I").pack

BINARY_FRAME = 0x80000000
"""
The bit of a p2pnet length prefix that marks a binary frame: the body is the raw payload of a
C{DataTransmit} of C{DataType} File that holds a file chunk (it starts with
L{FILE_CHUNK_MARK}), with no JSON and no base64.  A JSON frame's length never has it set
(frames are far smaller than 2 GiB).  See docs/wire.md.
"""

FILE_CHUNK_MARK = 0xC4
"""The first byte of a file chunk's payload (p2pnet_tx.files.protocol); JSON never starts so."""

_WIRE_TAGS: Mapping[type, str] = {cls: kind.value for kind, cls in PACKET_CLASSES.items()}
"""The wire tag of each packet class (quicker than C{packet.kind.value})."""

_PAYLOAD_TAGS: Mapping[DataPayloadFormat, tuple[bytes, bytes]] = {
    DataPayloadFormat.FILE: (b"<File>", b"</File>"),
    DataPayloadFormat.TASK: (b"<Task>", b"</Task>"),
    DataPayloadFormat.MISC_DATA: (b"<MiscData>", b"</MiscData>"),
}


# -- Timestamps ---------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?", re.ASCII
)


_UTC = timezone.utc
_match_timestamp = _TIMESTAMP.fullmatch
_fromisoformat = datetime.fromisoformat


_DIGITS3 = [f"{number:03d}" for number in range(1000)]


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is not _UTC:  # packets always hold UTC: the rest is the slow path
        if value.tzinfo is not None and value.utcoffset():
            value = value.astimezone(_UTC)
        value = value.replace(tzinfo=_UTC)
    return value


def _with_fraction(second: str, microsecond: int) -> str:
    """C{second} ("YYYY-MM-DDTHH:MM:SS.") with the fraction, trailing zeros dropped, and Z."""
    if microsecond % 10:
        return second + _DIGITS3[microsecond // 1000] + _DIGITS3[microsecond % 1000] + "Z"
    if microsecond:
        return (
            second + _DIGITS3[microsecond // 1000] + _DIGITS3[microsecond % 1000]
        ).rstrip("0") + "Z"
    return second[:-1] + "Z"


def format_timestamp(value: datetime) -> str:
    """
    Write a time as the wire does: C{YYYY-MM-DDTHH:MM:SS[.fffffff]Z}, in UTC, with trailing
    zeros of the fraction dropped.  A naive datetime is taken to be in UTC.
    """
    stamp = _in_utc(value)
    # isoformat() writes "YYYY-MM-DDTHH:MM:SS" first, the year with 4 digits.
    return _with_fraction(stamp.isoformat()[:19] + ".", stamp.microsecond)


class _EncodingCache:
    """
    What a codec writes again and again, kept by each codec (nothing is shared between codecs).

    Writing a time is most of the cost of encoding a small packet: C{datetime.isoformat()} alone
    costs more than the JSON.  The text up to the second is the same for every packet of that
    second, so it is kept, and the time written last is returned at once (the same packet sent
    to several peers, or messages of one millisecond).  A node sends mostly under its own
    identifier: the JSON around it is kept per identifier.  Both are bounded: a sender writing
    arbitrary times or identifiers makes a cache start afresh, never grow.  The last Identity
    and the last peer list written are kept whole (L{frame}).
    """

    __slots__ = ("_seconds", "_last_time", "_last_text", "identifiers", "_frames")

    SECONDS = 256
    IDENTIFIERS = 1024

    def __init__(self) -> None:
        self._seconds: dict[tuple[int, int, int, int, int, int], str] = {}
        self._last_time: datetime | None = None
        self._last_text = ""
        self.identifiers: dict[str, Any] = {}
        self._frames: dict[type, tuple[Packet, list[Any] | None, bytes]] | None = None

    def frame(self, packet: Packet, write: Callable[[Packet], bytes]) -> bytes:
        """
        C{write(packet)} for an Identity or a peer list, kept for the last packet of each of
        the two types: a node sends every peer it accepts the same two, its own Identity and
        the peer list its network keeps until trust changes.  Both are frozen; a peer list's
        frame is used again only while its list names the same peers, the one part of either
        that can change.
        """
        peers = packet.peers if type(packet) is CollectionSharePacket else None
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        kept = frames.get(type(packet))
        if kept is not None and kept[0] is packet and kept[1] == peers:
            return kept[2]
        written = write(packet)
        frames[type(packet)] = (packet, None if peers is None else list(peers), written)
        return written

    def timestamp(self, value: datetime) -> str:
        """L{format_timestamp}, from the caches when it can."""
        if value is self._last_time:
            return self._last_text
        stamp = _in_utc(value)
        key = (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
        second = self._seconds.get(key)
        if second is None:
            if len(self._seconds) >= self.SECONDS:
                self._seconds.clear()
            second = self._seconds[key] = stamp.isoformat()[:19] + "."
        text = _with_fraction(second, stamp.microsecond)
        self._last_time, self._last_text = value, text
        return text

    def identifier(self, identifier: str, write: Callable[[str], Any]) -> Any:
        """The fragment C{write(identifier)}, kept per identifier."""
        fragment = self.identifiers.get(identifier)
        if fragment is None:
            if len(self.identifiers) >= self.IDENTIFIERS:
                self.identifiers.clear()
            fragment = self.identifiers[identifier] = write(identifier)
        return fragment


def parse_timestamp(text: str) -> datetime:
    """
    Read a wire time: any number of fractional digits (beyond the sixth are dropped), and a
    C{Z}, a C{+HH:MM}/C{-HH:MM} offset or no suffix (then UTC).

    @return: a timezone-aware datetime in UTC (its tzinfo is C{timezone.utc}).
    @raise ValueError: if C{text} is not such a time, or is out of range once in UTC.
    """
    if type(text) is str:
        # The form every writer uses, "YYYY-MM-DDTHH:MM:SS[.f...]Z", told by its separators at
        # fixed positions: a slice and a comparison cost a third of the regex.  fromisoformat
        # takes only ASCII digits in the date and time fields; it does not check the digits of
        # a fraction past the sixth, nor that a fraction has any, so those are checked here.
        # Anything else, valid or not, takes the full path below, which says what is wrong.
        separators = text[4:20:3]
        if (
            (
                (separators == "--T::." and text[-1] == "Z" and text[20:-1].isdigit())
                or (separators == "--T::Z" and len(text) == 20)
            )
            and text.isascii()
        ):
            try:
                value = _fromisoformat(text)
            except ValueError:
                pass  # a field out of range: the full path reports it
            else:
                if value.tzinfo is _UTC:
                    return value
    if not isinstance(text, str) or _match_timestamp(text) is None:
        raise ValueError(f"'{peer_text(text)}' is not an ISO 8601 UTC timestamp")
    try:
        value = _fromisoformat(text)
        tzinfo = value.tzinfo
        if tzinfo is _UTC:  # "Z" and "+00:00" give the UTC singleton
            return value
        if tzinfo is None:
            return value.replace(tzinfo=_UTC)
        return value.astimezone(_UTC)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"'{peer_text(text)}' is not a valid timestamp: {peer_text(e)}") from None


# -- Reading packet objects --------------------------------------------------------------------


# The readers run once per received packet: they test the common case first and call as little
# as they can.  They check everything the packet classes check (and more), so what they build is
# valid by construction, and they build it with the builders of p2pnet_tx.packets, which do not
# run the classes' converters and validators a second time.


def _port(obj: Mapping[str, Any], name: str) -> int:
    value = field(obj, name, int, 0)
    if not 0 <= value <= 65535:
        raise Invalid(f"field {name!r} is not a port number: {value}")
    return value


def _ip(obj: Mapping[str, Any], name: str) -> str:
    value = field(obj, name, str, "")
    if value:
        try:
            normalize_address(value)
        except InvalidPeer:
            raise Invalid(f"field {name!r} is not an IP address: '{peer_text(value)}'") from None
    return value


def _time(obj: Mapping[str, Any], name: str) -> datetime:
    value = obj.get(name)
    if type(value) is str:
        try:
            return parse_timestamp(value)
        except ValueError as e:
            raise Invalid(f"field {name!r}: {e}") from None
    if value is None:
        return MIN_TIME
    raise Invalid(f"field {name!r} must be str, not {type(value).__name__}")


def _identifier(obj: Mapping[str, Any]) -> str:
    value = obj.get("SourceOriginIdentifier")
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise Invalid(f"field 'SourceOriginIdentifier' must be str, not {type(value).__name__}")


def _peer(obj: object) -> GenericPeer:
    if type(obj) is not dict:
        raise Invalid(f"a peer must be an object, not {type(obj).__name__}")
    kind = obj.get("$type")
    if kind is not None and type(kind) is not str:
        raise Invalid("a peer's '$type' must be a string")
    try:
        return GenericPeer(obj.get("Address"), obj.get("Port"), obj.get("Identifier"))
    except InvalidPeer as e:
        raise Invalid(f"bad peer: {e}") from None


def _read_identity(obj: Mapping[str, Any]) -> IdentifierPacket:
    return _identifier_packet(
        field(obj, "Message", str, ""),
        _port(obj, "Data"),
        _ip(obj, "IP"),
        _identifier(obj),
        _time(obj, "SourceOriginTime"),
    )


def _read_disconnect(obj: Mapping[str, Any]) -> DisconnectPacket:
    return _disconnect_packet(
        _ip(obj, "IP"),
        _port(obj, "Port"),
        _time(obj, "Timestamp"),
        str_dict(obj, "Data"),
        _identifier(obj),
        _time(obj, "SourceOriginTime"),
    )


def _read_peer_group(obj: Mapping[str, Any]) -> CollectionSharePacket:
    peers = field(obj, "peers", list, [])
    return _collection_share_packet(
        field(obj, "Data", int, 100),
        [_peer(peer) for peer in peers],
        _identifier(obj),
        _time(obj, "SourceOriginTime"),
    )


def _read_payload(text: str, data_type: DataPayloadFormat) -> bytes:
    try:
        payload = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid(f"field 'Data' is not valid base64: {e}") from None
    stripped = _strip_tag(payload, *_PAYLOAD_TAGS[data_type])
    return payload if stripped is None else stripped


def untag_payload(payload: bytes) -> bytes:
    """
    Strip the format tags (C{<MiscData>}, C{<Task>}, C{<File>}, whichever the C{DataType})
    that a .NET peer or bootstrap server may leave around a payload, at most two layers deep
    (C{<MiscData><Task>...</Task></MiscData>}).  Readers already strip the tags matching a
    packet's C{DataType}; this is for payloads read on a .NET side channel (the bootstrap API).

    @param payload: the payload, tagged or not.
    @return: the payload without its tags; unchanged when it has none.
    """
    for _ in range(2):
        for opening, closing in _PAYLOAD_TAGS.values():
            stripped = _strip_tag(payload, opening, closing)
            if stripped is not None:
                payload = stripped
                break
        else:
            break
    return payload


def _strip_tag(payload: bytes, opening: bytes, closing: bytes) -> bytes | None:
    """C{payload} without the C{opening} and C{closing} tags around it, or C{None}."""
    if (
        len(payload) >= len(opening) + len(closing)
        and payload.startswith(opening)
        and payload.endswith(closing)
    ):
        return payload[len(opening) : -len(closing)]
    return None


_DATA_TYPES = {int(data_type): data_type for data_type in DataPayloadFormat}


def _read_data_transmit(obj: Mapping[str, Any]) -> DataTransmissionPacket:
    text = required(obj, "Data", str)
    number = required(obj, "DataType", int)
    data_type = _DATA_TYPES.get(number)
    if data_type is None:
        raise Invalid(f"field 'DataType' has no meaning: {number}")
    return _data_transmission_packet(
        _read_payload(text, data_type),
        data_type,
        _identifier(obj),
        _time(obj, "SourceOriginTime"),
    )


def _read_message(obj: Mapping[str, Any]) -> PureMessagePacket:
    # The most frequent packet (pings): fields checked inline.
    message = obj.get("Message")
    if type(message) is not str:
        required(obj, "Message", str)  # raises, saying why
    identifier = obj.get("SourceOriginIdentifier")
    if type(identifier) is not str:
        identifier = _identifier(obj)
    return _pure_message_packet(message, identifier, _time(obj, "SourceOriginTime"))


_READERS: Mapping[PacketType, Callable[[Mapping[str, Any]], Packet]] = {
    PacketType.IDENTITY: _read_identity,
    PacketType.DISCONNECT: _read_disconnect,
    PacketType.PEER_GROUP: _read_peer_group,
    PacketType.DATA_TRANSMIT: _read_data_transmit,
    PacketType.MESSAGE: _read_message,
}

_READERS_BY_TAG: Mapping[str, Callable[[Mapping[str, Any]], Packet]] = {
    kind.value: reader for kind, reader in _READERS.items()
}


def _read_object(kind: PacketType, obj: object) -> Packet:
    if type(obj) is not dict:
        raise Invalid(f"a packet must be a JSON object, not {type(obj).__name__}")
    return _READERS[kind](obj)


def _read_body(
    reader: Callable[[Mapping[str, Any]], Packet], body: bytes | bytearray | memoryview
) -> Packet | MalformedPacket:
    """Read the JSON of one packet object, given its reader; a MalformedPacket if it is bad."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return MalformedPacket(f"invalid JSON: {e}", bytes(body))
    if type(obj) is dict:  # _read_packet's common case, inline: one call less per packet
        try:
            return reader(obj)
        except Invalid as e:
            return MalformedPacket(str(e), bytes(body))
    return _read_packet(reader, obj, body)


def _read_packet(
    reader: Callable[[Mapping[str, Any]], Packet],
    obj: object,
    body: bytes | bytearray | memoryview,
) -> Packet | MalformedPacket:
    """Read a decoded packet object with its reader; a MalformedPacket if it is bad."""
    if type(obj) is not dict:
        return MalformedPacket(
            f"a packet must be a JSON object, not {type(obj).__name__}", bytes(body)
        )
    try:
        return reader(obj)
    except Invalid as e:
        return MalformedPacket(str(e), bytes(body))


def decode_packet_object(kind: PacketType, raw: bytes) -> Packet | MalformedPacket:
    """
    Read the bare JSON of one packet object (no framing), as in bootstrap HTTP bodies and LAN
    discovery datagrams.

    @param kind: the packet type the JSON is expected to be.
    @return: the packet, or a L{MalformedPacket} saying why it is not one.
    """
    try:
        return _read_object(kind, loads(raw))
    except Invalid as e:
        return MalformedPacket(str(e), bytes(raw))


# -- Writing packet objects --------------------------------------------------------------------


def _payload_text(packet: DataTransmissionPacket, dotnet: bool) -> str:
    """The C{Data} field: the payload in base64, wrapped in its tags in the C{dotnet} format."""
    payload = packet.payload
    opening, closing = _PAYLOAD_TAGS[packet.data_type]
    # A payload that itself looks wrapped would lose its tags to the reader: wrap it once more.
    if dotnet or (payload.startswith(opening) and payload.endswith(closing)):
        payload = opening + payload + closing
    text = pybase64.b64encode_as_string(payload)
    if dotnet:
        # System.Text.Json writes a byte[] as base64 with nothing escaped, "+" included (its
        # string encoder would escape "+"; its base64 writer does not): write it directly.
        return JSONText('"' + text + '"')
    return text


def _peer_fields(peer: GenericPeer, dotnet: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"$type": "GenericPeer"} if dotnet else {}
    fields["Port"] = peer.port
    fields["Address"] = peer.address
    fields["Identifier"] = peer.identifier
    return fields


def _packet_fields(packet: Packet, dotnet: bool) -> dict[str, Any]:
    """Return the wire fields of C{packet}, own fields first as .NET writes them."""
    if isinstance(packet, PureMessagePacket):
        fields: dict[str, Any] = {"Message": packet.message}
    elif isinstance(packet, IdentifierPacket):
        fields = {"Message": packet.message, "Data": packet.data, "IP": packet.ip}
    elif isinstance(packet, DataTransmissionPacket):
        fields = {
            "Data": _payload_text(packet, dotnet),
            "DataType": int(packet.data_type),
        }
    elif isinstance(packet, DisconnectPacket):
        fields = {
            "IP": packet.ip,
            "Port": packet.port,
            "Timestamp": format_timestamp(packet.timestamp),
            "Data": packet.data,
        }
    elif isinstance(packet, CollectionSharePacket):
        fields = {
            "Data": packet.data,
            "peers": [_peer_fields(peer, dotnet) for peer in packet.peers],
        }
    else:
        raise TypeError(f"not a packet: {packet!r}")
    fields["SourceOriginIdentifier"] = packet.source_origin_identifier
    fields["SourceOriginTime"] = format_timestamp(packet.source_origin_time)
    return fields


def encode_packet_object(packet: Packet, tag_payload: bool = True) -> bytes:
    """
    Write the bare JSON of one packet object (no framing) the way the reference does: the
    packet's own fields, .NET-escaped.  Bootstrap HTTP bodies and LAN discovery datagrams use it.

    @param tag_payload: for a L{DataTransmissionPacket}, whether its payload is wrapped in its
        format's tags (as .NET's constructor wraps it) or not (as the .NET bootstrap server's
        trustless reply, which sets C{Data} directly, leaves it).
    """
    fields = _packet_fields(packet, dotnet=True)
    if not tag_payload and isinstance(packet, DataTransmissionPacket):
        fields["Data"] = JSONText('"' + pybase64.b64encode_as_string(packet.payload) + '"')
    return dotnet_dumps(fields).encode("ascii")


# -- The common case of sending -----------------------------------------------------------------

# A node sends mostly PureMessages under its own identifier.  Those frames are written without
# building their dict, from pieces that repeat (kept in the codec's _EncodingCache).  The output
# is byte for byte what the general path writes (tests/test_wire.py checks it).
_P2PNET_MESSAGE_HEAD = b'{"type":"Message","packet":{"Message":'
_DOTNET_MESSAGE_HEAD = '<Message>{"Message":'


def _p2pnet_identifier(identifier: str) -> bytes:
    """C{,"SourceOriginIdentifier":<identifier>,"SourceOriginTime":"} in compact UTF-8 JSON."""
    return b',"SourceOriginIdentifier":' + orjson.dumps(identifier) + b',"SourceOriginTime":"'


def _dotnet_identifier(identifier: str) -> str:
    """C{,"SourceOriginIdentifier":<identifier>,"SourceOriginTime":"}, .NET-escaped."""
    return ',"SourceOriginIdentifier":' + dotnet_string(identifier) + ',"SourceOriginTime":"'


_SENT_TO_EVERY_PEER = (IdentifierPacket, CollectionSharePacket)
"""The packets a node sends, alike, to every peer it accepts (see L{_EncodingCache.frame})."""


def _p2pnet_frame(packet: Packet) -> bytes:
    """One p2pnet frame carrying C{packet}, by the general path."""
    fields = _packet_fields(packet, False)  # first: a TypeError for what is not a packet
    tag = _WIRE_TAGS.get(type(packet)) or packet.kind.value
    body = orjson.dumps({"type": tag, "packet": fields})
    return _pack_length(len(body)) + body


# -- Codecs --------------------------------------------------------------------------------------


def _check_max_frame_size(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"max_frame_size must be a positive int, not {value!r}")
    return value


@implementer(ICodec)
class P2PNetCodec:
    """
    The default wire format: a 4-byte big-endian length, then the UTF-8 JSON
    C{{"type": <tag>, "packet": {...}}}.
    """

    name = "p2pnet"

    def __init__(self) -> None:
        self._cache = _EncodingCache()

    def encode(self, packet: Packet) -> bytes:
        """
        Return one whole frame carrying C{packet}.

        @raise TypeError: if C{packet} is not one of the five packets.
        """
        if type(packet) is PureMessagePacket:
            message, identifier = packet.message, packet.source_origin_identifier
            if type(message) is str and type(identifier) is str:
                body = b"".join(
                    (
                        _P2PNET_MESSAGE_HEAD,
                        orjson.dumps(message),
                        self._cache.identifier(identifier, _p2pnet_identifier),
                        self._cache.timestamp(packet.source_origin_time).encode("ascii"),
                        b'"}}',
                    )
                )
                return _pack_length(len(body)) + body
        if type(packet) in _SENT_TO_EVERY_PEER:
            return self._cache.frame(packet, _p2pnet_frame)
        if type(packet) is DataTransmissionPacket and packet.data_type is DataPayloadFormat.FILE:
            payload = packet.payload
            if (payload[:1] == _CHUNK_MARK_BYTE and not packet.source_origin_identifier
                    and packet.source_origin_time == MIN_TIME):
                # The binary frame: a third less to send than base64 in JSON, and no encoding.
                # It has no room for a source identifier or time, so it carries only chunks
                # without them (a chunk's receiver knows its channel's peer); any other packet
                # goes as JSON, so that what is decoded is always what was encoded.
                return _pack_length(len(payload) | BINARY_FRAME) + payload
        return _p2pnet_frame(packet)

    def decoder(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> LengthPrefixedDecoder:
        """Return a new incremental decoder; frames over C{max_frame_size} bytes are refused."""
        return LengthPrefixedDecoder(max_frame_size)


_CHUNK_MARK_BYTE = bytes([FILE_CHUNK_MARK])


def _read_binary(body: bytes) -> Packet | MalformedPacket:
    """The packet of a binary frame: a File DataTransmit holding a chunk, or malformed."""
    if body[:1] != _CHUNK_MARK_BYTE:
        return MalformedPacket("a binary frame must hold a file chunk", body[:64])
    return _data_transmission_packet(body, DataPayloadFormat.FILE, "", MIN_TIME)


def _read_envelope(body: bytes | memoryview) -> Packet | MalformedPacket:
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return MalformedPacket(f"invalid JSON: {e}", bytes(body))
    if type(envelope) is not dict:
        return MalformedPacket(
            f"a frame must hold a JSON object, not {type(envelope).__name__}", bytes(body)
        )
    tag = envelope.get("type")
    reader = _READERS_BY_TAG.get(tag) if type(tag) is str else None
    if reader is None:
        return UnknownPacketType(tag, bytes(body))
    obj = envelope.get("packet")
    if type(obj) is dict:  # _read_packet's common case, inline: one call less per packet
        try:
            return reader(obj)
        except Invalid as e:
            return MalformedPacket(str(e), bytes(body))
    return _read_packet(reader, obj, body)


def _feed_list(decoder: IFrameDecoder, data: bytes) -> list[Packet | MalformedPacket]:
    """
    C{decoder.feed(data)}: the items of C{decoder.iter_feed(data)} as a list.

    @raise FramingError: as C{iter_feed} does, with C{frames} set to the items before it.
    """
    frames: list[Packet | MalformedPacket] = []
    try:
        # list.extend keeps what the iterator yielded before it raised.
        frames.extend(decoder.iter_feed(data))
    except FramingError as error:
        error.frames = frames
        raise
    return frames


@implementer(IFrameDecoder)
class LengthPrefixedDecoder:
    """
    The incremental decoder of the C{p2pnet} format.

    Received chunks are kept in a list and joined only once a whole frame is there, so a large
    frame arriving in many reads is copied once.  A declared length over C{max_frame_size} is
    refused as soon as the 4 length bytes are in, before any of the body is kept.

    @ivar max_frame_size: the largest frame body accepted, in bytes.  It may be changed at any
        time, even while an iterator of L{iter_feed} is being consumed: each frame is judged by
        the value in force when its length prefix is read.
    """

    _PREFIX = 4

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        # The bytes held: _chunks, _held bytes in all, of which the first _offset (of the first
        # chunk) are already decoded.  Nothing is decoded before _needed bytes are held.
        self._chunks: list[bytes] = []
        self._held = 0
        self._offset = 0
        self._needed = self._PREFIX
        # Counts the calls of iter_feed: an iterator stops once a later call has taken over.
        self._generation = 0

    @property
    def buffered(self) -> int:
        """The number of bytes held and not yet decoded."""
        return self._held - self._offset

    def feed(self, data: bytes) -> list[Packet | MalformedPacket]:
        """
        Add received bytes; return one packet or L{MalformedPacket} per completed frame.

        Every frame of C{data} is judged by the C{max_frame_size} in force at the call; use
        L{iter_feed} to change it between frames.

        @raise FrameTooLarge: when a frame declares more than C{max_frame_size} bytes.  Its
            C{frames} attribute holds what the same call decoded before the violation.
        """
        return _feed_list(self, data)

    def iter_feed(self, data: bytes) -> Iterator[Packet | MalformedPacket]:
        """
        Add received bytes; return an iterator over the packets (or L{MalformedPacket}s) of the
        frames they complete, each decoded when the iterator reaches it.

        The bytes are taken at the call.  Each frame's length prefix is checked against
        C{max_frame_size} as the iterator reaches it, so a consumer that raises the limit while
        it handles one item (the peer became trusted) has the new limit applied to the next
        frame.  An iterator left unfinished leaves the decoder consistent: the frames it did not
        reach stay buffered, and the next call decodes them first (the old iterator then stops).

        @raise FrameTooLarge: from the iterator, at the first frame whose declared length is over
            the limit then in force, after every earlier item was yielded.  The bytes from that
            frame on are dropped and the iterator ends; do not feed this decoder again.
        """
        if type(data) is not bytes:
            data = bytes(data)
        self._generation += 1
        if data:
            self._chunks.append(data)
            self._held += len(data)
        if self._held - self._offset < self._needed:
            return iter(())  # the common case of a large frame arriving in many reads
        return self._frames(self._generation)

    def _frames(self, generation: int) -> Iterator[Packet | MalformedPacket]:
        """Decode the frames held, in order, as L{iter_feed} describes."""
        chunks = self._chunks
        if len(chunks) == 1:
            data = chunks[0]
        else:
            data = b"".join(chunks)
            self._chunks = [data]
        # Until this batch is done, a later call must decode what is held without waiting.
        self._needed = 0
        offset, size, prefix = self._offset, len(data), self._PREFIX
        while size - offset >= prefix:
            (length,) = _unpack_length(data, offset)
            binary = length & BINARY_FRAME
            if binary:
                length ^= BINARY_FRAME
            limit = self.max_frame_size  # afresh for every frame: a consumer may have raised it
            if length > limit:
                self._chunks, self._held, self._offset, self._needed = [], 0, 0, prefix
                raise FrameTooLarge(length, limit)
            start = offset + prefix
            end = start + length
            if end > size:
                self._needed = prefix + length
                break
            if binary:
                item = _read_binary(data[start:end])
            else:
                # Small bodies are cheaper to copy than to view; large ones are not copied.
                item = _read_envelope(
                    data[start:end] if length < 65536 else memoryview(data)[start:end]
                )
            offset = self._offset = end
            yield item
            if self._generation != generation:
                return  # a later call holds the rest, from self._offset on
        else:
            self._needed = prefix
        if offset < size:
            rest = data[offset:] if offset else data
            self._chunks = [rest]
            self._held = len(rest)
        else:
            self._chunks = []
            self._held = 0
        self._offset = 0


@implementer(ICodec)
class DotNetCodec:
    """
    The byte stream of the reference .NET implementation: C{<Tag>} + JSON + C{</Tag>}, with no
    length and no separator, the JSON escaped as .NET's default encoder does.
    """

    name = "dotnet"

    def __init__(self) -> None:
        self._cache = _EncodingCache()

    def encode(self, packet: Packet) -> bytes:
        """
        Return one whole frame carrying C{packet}.

        @raise TypeError: if C{packet} is not one of the five packets.
        """
        if type(packet) is PureMessagePacket:
            message, identifier = packet.message, packet.source_origin_identifier
            if type(message) is str and type(identifier) is str:
                return (
                    _DOTNET_MESSAGE_HEAD
                    + dotnet_string(message)
                    + self._cache.identifier(identifier, _dotnet_identifier)
                    + self._cache.timestamp(packet.source_origin_time)
                    + '"}</Message>'
                ).encode("ascii")
        body = dotnet_dumps(_packet_fields(packet, True))
        tag = _WIRE_TAGS.get(type(packet)) or packet.kind.value
        return f"<{tag}>{body}</{tag}>".encode("ascii")

    def decoder(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> TagFramedDecoder:
        """Return a new incremental decoder; frames over C{max_frame_size} bytes are refused."""
        return TagFramedDecoder(max_frame_size)


# -- Reading as leniently as .NET ------------------------------------------------------------
#
# System.Text.Json reads a few things our readers refuse: a null or missing Message (it
# becomes null), any DataType number (an enum takes any int; DistributionHandler ignores one
# it has no case for), a peer on port 0 (GenericPeer takes any int), a date without a time
# (midnight).  A .NET peer that sends one is no offender: the dotnet decoder reads such a
# frame again with the field made what .NET makes of it, and counts it, per leniency, in its
# counters ("lenient.null_message", "lenient.data_type", "lenient.port_zero",
# "lenient.date_only").  Only frames the strict reader refused take this path.

LENIENCIES = ("null_message", "data_type", "port_zero", "date_only")
"""The names of the leniencies of the dotnet decoder; each counts as C{"lenient." + name}."""

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII).fullmatch


def _relax(reader: Callable[[Mapping[str, Any]], Packet], obj: dict[str, Any]) -> list[str]:
    """Make C{obj}'s fields what .NET reads them as, in place; return the leniencies used."""
    used = []
    for name in ("SourceOriginTime", "Timestamp"):
        value = obj.get(name)
        if type(value) is str and _DATE_ONLY(value):
            obj[name] = value + "T00:00:00Z"
            used.append("date_only")
    if reader is _read_message and obj.get("Message") is None:
        obj["Message"] = ""
        used.append("null_message")
    elif reader is _read_data_transmit:
        number = obj.get("DataType")
        if type(number) is int and number not in _DATA_TYPES:
            obj["DataType"] = int(DataPayloadFormat.MISC_DATA)
            used.append("data_type")
    elif reader is _read_peer_group and type(obj.get("peers")) is list:
        peers = obj["peers"]
        kept = [p for p in peers if not (type(p) is dict and p.get("Port") == 0
                                         and type(p.get("Port")) is int)]
        if len(kept) < len(peers):
            # A port-0 peer cannot be dialled: it is left out of the list.
            obj["peers"] = kept
            used.append("port_zero")
    return sorted(set(used))


def _read_leniently(
    reader: Callable[[Mapping[str, Any]], Packet],
    refused: MalformedPacket,
    counters: Counter[str],
) -> Packet | MalformedPacket:
    """Read a frame the strict reader refused as .NET would, counting each leniency used."""
    try:
        obj = orjson.loads(refused.raw)
    except orjson.JSONDecodeError:
        return refused
    if type(obj) is not dict:
        return refused
    used = _relax(reader, obj)
    if not used:
        return refused
    try:
        packet = reader(obj)
    except Invalid:
        return refused
    for name in used:
        counters["lenient." + name] += 1
    return packet


_OPENING_TAGS: Mapping[bytes, tuple[Callable[[Mapping[str, Any]], Packet], bytes]] = {
    f"<{kind.value}>".encode(): (_READERS[kind], f"</{kind.value}>".encode())
    for kind in PacketType
}
"""Each opening tag, with the reader of its packets and its closing tag."""

_LONGEST_OPENING_TAG = max(len(tag) for tag in _OPENING_TAGS)

_OPENING_TAGS_BY_INITIAL: Mapping[int, list[tuple[bytes, Any]]] = {}
for _tag, _frame in _OPENING_TAGS.items():
    _OPENING_TAGS_BY_INITIAL.setdefault(_tag[1], []).append((_tag, _frame))
del _tag, _frame


@implementer(IFrameDecoder)
class TagFramedDecoder:
    """
    The incremental decoder of the C{dotnet} format.

    Bytes outside any frame are skipped and counted in C{garbage_bytes}.  Because .NET escapes
    C{<} inside JSON strings, the first closing tag after an opening tag ends the frame.  More
    than C{max_frame_size} bytes of garbage in a row, or of one unterminated frame, raise a
    L{FramingError}.

    @ivar max_frame_size: the largest frame body accepted, in bytes, and the most garbage
        accepted in a row.  It may be changed at any time, even while an iterator of
        L{iter_feed} is being consumed: the bytes that follow are judged by the new value.
    @ivar garbage_bytes: the number of bytes skipped outside frames so far.
    @ivar counters: the frames read more leniently than our own format allows, as .NET reads
        them, by leniency (C{"lenient.null_message"} ...: see L{LENIENCIES}).  A channel
        makes this its own counters.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self.counters: Counter[str] = Counter()
        self.garbage_bytes = 0
        self._garbage_run = 0
        # The bytes held; those before _position are already decoded or skipped.
        self._buffer = bytearray()
        self._position = 0
        # Inside a frame: its packet reader and closing tag, and where to look for that tag.
        self._frame: tuple[Callable[[Mapping[str, Any]], Packet], bytes] | None = None
        self._scan_from = 0
        # Counts the calls of iter_feed: an iterator stops once a later call has taken over.
        self._generation = 0

    @property
    def buffered(self) -> int:
        """The number of bytes held that do not yet form a complete frame."""
        return len(self._buffer) - self._position

    def _skip(self, count: int) -> None:
        self.garbage_bytes += count
        self._garbage_run += count

    def feed(self, data: bytes) -> list[Packet | MalformedPacket]:
        """
        Add received bytes; return one packet or L{MalformedPacket} per completed frame.

        Every frame of C{data} is judged by the C{max_frame_size} in force at the call; use
        L{iter_feed} to change it between frames.

        @raise FrameTooLarge: when a frame grows past C{max_frame_size} without its closing tag.
        @raise TooMuchGarbage: when more than C{max_frame_size} bytes in a row are no frame.
        Either error's C{frames} attribute holds what the same call decoded before it.
        """
        return _feed_list(self, data)

    def iter_feed(self, data: bytes) -> Iterator[Packet | MalformedPacket]:
        """
        Add received bytes; return an iterator over the packets (or L{MalformedPacket}s) of the
        frames they complete, each decoded when the iterator reaches it.

        The bytes are taken at the call.  The limits are read afresh as the iterator goes on,
        so a consumer that raises C{max_frame_size} while it handles one item (the peer became
        trusted) has the new limit applied to the bytes after that item.  An iterator left
        unfinished leaves the decoder consistent: the frames it did not reach stay buffered,
        and the next call decodes them first (the old iterator then stops).

        After either error below, the rest of the bytes are dropped and the iterator ends; do
        not feed this decoder again.

        @raise FrameTooLarge: from the iterator, when a frame grows past C{max_frame_size}
            without its closing tag, after every earlier item was yielded.
        @raise TooMuchGarbage: from the iterator, when more than C{max_frame_size} bytes in a
            row are no frame, after every earlier item was yielded.
        """
        self._generation += 1
        self._buffer += data
        return self._frames(self._generation)

    def _frames(self, generation: int) -> Iterator[Packet | MalformedPacket]:
        """Decode the frames held, in order, as L{iter_feed} describes."""
        buffer = self._buffer
        position, frame, scan_from = self._position, self._frame, self._scan_from
        # Every limit is checked as soon as the bytes prove it exceeded, never only at the end of
        # a call: the outcome must not depend on how the stream was split into reads.
        try:
            while True:
                limit = self.max_frame_size  # afresh after every item: it may have been raised
                if frame is None:
                    position, frame = self._find_opening_tag(buffer, position)
                    if self._garbage_run > limit:
                        raise TooMuchGarbage(self._garbage_run, limit)
                    if frame is None:
                        break
                    scan_from = position
                reader, closing = frame
                end = buffer.find(closing, scan_from)
                if end < 0:
                    # The closing tag may have begun in the last len(closing) - 1 bytes; only
                    # what comes before them is certainly body.
                    scan_from = max(position, len(buffer) - len(closing) + 1)
                    if scan_from - position > limit:
                        raise FrameTooLarge(scan_from - position, limit)
                    break
                if end - position > limit:
                    raise FrameTooLarge(end - position, limit)
                item = _read_body(reader, buffer[position:end])
                if item.__class__ is MalformedPacket:
                    item = _read_leniently(reader, item, self.counters)  # type: ignore[arg-type]
                position = self._position = end + len(closing)
                frame = self._frame = None
                self._garbage_run = 0
                yield item
                if self._generation != generation:
                    return  # a later call holds the rest, from self._position on
        except FramingError:
            self._buffer = bytearray()
            self._position = 0
            self._frame = None
            raise
        self._frame = frame
        self._scan_from = scan_from - position
        self._position = 0
        if position:
            del buffer[:position]

    def _find_opening_tag(
        self, buffer: bytearray, position: int
    ) -> tuple[int, tuple[Callable[[Mapping[str, Any]], Packet], bytes] | None]:
        """
        Skip garbage up to the next opening tag.  On finding one, return the offset of its body
        and its reader and closing tag; otherwise return where an incomplete tag may start (or
        the end of the buffer) and None.
        """
        size = len(buffer)
        while True:
            start = buffer.find(b"<", position)
            if start < 0:
                self._skip(size - position)
                return size, None
            if start > position:
                self._skip(start - position)
            if start + 1 < size:
                for tag, frame in _OPENING_TAGS_BY_INITIAL.get(buffer[start + 1], ()):
                    if buffer.startswith(tag, start):
                        return start + len(tag), frame
            if size - start < _LONGEST_OPENING_TAG:
                tail = bytes(buffer[start:])
                if any(tag.startswith(tail) for tag in _OPENING_TAGS):
                    return start, None
            self._skip(1)
            position = start + 1


_CODECS: Mapping[str, Callable[[], ICodec]] = {"p2pnet": P2PNetCodec, "dotnet": DotNetCodec}


def get_codec(name: str = "p2pnet") -> ICodec:
    """
    Return the codec of a wire format: C{"p2pnet"} (the default) or C{"dotnet"}.

    @raise ValueError: for any other name.
    """
    try:
        factory = _CODECS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown wire format {name!r}; choose one of {', '.join(sorted(_CODECS))}"
        ) from None
    return factory()
