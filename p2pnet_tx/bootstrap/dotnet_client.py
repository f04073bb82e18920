# -*- test-case-name: tests.test_bootstrap_dotnet_client -*-
"""
The node's side of the .NET bootstrap API (C{--bootstrap-api dotnet}), as P2PNet's
C{BootstrapChannelBase} speaks it to C{P2PBootstrap} (and as L{p2pnet_tx.bootstrap.dotnet_api}
serves it):

  - Register: C{PUT /api/Bootstrap/peers} with a DataTransmissionPacket (DTP), C{DataType} 2,
    whose payload is C{<MiscData>} + the JSON of an IdentifierPacket (C{"discovery"}, the
    listen port, the IP the server sees us at) + C{</MiscData>}.  The trustless reply is a DTP,
    C{DataType} 2, whose payload is a CollectionSharePacket; the authority reply a DTP,
    C{DataType} 1, carrying the task C{BootstrapInitialization} (14) with C{PublicKey} and
    C{Peers} (a CollectionSharePacket's JSON).
  - Heartbeat, every 8 s: C{PUT /api/Bootstrap/heartbeat} with a DTP of the task C{Heartbeat}
    (15); the reply carries C{HeartbeatResponse} (16), whose C{TaskData} holds C{Task_0},
    C{Task_1}... (each a NetworkTask's JSON) and C{Signature}.
  - Errors come back as status 200 and a PureMessage whose C{Message} is neither empty nor
    C{"Pinging"}.  The message C{"ClientPeer ... not found."} to a heartbeat means the server
    forgot us: the client registers again.

Payloads are read with or without their C{<MiscData>}/C{<Task>} tags (either side may leave
them in place), with L{p2pnet_tx.wire.untag_payload}, as the server reads them.

A .NET authority signs its tasks with PGP, which this node cannot check: such a task is
returned in L{DotNetHeartbeatReply.unverifiable}, never executed.  A task from a
p2pnet-bootstrap server also carries C{SignedTask} (the base64 of the canonical C{/v1} task)
and C{Signature} (Ed25519): that signed task goes through the task runner like a C{/v1} one.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pnet_tx._json import Invalid, loads
from p2pnet_tx.bootstrap.http import HTTPFailure, NotRegistered, request_bytes
from p2pnet_tx.bootstrap.v1 import PeerEntry
from p2pnet_tx.errors import MalformedPacket
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    IdentifierPacket,
    NetworkTask,
    PacketType,
    TaskType,
    decode_task,
    encode_task,
)
from p2pnet_tx.wire import decode_packet_object, encode_packet_object, untag_payload

__all__ = [
    "DOTNET_HEARTBEAT_INTERVAL",
    "DotNetApi",
    "DotNetHeartbeatReply",
    "DotNetRegisterReply",
    "parse_heartbeat_reply",
    "parse_register_reply",
]

DOTNET_HEARTBEAT_INTERVAL = 8.0
"""Seconds between heartbeats (C{BootstrapChannelBase}'s timer: 8000 ms)."""

MAX_TASKS = 100
"""The most tasks read from one heartbeat reply; the rest are skipped."""

PEERS_PATH = "/api/Bootstrap/peers"
HEARTBEAT_PATH = "/api/Bootstrap/heartbeat"
PUBLIC_IP_PATH = "/api/Bootstrap/publicip"

_UNKNOWN_IP = "0.0.0.0"


@attrs.frozen
class DotNetRegisterReply:
    """
    A .NET server's answer to a registration.

    @ivar peers: the valid peers it named, the first of each identifier.
    @ivar skipped: how many entries were duplicates.
    @ivar heartbeat_interval: always L{DOTNET_HEARTBEAT_INTERVAL}.
    @ivar mode: C{"authority"} (a C{BootstrapInitialization} task) or C{"trustless"}.
    @ivar public_key: the authority's C{PublicKey} text (PGP armour from .NET, base64
        Ed25519 from p2pnet-bootstrap), or C{None}.
    """

    peers: list[PeerEntry]
    skipped: int
    heartbeat_interval: float
    mode: str
    public_key: str | None


@attrs.frozen
class DotNetHeartbeatReply:
    """
    A .NET server's answer to a heartbeat.

    @ivar tasks: the Ed25519-signed tasks (C{{"task": ..., "signature": ...}}) that
        p2pnet-bootstrap servers attach, for the task runner to verify.
    @ivar unverifiable: the tasks with no such signature (a .NET authority's, PGP-signed).
    @ivar skipped: how many C{Task_N} values were not tasks, or over L{MAX_TASKS}.
    @ivar peers: always empty (a .NET heartbeat names no peers).
    """

    tasks: list[Any]
    unverifiable: list[NetworkTask]
    skipped: int
    peers: list[PeerEntry] = attrs.field(factory=list)


def _error_message(raw: bytes) -> str | None:
    """C{BootstrapChannelBase.IsErrorResponse}: a C{Message} neither empty nor C{"Pinging"}."""
    try:
        obj = loads(raw)
    except Invalid:
        return None
    if type(obj) is not dict or "Message" not in obj:
        return None
    message = obj["Message"]
    if isinstance(message, str) and message and message != "Pinging":
        return message
    return None


def _reply_packet(status: int, raw: bytes, heartbeat: bool) -> DataTransmissionPacket:
    message = _error_message(raw) if 200 <= status < 300 else None
    if message is not None:
        text = message[:200]
        if heartbeat and "not found" in message:
            raise NotRegistered(f"server: {text}", status)
        raise HTTPFailure(f"server: {text}", status)
    if not 200 <= status < 300:
        raise HTTPFailure(f"HTTP {status}", status)
    packet = decode_packet_object(PacketType.DATA_TRANSMIT, raw)
    if isinstance(packet, MalformedPacket):
        raise HTTPFailure(f"bad reply: not a DataTransmissionPacket ({packet})"[:300], status)
    assert isinstance(packet, DataTransmissionPacket)
    return packet


def _task(raw: bytes) -> NetworkTask | None:
    try:
        return decode_task(untag_payload(raw))
    except MalformedPacket:
        return None


def _peers(raw: bytes) -> tuple[list[PeerEntry], int]:
    share = decode_packet_object(PacketType.PEER_GROUP, untag_payload(raw))
    if isinstance(share, MalformedPacket):
        raise HTTPFailure(f"bad reply: not a CollectionSharePacket ({share})"[:300])
    assert isinstance(share, CollectionSharePacket)
    peers: list[PeerEntry] = []
    seen: set[str] = set()
    for peer in share.peers:
        # A .NET server lists a peer again at each registration, and may list one with no
        # identifier or port.
        if not peer.identifier or not peer.port or peer.identifier in seen:
            continue
        seen.add(peer.identifier)
        peers.append(PeerEntry(peer.identifier, peer.address, peer.port))
    return peers, len(share.peers) - len(peers)


def parse_register_reply(status: int, raw: bytes) -> DotNetRegisterReply:
    """
    Read the reply to C{PUT /api/Bootstrap/peers}.

    @raise HTTPFailure: for an error message, a non-2xx status or a reply of another shape.
    """
    packet = _reply_packet(status, raw, heartbeat=False)
    task = _task(packet.payload) if packet.data_type is DataPayloadFormat.TASK else None
    if task is None:
        peers, skipped = _peers(packet.payload)
        return DotNetRegisterReply(peers, skipped, DOTNET_HEARTBEAT_INTERVAL, "trustless", None)
    if task.task_type is not TaskType.BOOTSTRAP_INITIALIZATION or "Peers" not in task.task_data:
        raise HTTPFailure(f"bad reply: a {task.task_type.name} task, not "
                          "BOOTSTRAP_INITIALIZATION with Peers", status)
    peers, skipped = _peers(task.task_data["Peers"].encode("utf-8"))
    return DotNetRegisterReply(peers, skipped, DOTNET_HEARTBEAT_INTERVAL, "authority",
                               task.task_data.get("PublicKey"))


def _signed(task: NetworkTask) -> dict[str, Any] | None:
    """The C{/v1} signed task a p2pnet-bootstrap server attached, or C{None}."""
    text, signature = task.task_data.get("SignedTask"), task.task_data.get("Signature")
    if text is None or signature is None:
        return None
    try:
        inner = loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, Invalid):
        return None
    return {"task": inner, "signature": signature}


