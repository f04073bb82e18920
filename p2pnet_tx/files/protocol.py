# -*- test-case-name: tests.test_files_protocol -*-
"""
The messages of the file-transfer protocol, sans I/O.

Every message travels as the payload of a C{DataTransmit} packet of C{DataType} File
(L{DataPayloadFormat.FILE <p2pnet_tx.packets.DataPayloadFormat.FILE>}).  Control messages are
small JSON objects (their payload starts with an opening brace); a chunk is binary (its payload starts
with the byte L{CHUNK_MARK}), and the p2pnet codec writes a packet holding one as a binary
frame instead of base64 in JSON (see docs/wire.md).

The sender offers, the receiver pulls::

    sender                                   receiver
    offer {id, manifest}             ->
                                     <-      accept {id, need: [[start, end], ...]}
                                             | refuse {id, reason}
    chunk (id, index, bytes) ...     ->      each verified on arrival against the manifest
                                     <-      ack {id, done}         (every few chunks)
                                     <-      request {id, need}     (a chunk that failed)
                                     <-      done {id, sha256}      (whole file verified)
    cancel {id, reason}             <->      (either side, any time)

C{need} lists the chunks the receiver still wants, as half-open ranges of chunk indexes: on
a resume (after a disconnect or a restart of either side) the sender offers again under the
same id, and the receiver's C{accept} names only the chunks it has not verified.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import attrs
import orjson

from p2pnet_tx.errors import P2PNetError
from p2pnet_tx.files.manifest import MAX_CHUNKS, Manifest, ManifestError
from p2pnet_tx.packets import (
    MIN_TIME,
    DataPayloadFormat,
    DataTransmissionPacket,
    _data_transmission_packet,
)
from p2pnet_tx.wire import FILE_CHUNK_MARK

__all__ = [
    "CHUNK_HEADER",
    "CHUNK_MARK",
    "OPS",
    "BadOffer",
    "Chunk",
    "FileMessage",
    "ProtocolError",
    "chunk_packet",
    "encode_chunk",
    "encode_message",
    "is_chunk",
    "new_transfer_id",
    "parse",
]

CHUNK_MARK = FILE_CHUNK_MARK
"""The first byte of a chunk's payload (a JSON control message starts with a brace)."""

_CHUNK_PREFIX = struct.Struct(">B12sI")
CHUNK_HEADER = _CHUNK_PREFIX.size
"""The bytes before a chunk's data: the mark, the 12-character transfer id, the index."""

OPS = ("offer", "accept", "refuse", "request", "ack", "done", "cancel")
"""The control messages."""

MAX_RANGES = 4096
"""The most ranges one C{need} list may hold."""

MAX_REASON = 300
"""Reasons are cut to this many characters."""

_TRANSFER_ID = re.compile(r"[0-9a-f]{12}", re.ASCII).fullmatch
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII).fullmatch


class ProtocolError(P2PNetError, ValueError):
    """A file-transfer message that does not parse; the message says why."""


class BadOffer(ProtocolError):
    """
    An offer whose manifest does not parse: it is refused with the reason, not punished.

    @ivar transfer_id: the offer's transfer id.
    """

    def __init__(self, reason: str, transfer_id: str) -> None:
        super().__init__(reason)
        self.transfer_id = transfer_id


def new_transfer_id(random_bytes: bytes) -> str:
    """A transfer id (12 lowercase hex characters) from 6 random bytes."""
    return random_bytes[:6].hex()


def is_transfer_id(value: object) -> bool:
    """Whether C{value} is a transfer id."""
    return type(value) is str and _TRANSFER_ID(value) is not None


@attrs.frozen
class FileMessage:
    """
    A control message.

    @ivar op: one of L{OPS}.
    @ivar transfer_id: the transfer it is about.
    @ivar manifest: an offer's manifest.
    @ivar need: the chunk ranges of an accept or a request.
    @ivar reason: a refusal's or a cancel's reason.
    @ivar done: an ack's verified bytes.
    @ivar sha256: a done's whole-file hash.
    """

    op: str
    transfer_id: str
    manifest: Manifest | None = None
    need: tuple[tuple[int, int], ...] = ()
    reason: str | None = None
    done: int = 0
    sha256: str | None = None


@attrs.frozen
class Chunk:
    """A chunk of a file: its transfer, its index, and its bytes (a view of the payload)."""

    transfer_id: str
    index: int
    data: memoryview


