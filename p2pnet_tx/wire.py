# -*- test-case-name: tests.test_wire -*-
"""
The two wire formats of a peer channel, sans I/O.

C{get_codec("p2pnet")} (the default) frames each packet as a 4-byte big-endian length and the
UTF-8 JSON C{{"type": <tag>, "packet": {...}}}.  C{get_codec("dotnet")} speaks the byte stream
of the reference .NET implementation: C{<Tag>} + JSON + C{</Tag>}, with the .NET default JSON
escaping.  Both carry the same packets (see WIRE.md); the codecs are the only place where the
wire's PascalCase field names appear.

A codec's C{decoder()} is incremental: C{feed(data)} returns one item per frame completed, in
order: the packet, or a L{MalformedPacket} standing for a frame whose body is bad.  It raises a
L{FramingError} when the stream itself breaks the rules, before an oversized body is buffered.

Nothing here imports Twisted: the codecs are plain functions of bytes.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
from zope.interface import implementer

from p2pnet_tx.errors import (
    FrameTooLarge,
    FramingError,
    InvalidPeer,
    MalformedPacket,
    TooMuchGarbage,
    UnknownPacketType,
)
from p2pnet_tx.interfaces import ICodec, IFrameDecoder
from p2pnet_tx.packets import (
    MIN_TIME,
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    NetworkTask,
    Packet,
    PacketType,
    PureMessagePacket,
    TaskType,
)
from p2pnet_tx.peer import GenericPeer

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DotNetCodec",
    "P2PNetCodec",
    "decode_packet_object",
    "decode_task",
    "encode_packet_object",
    "encode_task",
    "format_timestamp",
    "get_codec",
    "parse_timestamp",
]

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
"""The largest frame body a decoder accepts unless told otherwise (WIRE.md: 16 MiB)."""

_PAYLOAD_TAGS: Mapping[DataPayloadFormat, tuple[bytes, bytes]] = {
    DataPayloadFormat.FILE: (b"<File>", b"</File>"),
    DataPayloadFormat.TASK: (b"<Task>", b"</Task>"),
    DataPayloadFormat.MISC_DATA: (b"<MiscData>", b"</MiscData>"),
}

_TYPES_BY_TAG: Mapping[str, PacketType] = {kind.value: kind for kind in PacketType}


class _Invalid(Exception):
    """A packet object does not have the shape WIRE.md requires; carries the reason."""


# -- Timestamps ---------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?", re.ASCII
)


def format_timestamp(value: datetime) -> str:
    """
    Write a time as the wire does: C{YYYY-MM-DDTHH:MM:SS[.fffffff]Z}, in UTC, with trailing
    zeros of the fraction dropped.  A naive datetime is taken to be in UTC.
    """
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(timezone.utc)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_timestamp(text: str) -> datetime:
    """
    Read a wire time: any number of fractional digits (beyond the sixth are dropped), and a
    C{Z}, a C{+HH:MM}/C{-HH:MM} offset or no suffix (then UTC).

    :return: a timezone-aware datetime in UTC.
    :raises ValueError: if C{text} is not such a time, or is out of range once in UTC.
    """
    if not isinstance(text, str) or _TIMESTAMP.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not an ISO 8601 UTC timestamp")
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        if value.utcoffset():
            return value.astimezone(timezone.utc)
        return value.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{text!r} is not a valid timestamp: {e}") from None


# -- Reading packet objects --------------------------------------------------------------------


def _field(obj: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    """Return an optional field; missing or null means C{default}."""
    value = obj.get(name)
    if value is None:
        return default
    if type(value) is not kind:
        raise _Invalid(f"field {name!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _required(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if value is None:
        raise _Invalid(f"required field {name!r} is missing")
    if type(value) is not kind:
        raise _Invalid(f"field {name!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _port(obj: Mapping[str, Any], name: str) -> int:
    value = _field(obj, name, int, 0)
    if not 0 <= value <= 65535:
        raise _Invalid(f"field {name!r} is not a port number: {value}")
    return value


def _ip(obj: Mapping[str, Any], name: str) -> str:
    value = _field(obj, name, str, "")
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise _Invalid(f"field {name!r} is not an IP address: {value!r}") from None
    return value


def _time(obj: Mapping[str, Any], name: str) -> datetime:
    value = _field(obj, name, str, None)
    if value is None:
        return MIN_TIME
    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise _Invalid(f"field {name!r}: {e}") from None


def _str_dict(obj: Mapping[str, Any], name: str) -> dict[str, str] | None:
    value = _field(obj, name, dict, None)
    if value is not None:
        for item in value.values():
            if type(item) is not str:
                raise _Invalid(f"field {name!r} must map strings to strings")
    return value


def _peer(obj: object) -> GenericPeer:
    if type(obj) is not dict:
        raise _Invalid(f"a peer must be an object, not {type(obj).__name__}")
    kind = obj.get("$type")
    if kind is not None and type(kind) is not str:
        raise _Invalid("a peer's '$type' must be a string")
    try:
        return GenericPeer(obj.get("Address"), obj.get("Port"), obj.get("Identifier"))
    except InvalidPeer as e:
        raise _Invalid(f"bad peer: {e}") from None


def _base(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "source_origin_identifier": _field(obj, "SourceOriginIdentifier", str, ""),
        "source_origin_time": _time(obj, "SourceOriginTime"),
    }


def _read_identity(obj: Mapping[str, Any]) -> IdentifierPacket:
    return IdentifierPacket(
        _field(obj, "Message", str, ""), _port(obj, "Data"), _ip(obj, "IP"), **_base(obj)
    )


def _read_disconnect(obj: Mapping[str, Any]) -> DisconnectPacket:
    return DisconnectPacket(
        _ip(obj, "IP"),
        _port(obj, "Port"),
        _time(obj, "Timestamp"),
        _str_dict(obj, "Data"),
        **_base(obj),
    )


def _read_peer_group(obj: Mapping[str, Any]) -> CollectionSharePacket:
    peers = _field(obj, "peers", list, [])
    return CollectionSharePacket(
        _field(obj, "Data", int, 100), [_peer(peer) for peer in peers], **_base(obj)
    )


def _read_payload(text: str, data_type: DataPayloadFormat) -> bytes:
    try:
        payload = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise _Invalid(f"field 'Data' is not valid base64: {e}") from None
    opening, closing = _PAYLOAD_TAGS[data_type]
    if (
        len(payload) >= len(opening) + len(closing)
        and payload.startswith(opening)
        and payload.endswith(closing)
    ):
        return payload[len(opening) : -len(closing)]
    return payload


def _read_data_transmit(obj: Mapping[str, Any]) -> DataTransmissionPacket:
    text = _required(obj, "Data", str)
    data_type = _required(obj, "DataType", int)
    try:
        data_type = DataPayloadFormat(data_type)
    except ValueError:
        raise _Invalid(f"field 'DataType' has no meaning: {data_type}") from None
    return DataTransmissionPacket(_read_payload(text, data_type), data_type, **_base(obj))


def _read_message(obj: Mapping[str, Any]) -> PureMessagePacket:
    return PureMessagePacket(_required(obj, "Message", str), **_base(obj))


_READERS: Mapping[PacketType, Callable[[Mapping[str, Any]], Packet]] = {
    PacketType.IDENTITY: _read_identity,
    PacketType.DISCONNECT: _read_disconnect,
    PacketType.PEER_GROUP: _read_peer_group,
    PacketType.DATA_TRANSMIT: _read_data_transmit,
    PacketType.MESSAGE: _read_message,
}


def _read_object(kind: PacketType, obj: object) -> Packet:
    if type(obj) is not dict:
        raise _Invalid(f"a packet must be a JSON object, not {type(obj).__name__}")
    return _READERS[kind](obj)


def _loads(raw: bytes | memoryview) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _Invalid(f"invalid JSON: {e}") from None


def decode_packet_object(kind: PacketType, raw: bytes) -> Packet | MalformedPacket:
    """
    Read the bare JSON of one packet object (no framing), as in bootstrap HTTP bodies and LAN
    discovery datagrams.

    :param kind: the packet type the JSON is expected to be.
    :return: the packet, or a L{MalformedPacket} saying why it is not one.
    """
    try:
        return _read_object(kind, _loads(raw))
    except _Invalid as e:
        return MalformedPacket(str(e), bytes(raw))


def decode_task(raw: bytes) -> NetworkTask:
    """
    Read the JSON of a L{NetworkTask}: C{{"TaskType": int, "TaskData": {str: str}}}.

    :raises MalformedPacket: if C{raw} is not such JSON.
    """
    try:
        obj = _loads(raw)
        if type(obj) is not dict:
            raise _Invalid(f"a task must be a JSON object, not {type(obj).__name__}")
        task_type = _required(obj, "TaskType", int)
        try:
            task_type = TaskType(task_type)
        except ValueError:
            raise _Invalid(f"field 'TaskType' has no meaning: {task_type}") from None
        return NetworkTask(task_type, _str_dict(obj, "TaskData") or {})
    except _Invalid as e:
        raise MalformedPacket(str(e), bytes(raw)) from None


def encode_task(task: NetworkTask) -> bytes:
    """Write a L{NetworkTask} as the reference does (its JSON, .NET-escaped)."""
    return _dotnet_dumps({"TaskType": int(task.task_type), "TaskData": task.task_data}).encode(
        "ascii"
    )


# -- Writing packet objects --------------------------------------------------------------------


def _payload_text(packet: DataTransmissionPacket, wrap: bool) -> str:
    payload = packet.payload
    opening, closing = _PAYLOAD_TAGS[packet.data_type]
    # A payload that itself looks wrapped would lose its tags to the reader: wrap it once more.
    if wrap or (payload.startswith(opening) and payload.endswith(closing)):
        payload = opening + payload + closing
    return binascii.b2a_base64(payload, newline=False).decode("ascii")


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
            "Data": _payload_text(packet, wrap=dotnet),
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


def encode_packet_object(packet: Packet) -> bytes:
    """
    Write the bare JSON of one packet object (no framing) the way the reference does: the
    packet's own fields, .NET-escaped.  Bootstrap HTTP bodies and LAN discovery datagrams use it.
    """
    return _dotnet_dumps(_packet_fields(packet, dotnet=True)).encode("ascii")


# -- .NET JSON escaping --------------------------------------------------------------------------

# What System.Text.Json's default encoder escapes: everything outside printable ASCII, the
# HTML-sensitive characters, and the backslash and backtick.
_DOTNET_UNSAFE = re.compile(r"[^\x20-\x7e]|[<>&'+\"\\`]")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}


def _dotnet_escape_char(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def _dotnet_string(text: str) -> str:
    if _DOTNET_UNSAFE.search(text) is None:
        return '"' + text + '"'
    return '"' + _DOTNET_UNSAFE.sub(_dotnet_escape_char, text) + '"'


def _dotnet_dumps(value: Any) -> str:
    """Serialize the JSON values packets use, as .NET's default encoder writes them."""
    if isinstance(value, str):
        return _dotnet_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(_dotnet_string(key) + ":" + _dotnet_dumps(item) for key, item in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_dotnet_dumps(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as packet JSON")


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

    def encode(self, packet: Packet) -> bytes:
        """Return one whole frame carrying C{packet}."""
        fields = _packet_fields(packet, False)  # first: a TypeError for what is not a packet
        body = orjson.dumps({"type": packet.kind.value, "packet": fields})
        return len(body).to_bytes(4, "big") + body

    def decoder(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> LengthPrefixedDecoder:
        """Return a new incremental decoder; frames over C{max_frame_size} bytes are refused."""
        return LengthPrefixedDecoder(max_frame_size)


def _read_envelope(body: bytes | memoryview) -> Packet | MalformedPacket:
    try:
        envelope = _loads(body)
        if type(envelope) is not dict:
            raise _Invalid(f"a frame must hold a JSON object, not {type(envelope).__name__}")
        tag = envelope.get("type")
        kind = _TYPES_BY_TAG.get(tag) if type(tag) is str else None
        if kind is None:
            return UnknownPacketType(tag, bytes(body))
        return _read_object(kind, envelope.get("packet"))
    except _Invalid as e:
        return MalformedPacket(str(e), bytes(body))


@implementer(IFrameDecoder)
class LengthPrefixedDecoder:
    """
    The incremental decoder of the C{p2pnet} format.

    Received chunks are kept in a list and joined only once a whole frame is there, so a large
    frame arriving in many reads is copied once.  A declared length over C{max_frame_size} is
    refused as soon as the 4 length bytes are in, before any of the body is kept.
    """

    _PREFIX = 4

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self._chunks: list[bytes] = []
        self.buffered = 0
        self._needed = self._PREFIX

    def feed(self, data: bytes) -> list[Packet | MalformedPacket]:
        """
        Add received bytes; return one packet or L{MalformedPacket} per completed frame.

        :raises FrameTooLarge: when a frame declares more than C{max_frame_size} bytes.  Its
            C{frames} attribute holds what the same call decoded before the violation.
        """
        if type(data) is not bytes:
            data = bytes(data)
        if self.buffered + len(data) < self._needed:
            if data:
                self._chunks.append(data)
                self.buffered += len(data)
            return []
        if self._chunks:
            self._chunks.append(data)
            data = b"".join(self._chunks)
            self._chunks = []
        frames: list[Packet | MalformedPacket] = []
        view = memoryview(data)
        offset, size, prefix, limit = 0, len(data), self._PREFIX, self.max_frame_size
        while size - offset >= prefix:
            length = int.from_bytes(view[offset : offset + prefix], "big")
            if length > limit:
                self._chunks, self.buffered, self._needed = [], 0, prefix
                error = FrameTooLarge(length, limit)
                error.frames = frames
                raise error
            end = offset + prefix + length
            if end > size:
                self._needed = prefix + length
                break
            frames.append(_read_envelope(view[offset + prefix : end]))
            offset = end
        else:
            self._needed = prefix
        if offset < size:
            rest = data[offset:]
            self._chunks.append(rest)
            self.buffered = len(rest)
        else:
            self.buffered = 0
        return frames


@implementer(ICodec)
class DotNetCodec:
    """
    The byte stream of the reference .NET implementation: C{<Tag>} + JSON + C{</Tag>}, with no
    length and no separator, the JSON escaped as .NET's default encoder does.
    """

    name = "dotnet"

    def encode(self, packet: Packet) -> bytes:
        """Return one whole frame carrying C{packet}."""
        body = _dotnet_dumps(_packet_fields(packet, True))
        tag = packet.kind.value
        return f"<{tag}>{body}</{tag}>".encode("ascii")

    def decoder(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> TagFramedDecoder:
        """Return a new incremental decoder; frames over C{max_frame_size} bytes are refused."""
        return TagFramedDecoder(max_frame_size)


_OPENING_TAGS = [(f"<{kind.value}>".encode(), kind) for kind in PacketType]
_LONGEST_OPENING_TAG = max(len(tag) for tag, _ in _OPENING_TAGS)


@implementer(IFrameDecoder)
class TagFramedDecoder:
    """
    The incremental decoder of the C{dotnet} format.

    Bytes outside any frame are skipped and counted in C{garbage_bytes}.  Because .NET escapes
    C{<} inside JSON strings, the first closing tag after an opening tag ends the frame.  More
    than C{max_frame_size} bytes of garbage in a row, or of one unterminated frame, raise a
    L{FramingError}.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self.garbage_bytes = 0
        self._garbage_run = 0
        self._buffer = bytearray()
        self._kind: PacketType | None = None
        self._closing = b""
        self._scan_from = 0

    @property
    def buffered(self) -> int:
        """The number of bytes held that do not yet form a complete frame."""
        return len(self._buffer)

    def _skip(self, count: int) -> None:
        self.garbage_bytes += count
        self._garbage_run += count

    def feed(self, data: bytes) -> list[Packet | MalformedPacket]:
        """
        Add received bytes; return one packet or L{MalformedPacket} per completed frame.

        :raises FrameTooLarge: when a frame grows past C{max_frame_size} without its closing tag.
        :raises TooMuchGarbage: when more than C{max_frame_size} bytes in a row are no frame.
        """
        buffer = self._buffer
        buffer += data
        frames: list[Packet | MalformedPacket] = []
        position = 0
        limit = self.max_frame_size
        # Every limit is checked as soon as the bytes prove it exceeded, never only at the end of
        # a call: the outcome must not depend on how the stream was split into reads.
        try:
            while True:
                if self._kind is None:
                    position = self._find_opening_tag(buffer, position)
                    if self._garbage_run > limit:
                        raise TooMuchGarbage(self._garbage_run, limit)
                    if self._kind is None:
                        break
                end = buffer.find(self._closing, self._scan_from)
                if end < 0:
                    # The closing tag may have begun in the last len(closing) - 1 bytes; only
                    # what comes before them is certainly body.
                    self._scan_from = max(position, len(buffer) - len(self._closing) + 1)
                    if self._scan_from - position > limit:
                        raise FrameTooLarge(self._scan_from - position, limit)
                    break
                if end - position > limit:
                    raise FrameTooLarge(end - position, limit)
                body = bytes(buffer[position:end])
                frames.append(self._read_frame(self._kind, body))
                position = end + len(self._closing)
                self._kind = None
                self._garbage_run = 0
        except FramingError as error:
            error.frames = frames
            self._buffer = bytearray()
            self._kind = None
            raise
        if position:
            del buffer[:position]
            self._scan_from -= position
        return frames

    def _find_opening_tag(self, buffer: bytearray, position: int) -> int:
        """
        Skip garbage up to the next opening tag; on finding one, enter it and return the offset
        of its body.  Otherwise return where an incomplete tag may start.
        """
        size = len(buffer)
        while True:
            start = buffer.find(b"<", position)
            if start < 0:
                self._skip(size - position)
                return size
            self._skip(start - position)
            for tag, kind in _OPENING_TAGS:
                if buffer.startswith(tag, start):
                    self._kind = kind
                    self._closing = b"</" + tag[1:]
                    self._scan_from = start + len(tag)
                    return start + len(tag)
            if size - start < _LONGEST_OPENING_TAG:
                tail = bytes(buffer[start:])
                if any(tag.startswith(tail) for tag, _ in _OPENING_TAGS):
                    return start
            self._skip(1)
            position = start + 1

    @staticmethod
    def _read_frame(kind: PacketType, body: bytes) -> Packet | MalformedPacket:
        try:
            return _read_object(kind, _loads(body))
        except _Invalid as e:
            return MalformedPacket(str(e), body)


_CODECS: Mapping[str, Callable[[], ICodec]] = {"p2pnet": P2PNetCodec, "dotnet": DotNetCodec}


def get_codec(name: str = "p2pnet") -> ICodec:
    """
    Return the codec of a wire format: C{"p2pnet"} (the default) or C{"dotnet"}.

    :raises ValueError: for any other name.
    """
    try:
        factory = _CODECS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown wire format {name!r}; choose one of {', '.join(sorted(_CODECS))}"
        ) from None
    return factory()
