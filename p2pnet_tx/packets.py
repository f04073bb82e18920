# -*- test-case-name: tests.test_packets -*-
"""
The packets of P2PNet as immutable, typed values.

The five packet classes and L{NetworkTask} mirror the reference .NET implementation
(see WIRE.md).  Their wire names (PascalCase) are mapped in L{p2pnet_tx.wire} only; here every
field has a Python name.  Every packet carries C{source_origin_identifier} and a
timezone-aware UTC C{source_origin_time}.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Union

import attrs

from p2pnet_tx._json import read_task, write_task
from p2pnet_tx.errors import MalformedPacket
from p2pnet_tx.peer import GenericPeer

if TYPE_CHECKING:
    from typing import TypeAlias

MIN_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)
"""The time of a packet that did not say when it was made (.NET's C{DateTime.MinValue})."""


class PacketType(enum.Enum):
    """The packet types, valued by their wire tag."""

    IDENTITY = "Identity"
    DISCONNECT = "Disconnect"
    PEER_GROUP = "PeerGroup"
    DATA_TRANSMIT = "DataTransmit"
    MESSAGE = "Message"


class DataPayloadFormat(enum.IntEnum):
    """What the payload of a L{DataTransmissionPacket} holds (the wire's C{DataType})."""

    FILE = 0
    TASK = 1
    MISC_DATA = 2


class TaskType(enum.IntEnum):
    """The kinds of L{NetworkTask}, numbered as in the reference implementation."""

    BLOCK_AND_REMOVE_PEER = 0
    BLOCK_IP = 1
    SEND_MESSAGE = 2
    PING_PEER = 3
    DISCONNECT_PEER = 4
    AUTHORIZE_PEER = 5
    REVOKE_PEER_AUTHORIZATION = 6
    REQUEST_DATA = 7
    SEND_DATA = 8
    SYNCHRONIZE_DATA = 9
    UPDATE_SETTINGS = 10
    REQUEST_VERIFY_HASH_RECORD = 11
    REQUEST_VERIFY_SIGNATURE = 12
    REQUEST_PUBLIC_KEY = 13
    BOOTSTRAP_INITIALIZATION = 14
    HEARTBEAT = 15
    HEARTBEAT_RESPONSE = 16
    SET_LOCAL_IDENTIFIER = 17
    ASSIGN_IDENTIFIER_TO_PEER = 18


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def to_utc(value: datetime) -> datetime:
    """
    Return C{value} in UTC; a naive datetime is taken to be in UTC already.

    @raise TypeError: if C{value} is not a datetime.
    """
    if value.__class__ is datetime and value.tzinfo is timezone.utc:
        return value  # the common case, first: every packet read from the wire
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    if value.utcoffset():
        return value.astimezone(timezone.utc)
    if value.tzinfo is not timezone.utc:
        return value.replace(tzinfo=timezone.utc)
    return value


def _str_mapping_or_none(value: Mapping[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    return _str_mapping(value)


def _str_mapping(value: Mapping[str, str]) -> dict[str, str]:
    result = dict(value)
    for key, item in result.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError("mapping keys and values must all be strings")
    return result


def _to_bytes(value: bytes | bytearray | memoryview) -> bytes:
    # bytes() alone would turn an int n into n zero bytes: accept only bytes-like values.
    if isinstance(value, int):
        raise TypeError(f"a payload must be bytes, not {type(value).__name__}")
    return bytes(value)


def _check_port_or_zero(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be a port number 0-65535, not {value!r}")


@attrs.frozen
class _BasePacket:
    """The fields every packet (except L{NetworkTask}) carries."""

    source_origin_identifier: str = attrs.field(default="", kw_only=True)
    source_origin_time: datetime = attrs.field(factory=utc_now, converter=to_utc, kw_only=True)


@attrs.frozen
class IdentifierPacket(_BasePacket):
    """
    Tells a peer who the sender is and where it listens (wire tag C{Identity}).

    @ivar message: a purpose, e.g. C{"discovery"}.
    @ivar data: the sender's TCP listening port (0 when it does not listen).
    @ivar ip: the sender's address, as it sees itself; may be empty.
    """

    kind = PacketType.IDENTITY
    message: str = ""
    data: int = attrs.field(default=0, validator=_check_port_or_zero)
    ip: str = ""


@attrs.frozen
class DisconnectPacket(_BasePacket):
    """
    Tells a peer the sender is closing the channel (wire tag C{Disconnect}).

    @ivar ip: the sender's address; may be empty.
    @ivar port: the sender's listening port (0 when unknown).
    @ivar timestamp: when the disconnect was decided (UTC).
    @ivar data: optional details as a str to str mapping, or None.
    """

    kind = PacketType.DISCONNECT
    ip: str = ""
    port: int = attrs.field(default=0, validator=_check_port_or_zero)
    timestamp: datetime = attrs.field(factory=utc_now, converter=to_utc)
    data: dict[str, str] | None = attrs.field(default=None, converter=_str_mapping_or_none)


@attrs.frozen
class CollectionSharePacket(_BasePacket):
    """
    Shares a list of known peers (wire tag C{PeerGroup}).

    @ivar data: a hint, e.g. the number of peers the sender would like (100 in the reference).
    @ivar peers: the shared peers, a list of L{GenericPeer}.
    """

    kind = PacketType.PEER_GROUP
    data: int = 100
    peers: list[GenericPeer] = attrs.field(factory=list)


@attrs.frozen
class DataTransmissionPacket(_BasePacket):
    """
    Carries bytes: a file, a serialized L{NetworkTask} or other data (wire tag C{DataTransmit}).

    @ivar payload: the payload bytes, always without the reference's format tags.
    @ivar data_type: what the payload holds.
    """

    kind = PacketType.DATA_TRANSMIT
    payload: bytes = attrs.field(converter=_to_bytes)
    data_type: DataPayloadFormat = attrs.field(converter=DataPayloadFormat)


@attrs.frozen
class PureMessagePacket(_BasePacket):
    """
    A text message (wire tag C{Message}); also the reference's ping.

    @ivar message: the text; C{"Pinging"} by default.
    """

    kind = PacketType.MESSAGE
    message: str = "Pinging"


Packet: TypeAlias = Union[
    IdentifierPacket,
    DisconnectPacket,
    CollectionSharePacket,
    DataTransmissionPacket,
    PureMessagePacket,
]
"""Any of the five packet classes."""

PACKET_CLASSES: Mapping[PacketType, type] = {
    PacketType.IDENTITY: IdentifierPacket,
    PacketType.DISCONNECT: DisconnectPacket,
    PacketType.PEER_GROUP: CollectionSharePacket,
    PacketType.DATA_TRANSMIT: DataTransmissionPacket,
    PacketType.MESSAGE: PureMessagePacket,
}
"""The packet class of each packet type."""


# -- Building packets from values already checked ------------------------------------------------

# The decoders check every field of a received packet themselves (and more strictly: exact JSON
# types), so running the classes' converters and validators again only costs time: about half
# of what it takes to decode a small packet.  These builders set the slots directly.  They are
# for p2pnet_tx.wire only; anything else must use the classes, which check what they are given.
# tests/test_packets.py checks that each builder knows every field of its class.

_new = object.__new__
_set_identifier = _BasePacket.source_origin_identifier.__set__  # type: ignore[attr-defined]
_set_time = _BasePacket.source_origin_time.__set__  # type: ignore[attr-defined]


def _setter(cls: type, name: str) -> Callable[[object, object], None]:
    """The slot setter of field C{name} of the attrs class C{cls} (it bypasses frozenness)."""
    return getattr(cls, name).__set__  # type: ignore[no-any-return]


_set_identity_message = _setter(IdentifierPacket, "message")
_set_identity_data = _setter(IdentifierPacket, "data")
_set_identity_ip = _setter(IdentifierPacket, "ip")


def _identifier_packet(
    message: str, data: int, ip: str, identifier: str, time: datetime
) -> IdentifierPacket:
    """
    An L{IdentifierPacket} from checked values: C{data} a port 0-65535 and C{time} an aware
    datetime whose tzinfo is C{timezone.utc}.
    """
    packet = _new(IdentifierPacket)
    _set_identity_message(packet, message)
    _set_identity_data(packet, data)
    _set_identity_ip(packet, ip)
    _set_identifier(packet, identifier)
    _set_time(packet, time)
    return packet


_set_disconnect_ip = _setter(DisconnectPacket, "ip")
_set_disconnect_port = _setter(DisconnectPacket, "port")
_set_disconnect_timestamp = _setter(DisconnectPacket, "timestamp")
_set_disconnect_data = _setter(DisconnectPacket, "data")


def _disconnect_packet(
    ip: str,
    port: int,
    timestamp: datetime,
    data: dict[str, str] | None,
    identifier: str,
    time: datetime,
) -> DisconnectPacket:
    """
    A L{DisconnectPacket} from checked values: C{port} 0-65535, both times aware in
    C{timezone.utc}, C{data} a new dict of strings (it is not copied) or None.
    """
    packet = _new(DisconnectPacket)
    _set_disconnect_ip(packet, ip)
    _set_disconnect_port(packet, port)
    _set_disconnect_timestamp(packet, timestamp)
    _set_disconnect_data(packet, data)
    _set_identifier(packet, identifier)
    _set_time(packet, time)
    return packet


_set_share_data = _setter(CollectionSharePacket, "data")
_set_share_peers = _setter(CollectionSharePacket, "peers")


def _collection_share_packet(
    data: int, peers: list[GenericPeer], identifier: str, time: datetime
) -> CollectionSharePacket:
    """A L{CollectionSharePacket} from checked values: C{peers} a new list (not copied)."""
    packet = _new(CollectionSharePacket)
    _set_share_data(packet, data)
    _set_share_peers(packet, peers)
    _set_identifier(packet, identifier)
    _set_time(packet, time)
    return packet


_set_payload = _setter(DataTransmissionPacket, "payload")
_set_data_type = _setter(DataTransmissionPacket, "data_type")


def _data_transmission_packet(
    payload: bytes, data_type: DataPayloadFormat, identifier: str, time: datetime
) -> DataTransmissionPacket:
    """A L{DataTransmissionPacket} from checked values: C{payload} bytes, C{data_type} a member."""
    packet = _new(DataTransmissionPacket)
    _set_payload(packet, payload)
    _set_data_type(packet, data_type)
    _set_identifier(packet, identifier)
    _set_time(packet, time)
    return packet


_set_message = _setter(PureMessagePacket, "message")


def _pure_message_packet(message: str, identifier: str, time: datetime) -> PureMessagePacket:
    """A L{PureMessagePacket} from checked values: C{time} aware, in C{timezone.utc}."""
    packet = _new(PureMessagePacket)
    _set_message(packet, message)
    _set_identifier(packet, identifier)
    _set_time(packet, time)
    return packet


@attrs.frozen
class NetworkTask:
    """
    An instruction to a peer, carried in a L{DataTransmissionPacket} of type
    L{DataPayloadFormat.TASK} or in a bootstrap server's reply.

    @ivar task_type: what to do.
    @ivar task_data: the arguments, a str to str mapping.
    """

    task_type: TaskType = attrs.field(converter=TaskType)
    task_data: dict[str, str] = attrs.field(factory=dict, converter=_str_mapping)

    @classmethod
    def from_payload(cls, packet: DataTransmissionPacket) -> NetworkTask:
        """
        Read the task carried by a data packet.

        @param packet: a L{DataTransmissionPacket} of type L{DataPayloadFormat.TASK}.
        @raise MalformedPacket: if the packet is not a task packet or its payload is not the JSON
            of a task.
        """
        if not isinstance(packet, DataTransmissionPacket):
            raise MalformedPacket(f"a task travels in a DataTransmissionPacket, not {packet!r}")
        if packet.data_type is not DataPayloadFormat.TASK:
            raise MalformedPacket(
                f"a task travels in a data packet of type TASK, not {packet.data_type.name}",
                packet.payload,
            )
        return decode_task(packet.payload)

    def to_packet(
        self, source_origin_identifier: str = "", source_origin_time: datetime | None = None
    ) -> DataTransmissionPacket:
        """
        Return a L{DataTransmissionPacket} of type L{DataPayloadFormat.TASK} carrying this task.
        """
        return DataTransmissionPacket(
            encode_task(self),
            DataPayloadFormat.TASK,
            source_origin_identifier=source_origin_identifier,
            source_origin_time=utc_now() if source_origin_time is None else source_origin_time,
        )


def decode_task(raw: bytes) -> NetworkTask:
    """
    Read the JSON of a L{NetworkTask}: C{{"TaskType": int, "TaskData": {str: str}}}.

    @raise MalformedPacket: if C{raw} is not such JSON.
    """
    task_type, task_data = read_task(raw, TaskType)
    return NetworkTask(task_type, task_data)


def encode_task(task: NetworkTask) -> bytes:
    """Write a L{NetworkTask} as the reference does (its JSON, .NET-escaped)."""
    return write_task(task.task_type, task.task_data)