def encode_message(message: FileMessage) -> bytes:
    """The JSON payload of a control message."""
    obj: dict[str, Any] = {"op": message.op, "id": message.transfer_id}
    if message.op == "offer":
        assert message.manifest is not None
        obj["manifest"] = message.manifest.to_json()
    elif message.op in ("accept", "request"):
        obj["need"] = [list(r) for r in message.need]
    elif message.op in ("refuse", "cancel"):
        obj["reason"] = (message.reason or "")[:MAX_REASON]
    elif message.op == "ack":
        obj["done"] = message.done
    elif message.op == "done":
        obj["sha256"] = message.sha256
    return orjson.dumps(obj)


def encode_chunk(transfer_id: str, index: int, data: bytes | memoryview) -> bytes:
    """The binary payload of chunk C{index} of transfer C{transfer_id}."""
    return _CHUNK_PREFIX.pack(CHUNK_MARK, transfer_id.encode("ascii"), index) + data


def chunk_packet(transfer_id: str, index: int, data: bytes | memoryview) -> DataTransmissionPacket:
    """
    The packet that carries chunk C{index} of transfer C{transfer_id}: a File C{DataTransmit}
    with no source identifier and the minimum time, which the p2pnet codec sends as a binary
    frame (docs/wire.md).
    """
    return _data_transmission_packet(
        encode_chunk(transfer_id, index, data), DataPayloadFormat.FILE, "", MIN_TIME)


def is_chunk(payload: bytes) -> bool:
    """Whether a File payload is a chunk (the codec's test for a binary frame)."""
    return len(payload) >= CHUNK_HEADER and payload[0] == CHUNK_MARK


def _need(value: object) -> tuple[tuple[int, int], ...]:
    if type(value) is not list or len(value) > MAX_RANGES:
        raise ProtocolError(f"'need' must be a list of at most {MAX_RANGES} ranges")
    ranges = []
    for item in value:
        if (
            type(item) is not list
            or len(item) != 2
            or type(item[0]) is not int
            or type(item[1]) is not int
            or not 0 <= item[0] < item[1] <= MAX_CHUNKS
        ):
            raise ProtocolError("'need' ranges must be [start, end] with 0 <= start < end")
        ranges.append((item[0], item[1]))
    return tuple(ranges)


def _parse_control(payload: bytes | memoryview) -> FileMessage:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"invalid JSON: {e}") from None
    if type(obj) is not dict:
        raise ProtocolError("a file message must be a JSON object")
    op, transfer_id = obj.get("op"), obj.get("id")
    if op not in OPS or type(op) is not str:
        raise ProtocolError("unknown file message op")
    if not is_transfer_id(transfer_id):
        raise ProtocolError("'id' must be 12 lowercase hex characters")
    if op == "offer":
        try:
            manifest = Manifest.from_json(obj.get("manifest"))
        except ManifestError as e:
            raise BadOffer(f"bad manifest: {e}", transfer_id) from None
        return FileMessage(op, transfer_id, manifest=manifest)
    if op in ("accept", "request"):
        return FileMessage(op, transfer_id, need=_need(obj.get("need")))
    if op in ("refuse", "cancel"):
        reason = obj.get("reason")
        if type(reason) is not str:
            raise ProtocolError("'reason' must be a string")
        return FileMessage(op, transfer_id, reason=reason[:MAX_REASON])
    if op == "ack":
        done = obj.get("done")
        if type(done) is not int or done < 0:
            raise ProtocolError("'done' must be a whole number of bytes")
        return FileMessage(op, transfer_id, done=done)
    sha256 = obj.get("sha256")
    if type(sha256) is not str or not _HEX64(sha256):
        raise ProtocolError("'sha256' must be 64 lowercase hex digits")
    return FileMessage(op, transfer_id, sha256=sha256)


def parse(payload: bytes) -> FileMessage | Chunk:
    """
    Read a File payload: a chunk or a control message.

    @raise ProtocolError: saying what is wrong.
    """
    if payload[:1] == b"{":
        return _parse_control(payload)
    if not is_chunk(payload):
        raise ProtocolError("neither a chunk nor a file message")
    _, raw_id, index = _CHUNK_PREFIX.unpack_from(payload)
    try:
        transfer_id = raw_id.decode("ascii")
    except UnicodeDecodeError:
        transfer_id = ""
    if not is_transfer_id(transfer_id):
        raise ProtocolError("a chunk's transfer id must be 12 lowercase hex characters")
    return Chunk(transfer_id, index, memoryview(payload)[CHUNK_HEADER:])