def parse_heartbeat_reply(status: int, raw: bytes) -> DotNetHeartbeatReply:
    """
    Read the reply to C{PUT /api/Bootstrap/heartbeat}.

    @raise NotRegistered: for the message that the server does not know this node.
    @raise HTTPFailure: for another error, or a reply that is not a C{HeartbeatResponse}.
    """
    packet = _reply_packet(status, raw, heartbeat=True)
    response = _task(packet.payload)
    if response is None or response.task_type is not TaskType.HEARTBEAT_RESPONSE:
        raise HTTPFailure("bad reply: not a HEARTBEAT_RESPONSE task", status)
    signed: list[Any] = []
    unverifiable: list[NetworkTask] = []
    skipped = 0
    for name, value in response.task_data.items():
        if not name.startswith("Task_"):
            continue  # the reply's own Signature
        task = _task(value.encode("utf-8"))
        if task is None or len(signed) + len(unverifiable) >= MAX_TASKS:
            skipped += 1
            continue
        inner = _signed(task)
        if inner is not None:
            signed.append(inner)
        else:
            unverifiable.append(task)
    return DotNetHeartbeatReply(signed, unverifiable, skipped)


class DotNetApi:
    """
    The two steps of the .NET bootstrap API, for L{BootstrapClient
    <p2pnet_tx.bootstrap.client.BootstrapClient>}.

    The IdentifierPacket names the IP the server sees this node at: a .NET server records the
    IP a node claims, and the node cannot know it behind a NAT.  It is asked once from
    C{GET /api/Bootstrap/publicip} (an optional endpoint of .NET's server); without it
    C{public_ip}, or C{0.0.0.0} (with a warning) is claimed.

    @param http: a treq-style client.
    @param url: the server's base URL.
    @param identifier: this node's identifier (C{SourceOriginIdentifier}).
    @param clock: time for the request deadlines.
    @param public_ip: the IP to claim if the server does not tell it.
    """

    log = Logger()

    def __init__(self, http: Any, url: str, identifier: str, clock: IReactorTime,
                 public_ip: str | None = None) -> None:
        self._http = http
        self._url = url.rstrip("/")
        self._identifier = identifier
        self._clock = clock
        self._fallback_ip = public_ip
        self.public_ip: str | None = None

    def _put(self, path: str, packet: DataTransmissionPacket) -> Deferred[tuple[int, bytes]]:
        return request_bytes(self._http, "PUT", self._url + path, self._clock,
                             encode_packet_object(packet))

    def _learn_public_ip(self) -> Deferred[str]:
        if self.public_ip is not None:
            return succeed(self.public_ip)

        def answered(result: tuple[int, bytes]) -> str:
            status, raw = result
            try:
                text = raw.decode("ascii").strip()
                address = str(ipaddress.ip_address(text)) if 200 <= status < 300 else None
            except (UnicodeDecodeError, ValueError):
                address = None
            if address is not None:
                self.public_ip = address
                return address
            return self._no_public_ip(f"HTTP {status}, {raw[:60]!r}")

        d = request_bytes(self._http, "GET", self._url + PUBLIC_IP_PATH, self._clock)
        return d.addCallbacks(answered, lambda f: self._no_public_ip(f.getErrorMessage()))

    def _no_public_ip(self, why: str) -> str:
        claimed = self._fallback_ip or _UNKNOWN_IP
        self.log.warn("bootstrap {url}: no public IP from {path} ({why}): claiming {ip}",
                      url=self._url, path=PUBLIC_IP_PATH, why=why, ip=claimed)
        return claimed

    def register(self, port: int) -> Deferred[DotNetRegisterReply]:
        """
        C{PUT /api/Bootstrap/peers}.

        @return: a Deferred firing with the reply; failing with L{HTTPFailure}.
        """
        def send(ip: str) -> Deferred[tuple[int, bytes]]:
            identity = encode_packet_object(IdentifierPacket(
                "discovery", port, ip, source_origin_identifier=self._identifier))
            return self._put(PEERS_PATH, DataTransmissionPacket(
                identity, DataPayloadFormat.MISC_DATA, source_origin_identifier=self._identifier))

        d = self._learn_public_ip().addCallback(send)
        return d.addCallback(lambda result: parse_register_reply(*result))

    def heartbeat(self) -> Deferred[DotNetHeartbeatReply]:
        """
        C{PUT /api/Bootstrap/heartbeat}.

        @return: a Deferred firing with the reply; failing with L{NotRegistered} if the server
            does not know this node, L{HTTPFailure} otherwise.
        """
        beat = NetworkTask(TaskType.HEARTBEAT, {})
        packet = DataTransmissionPacket(encode_task(beat), DataPayloadFormat.TASK,
                                        source_origin_identifier=self._identifier)
        return self._put(HEARTBEAT_PATH, packet).addCallback(
            lambda result: parse_heartbeat_reply(*result))
