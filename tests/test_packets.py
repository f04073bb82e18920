# -*- test-case-name: tests.test_packets -*-
"""
Tests for L{p2pnet_tx.packets}: the packets as immutable typed values, numbered as in WIRE.md.
"""

from __future__ import annotations

import ast
import inspect
from datetime import datetime, timedelta, timezone

import attrs
from twisted.trial.unittest import SynchronousTestCase

from p2pnet_tx.errors import MalformedPacket
from p2pnet_tx.packets import (
    MIN_TIME,
    PACKET_CLASSES,
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    DisconnectPacket,
    IdentifierPacket,
    NetworkTask,
    PacketType,
    PureMessagePacket,
    TaskType,
    _collection_share_packet,
    _data_transmission_packet,
    _disconnect_packet,
    _identifier_packet,
    _pure_message_packet,
    decode_task,
    encode_task,
    to_utc,
    utc_now,
)
from p2pnet_tx.peer import GenericPeer

UTC = timezone.utc
T0 = datetime(2026, 11, 23, 18, 56, 42, 123456, tzinfo=UTC)

# WIRE.md, "NetworkTask": TaskType numbered in this order from 0.
WIRE_TASK_TYPES = """
BlockAndRemovePeer, BlockIP, SendMessage, PingPeer, DisconnectPeer, AuthorizePeer,
RevokePeerAuthorization, RequestData, SendData, SynchronizeData, UpdateSettings,
RequestVerifyHashRecord, RequestVerifySignature, RequestPublicKey, BootstrapInitialization,
Heartbeat, HeartbeatResponse, SetLocalIdentifier, AssignIdentifierToPeer
"""


def _snake(pascal: str) -> str:
    """BlockAndRemovePeer -> BLOCK_AND_REMOVE_PEER; BlockIP -> BLOCK_IP."""
    out = ""
    for i, char in enumerate(pascal):
        if char.isupper() and i and not (pascal[i - 1].isupper()):
            out += "_"
        out += char.upper()
    return out


def _examples() -> list:
    return [
        IdentifierPacket("discovery", 8051, "10.0.0.7"),
        DisconnectPacket("10.0.0.7", 8051),
        CollectionSharePacket(100, [GenericPeer("10.0.0.8", 8051)]),
        DataTransmissionPacket(b"xyz", DataPayloadFormat.MISC_DATA),
        PureMessagePacket("hello"),
    ]


class EnumerationTests(SynchronousTestCase):
    def test_task_types_numbered_as_wire(self) -> None:
        """TaskType numbers the 19 task kinds 0..18 in WIRE.md's order."""
        names = [name.strip() for name in WIRE_TASK_TYPES.split(",")]
        self.assertEqual(len(names), 19)
        self.assertEqual([(t.name, t.value) for t in TaskType],
                         [(_snake(name), i) for i, name in enumerate(names)])

    def test_data_payload_format(self) -> None:
        """DataPayloadFormat is File 0, Task 1, MiscData 2, and nothing else."""
        self.assertEqual([(f.name, f.value) for f in DataPayloadFormat],
                         [("FILE", 0), ("TASK", 1), ("MISC_DATA", 2)])

    def test_packet_types(self) -> None:
        """PacketType is valued by the wire tags, and each maps to its class, whose kind it is."""
        self.assertEqual({t.value for t in PacketType},
                         {"Identity", "Disconnect", "PeerGroup", "DataTransmit", "Message"})
        self.assertEqual(
            dict(PACKET_CLASSES),
            {
                PacketType.IDENTITY: IdentifierPacket,
                PacketType.DISCONNECT: DisconnectPacket,
                PacketType.PEER_GROUP: CollectionSharePacket,
                PacketType.DATA_TRANSMIT: DataTransmissionPacket,
                PacketType.MESSAGE: PureMessagePacket,
            },
        )
        for kind, cls in PACKET_CLASSES.items():
            self.assertIs(cls.kind, kind)


class PacketValueTests(SynchronousTestCase):
    def test_frozen(self) -> None:
        """Packets and tasks are immutable: assigning a field raises FrozenInstanceError."""
        for packet in _examples():
            for field in attrs.fields(type(packet)):
                self.assertRaises(attrs.exceptions.FrozenInstanceError,
                                  setattr, packet, field.name, getattr(packet, field.name))
        task = NetworkTask(TaskType.HEARTBEAT)
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, task, "task_type", 1)

    def test_default_time_is_aware_utc_now(self) -> None:
        """Without a time, a packet is stamped with the current time, timezone-aware, in UTC."""
        before = datetime.now(UTC)
        packets = _examples()
        after = datetime.now(UTC)
        for packet in packets:
            self.assertIs(packet.source_origin_time.tzinfo, UTC)
            self.assertTrue(before <= packet.source_origin_time <= after)
            self.assertEqual(packet.source_origin_identifier, "")
        self.assertIs(DisconnectPacket().timestamp.tzinfo, UTC)
        self.assertIs(utc_now().tzinfo, UTC)

    def test_times_converted_to_utc(self) -> None:
        """A naive time is taken as UTC; an aware one is converted to UTC."""
        naive = datetime(2026, 11, 23, 18, 56, 42)
        plus = datetime(2026, 11, 24, 0, 26, 42, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        zero = datetime(2026, 11, 23, 18, 56, 42, tzinfo=timezone(timedelta(0)))
        for value in (naive, plus, zero):
            packet = PureMessagePacket(source_origin_time=value)
            self.assertEqual(packet.source_origin_time,
                             datetime(2026, 11, 23, 18, 56, 42, tzinfo=UTC))
            self.assertIs(packet.source_origin_time.tzinfo, UTC)
            self.assertIs(DisconnectPacket(timestamp=value).timestamp.tzinfo, UTC)
            self.assertIs(to_utc(value).tzinfo, UTC)
        self.assertEqual(MIN_TIME, datetime(1, 1, 1, tzinfo=UTC))

    def test_time_must_be_datetime(self) -> None:
        """A time that is not a datetime is a TypeError."""
        for bad in ("2026-11-23T18:56:42Z", 0, None):
            self.assertRaises(TypeError, PureMessagePacket, source_origin_time=bad)
            self.assertRaises(TypeError, DisconnectPacket, timestamp=bad)

    def test_defaults(self) -> None:
        """Fields have the reference's defaults."""
        self.assertEqual(PureMessagePacket().message, "Pinging")
        identity = IdentifierPacket()
        self.assertEqual((identity.message, identity.data, identity.ip), ("", 0, ""))
        share = CollectionSharePacket()
        self.assertEqual((share.data, share.peers), (100, []))
        disconnect = DisconnectPacket()
        self.assertEqual((disconnect.ip, disconnect.port, disconnect.data), ("", 0, None))

    def test_equality(self) -> None:
        """Packets with equal fields are equal; any different field makes them unequal."""
        self.assertEqual(PureMessagePacket("a", source_origin_time=T0),
                         PureMessagePacket("a", source_origin_time=T0))
        self.assertNotEqual(PureMessagePacket("a", source_origin_time=T0),
                            PureMessagePacket("b", source_origin_time=T0))
        self.assertNotEqual(
            PureMessagePacket("a", source_origin_time=T0),
            PureMessagePacket("a", source_origin_time=T0, source_origin_identifier="x"),
        )

    def test_ports_validated(self) -> None:
        """The port fields of Identity and Disconnect take 0 to 65535 (0: unknown)."""
        for good in (0, 1, 65535):
            self.assertEqual(IdentifierPacket(data=good).data, good)
            self.assertEqual(DisconnectPacket(port=good).port, good)
        for bad in (-1, 65536, True, "8051", 8051.0):
            self.assertRaises(ValueError, IdentifierPacket, data=bad)
            self.assertRaises(ValueError, DisconnectPacket, port=bad)

    def test_disconnect_data(self) -> None:
        """Disconnect details are None or a str to str mapping, copied into a dict."""
        details = {"Reason": "bye"}
        packet = DisconnectPacket(data=details)
        self.assertEqual(packet.data, details)
        self.assertIsNot(packet.data, details)
        for bad in ({"Reason": 1}, {1: "x"}):
            self.assertRaises(TypeError, DisconnectPacket, data=bad)

    def test_data_transmission_fields(self) -> None:
        """
        A payload is bytes (bytes-like values are copied to bytes; an int, which bytes() would
        turn into zero bytes, and a str are refused); DataType converts to DataPayloadFormat.
        """
        packet = DataTransmissionPacket(bytearray(b"xyz"), 2)
        self.assertEqual(packet.payload, b"xyz")
        self.assertIs(type(packet.payload), bytes)
        self.assertIs(packet.data_type, DataPayloadFormat.MISC_DATA)
        self.assertEqual(DataTransmissionPacket(memoryview(b"ab"), 0).payload, b"ab")
        for bad in (5, 0, "xyz", None):
            self.assertRaises(TypeError, DataTransmissionPacket, bad, DataPayloadFormat.FILE)
        for bad in (3, -1, "FILE"):
            self.assertRaises(ValueError, DataTransmissionPacket, b"", bad)


class NetworkTaskTests(SynchronousTestCase):
    def test_fields(self) -> None:
        """A task's type converts to TaskType; its data is a str to str dict, empty by default."""
        task = NetworkTask(15)
        self.assertIs(task.task_type, TaskType.HEARTBEAT)
        self.assertEqual(task.task_data, {})
        self.assertRaises(ValueError, NetworkTask, 19)
        self.assertRaises(ValueError, NetworkTask, -1)
        self.assertRaises(TypeError, NetworkTask, TaskType.BLOCK_IP, {"IP": 7})

    def test_to_packet_and_back(self) -> None:
        """to_packet makes a TASK data packet that from_payload reads back to an equal task."""
        task = NetworkTask(TaskType.BLOCK_IP, {"IP": "10.0.0.7", "Note": "<&+>'\u00e9"})
        packet = task.to_packet("peer_one", T0)
        self.assertIsInstance(packet, DataTransmissionPacket)
        self.assertIs(packet.data_type, DataPayloadFormat.TASK)
        self.assertEqual((packet.source_origin_identifier, packet.source_origin_time),
                         ("peer_one", T0))
        self.assertEqual(NetworkTask.from_payload(packet), task)
        for task_type in TaskType:
            self.assertEqual(NetworkTask.from_payload(NetworkTask(task_type).to_packet()),
                             NetworkTask(task_type))

    def test_to_packet_default_time(self) -> None:
        """Without a time, to_packet stamps the packet with the current UTC time."""
        before = datetime.now(UTC)
        packet = NetworkTask(TaskType.HEARTBEAT).to_packet()
        self.assertTrue(before <= packet.source_origin_time <= datetime.now(UTC))
        self.assertEqual(packet.source_origin_identifier, "")

    def test_from_payload_wrong_data_type(self) -> None:
        """A data packet of another DataType does not carry a task: MalformedPacket."""
        payload = NetworkTask(TaskType.HEARTBEAT).to_packet().payload
        for data_type in (DataPayloadFormat.FILE, DataPayloadFormat.MISC_DATA):
            error = self.assertRaises(MalformedPacket, NetworkTask.from_payload,
                                      DataTransmissionPacket(payload, data_type))
            self.assertEqual(error.raw, payload)
        self.assertRaises(MalformedPacket, NetworkTask.from_payload, PureMessagePacket())

    def test_from_payload_bad_payload(self) -> None:
        """A task packet whose payload is not the JSON of a task is a MalformedPacket."""
        for payload in (b"", b"{", b"not json", b"[]", b'{"TaskType":19}', b'{"TaskType":-1}',
                        b'{"TaskType":"1"}', b'{"TaskType":1,"TaskData":{"a":1}}'):
            error = self.assertRaises(
                MalformedPacket, NetworkTask.from_payload,
                DataTransmissionPacket(payload, DataPayloadFormat.TASK),
            )
            self.assertEqual(error.raw, payload)


def _imports(path: str) -> list[tuple[str, bool]]:
    """
    Return the modules a source file imports, each with whether the import is inside a function.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                found.append((child.module or "", in_function))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


class ImportStructureTests(SynchronousTestCase):
    def test_no_cycle_between_packets_and_wire(self) -> None:
        """
        packets does not import wire, not even inside a function: the task JSON lives in
        p2pnet_tx._json, below both.  wire and _json import nothing inside functions.
        """
        import p2pnet_tx._json
        import p2pnet_tx.packets
        import p2pnet_tx.wire

        packets = _imports(p2pnet_tx.packets.__file__)
        self.assertNotIn("p2pnet_tx.wire", [name for name, _ in packets])
        self.assertIn(("p2pnet_tx._json", False), packets)
        json_imports = _imports(p2pnet_tx._json.__file__)
        for name, _ in json_imports:
            self.assertNotIn(name, ("p2pnet_tx.packets", "p2pnet_tx.wire"))
        for module in (p2pnet_tx.packets, p2pnet_tx.wire, p2pnet_tx._json):
            self.assertEqual(
                [name for name, nested in _imports(module.__file__) if nested], [], module
            )

    def test_task_codec_importable_from_wire(self) -> None:
        """decode_task and encode_task stay importable from p2pnet_tx.wire, as documented."""
        from p2pnet_tx import wire

        self.assertIs(wire.decode_task, decode_task)
        self.assertIs(wire.encode_task, encode_task)
        self.assertIn("decode_task", wire.__all__)
        self.assertIn("encode_task", wire.__all__)
        task = NetworkTask(TaskType.BLOCK_IP, {"IP": "10.0.0.7"})
        self.assertEqual(decode_task(encode_task(task)), task)


class UncheckedBuilderTests(SynchronousTestCase):
    """
    The decoders build packets with private builders that skip the classes' converters and
    validators (the decoders check every value themselves).  A builder must give exactly what
    the class gives for the same checked values, and know every field of its class.
    """

    BUILDERS: list = [
        (IdentifierPacket, _identifier_packet,
         dict(message="discovery", data=8051, ip="10.0.0.7")),
        (DisconnectPacket, _disconnect_packet,
         dict(ip="10.0.0.7", port=8051, timestamp=T0, data={"Reason": "bye"})),
        (CollectionSharePacket, _collection_share_packet,
         dict(data=100, peers=[GenericPeer("10.0.0.8", 8051, "two")])),
        (DataTransmissionPacket, _data_transmission_packet,
         dict(payload=b"\x00xyz", data_type=DataPayloadFormat.FILE)),
        (PureMessagePacket, _pure_message_packet, dict(message="hello")),
    ]

    def test_builders_know_every_field(self) -> None:
        """Each builder takes one argument per field of its class (a new field breaks this)."""
        self.assertEqual({cls for cls, _, _ in self.BUILDERS}, set(PACKET_CLASSES.values()))
        for cls, builder, own in self.BUILDERS:
            parameters = list(inspect.signature(builder).parameters)
            self.assertEqual(parameters, [*own, "identifier", "time"], cls)
            fields = {field.name for field in attrs.fields(cls)}
            self.assertEqual(fields, {*own, "source_origin_identifier", "source_origin_time"})

    def test_builders_equal_classes(self) -> None:
        """Built and constructed packets are equal, hash alike, and have the same repr."""
        for cls, builder, own in self.BUILDERS:
            for identifier, time in (("peer_one", T0), ("", MIN_TIME)):
                built = builder(*own.values(), identifier, time)
                made = cls(**own, source_origin_identifier=identifier, source_origin_time=time)
                self.assertIs(type(built), cls)
                self.assertEqual(built, made)
                self.assertEqual(repr(built), repr(made))
                self.assertEqual(attrs.asdict(built), attrs.asdict(made))
                if cls is not CollectionSharePacket and cls is not DisconnectPacket:
                    self.assertEqual(hash(built), hash(made))
                self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, built,
                                  "source_origin_identifier", "other")
