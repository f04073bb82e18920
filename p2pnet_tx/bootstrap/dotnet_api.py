# -*- test-case-name: tests.test_bootstrap_dotnet_api -*-
"""
The .NET-compatible API of the bootstrap server, as P2PNet's C{P2PBootstrap/Program.cs} serves
it to C{BootstrapChannel} clients:

  - C{PUT /api/Bootstrap/peers}: a DataTransmissionPacket (DTP) whose payload is an
    IdentifierPacket (C{Data} is the port).  The caller is registered under the packet's
    C{SourceOriginIdentifier}, at the request's source IP (never the C{IP} it claims).
    Trustless reply: a DTP, C{DataType} 2, whose payload is the untagged JSON of a
    CollectionSharePacket of C{GenericPeer}s, the caller included.  Authority reply: a DTP
    carrying the C{<Task>}-tagged task C{BootstrapInitialization} (14) with C{PublicKey} (our
    Ed25519 key, base64) and C{Peers} (the CollectionSharePacket JSON).
  - C{PUT /api/Bootstrap/heartbeat}: a DTP carrying the task C{Heartbeat} (15) from a
    registered caller (looked up by C{SourceOriginIdentifier}, from the address it registered
    from).  Reply: a DTP carrying C{HeartbeatResponse} (16) whose C{TaskData} holds
    C{Task_0}, C{Task_1}... (each a NetworkTask's JSON) and, in authority mode, C{Signature}.
  - C{PUT /api/Bootstrap/verifyhash}: the task C{RequestVerifyHashRecord} (11) with C{Hash};
    reply: a PureMessage C{True:<hash>} or C{False:<hash>}.
  - C{GET /api/Bootstrap/publicip}: the caller's IP, as text (C{X-Forwarded-For} is not
    believed).

Errors are answered as .NET's server answers them: status 200 and a PureMessage whose
C{Message} says what is wrong (.NET's client takes any message but C{""} and C{"Pinging"} as
an error).  Payloads are read with or without their C{<MiscData>}/C{<Task>} tags, as .NET's
client and server leave them in place or not.

Nothing here is authenticated: a .NET identifier proves nothing.  A .NET peer can never take
an identifier a C{/v1} node registered with its key, and each API's peer lists hold only its
own peers (they speak different wires).

A task for a .NET peer is the .NET C{NetworkTask} JSON: its C{TaskType}, and C{TaskData} with
the task's data, C{TargetPeer} (the address, as .NET's own server writes it), and the task as
the C{/v1} spec signs it: C{SignedTask} (the base64 of its canonical JSON) and C{Signature}
(our Ed25519 signature, base64).  .NET expects a PGP signature there and cannot check ours; we cannot check
a .NET authority's PGP signatures either.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from p2pnet_tx._json import write_task
from p2pnet_tx.bootstrap.registry import API_DOTNET, RegistrationRefused
from p2pnet_tx.bootstrap.server import BootstrapServer
from p2pnet_tx.bootstrap.store import PeerRecord
from p2pnet_tx.bootstrap.v1_api import client_ip
from p2pnet_tx.errors import MalformedPacket
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    IdentifierPacket,
    NetworkTask,
    PacketType,
    PureMessagePacket,
    TaskType,
    decode_task,
)
from p2pnet_tx.peer import GenericPeer, validate_identifier
from p2pnet_tx.tasks import AuthorityTask, canonical
from p2pnet_tx.wire import decode_packet_object, encode_packet_object, untag_payload

__all__ = ["MAX_PEERS", "DotNetAPI", "dotnet_task_body"]

MAX_PEERS = 100
"""Peers in one CollectionSharePacket (.NET's server writes C{new CollectionSharePacket(100,
...)} of every peer it knows; we send a random sample of at most this many)."""

MAX_HASHES = 10_000
"""Hashes of issued tasks kept for C{verifyhash}."""

def dotnet_task_body(task: AuthorityTask, signed: dict[str, Any]) -> dict[str, Any]:
    """
    The .NET C{NetworkTask} a .NET-API peer is delivered for a signed task.

    @param task: the task.
    @param signed: its signed JSON (C{{"task": ..., "signature": ...}}).
    @return: C{{"TaskType": int, "TaskData": {str: str}}}.
    """
    data = dict(task.data)
    target = data.get("IP") or data.get("Identifier")
    if target:
        data["TargetPeer"] = target
    # Base64, so that .NET's client (which runs Regex.Unescape over each task's JSON before
    # parsing it) does not turn the quotes of a nested JSON text into the outer JSON's.
    data["SignedTask"] = base64.b64encode(canonical(signed["task"])).decode("ascii")
    data["Signature"] = signed["signature"]
    return {"TaskType": int(task.task_type), "TaskData": data}


class _Refusal(Exception):
    """An error .NET's way: a PureMessage with this message, status 200."""


class DotNetAPI(Resource):
    """
    The C{/api/Bootstrap/*} resources.

    @param server: the server's logic and state.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, server: BootstrapServer) -> None:
        super().__init__()
        self._server = server
        self._hashes: OrderedDict[str, None] = OrderedDict()
        self._routes = {
            "peers": (b"PUT", self._register),
            "heartbeat": (b"PUT", self._heartbeat),
            "verifyhash": (b"PUT", self._verify_hash),
            "publicip": (b"GET", self._public_ip),
        }

    def render(self, request: Any) -> bytes | int:
        """
        Serve one C{/api/Bootstrap/...} request.

        @param request: the request, its path below C{/api/Bootstrap} in C{postpath}.
        @return: the body, or C{NOT_DONE_YET} while a registration is stored.
        """
        name = "/".join(part.decode("utf-8", "replace") for part in request.postpath).lower()
        route = self._routes.get(name)
        if route is None:
            request.setResponseCode(404)
            return self._message(request, f"No such endpoint: /api/Bootstrap/{name[:100]}")
        method, handler = route
        if request.method != method:
            request.setResponseCode(405)
            request.setHeader(b"allow", method)
            return self._message(request, f"Use {method.decode()} on /api/Bootstrap/{name}.")
        try:
            return handler(request)
        except _Refusal as e:
            self._server.counters["dotnet.refused"] += 1
            return self._message(request, str(e))

    # -- Requests -------------------------------------------------------------------------------

    def _packet(self, request: Any) -> DataTransmissionPacket:
        content = request.content
        limit = self._server.registry.limits.max_body
        content.seek(0)
        raw = content.read(limit + 1)
        if getattr(content, "overflowed", False) or len(raw) > limit:
            raise _Refusal(f"Request body over {limit} bytes.")
        packet = decode_packet_object(PacketType.DATA_TRANSMIT, raw)
        if isinstance(packet, MalformedPacket):
            raise _Refusal(f"Invalid DataTransmissionPacket received: {packet}"[:300])
        return packet

    def _register(self, request: Any) -> bytes | int:
        server = self._server
        packet = self._packet(request)
        identity = decode_packet_object(PacketType.IDENTITY, untag_payload(packet.payload))
        if isinstance(identity, MalformedPacket):
            raise _Refusal(f"Invalid IdentifierPacket received: {identity}"[:300])
        assert isinstance(identity, IdentifierPacket)
        identifier = identity.source_origin_identifier
        try:
            validate_identifier(identifier)
        except ValueError as e:
            raise _Refusal(f"Invalid identifier: {e}") from None
        if not identifier or not identifier.isprintable():
            raise _Refusal("Invalid identifier: empty, or not printable text.")
        if not 1 <= identity.data <= 65535:
            raise _Refusal("Invalid port (the IdentifierPacket's Data): 1-65535.")
        now = server.clock.seconds()
        record = PeerRecord(identifier, API_DOTNET, None, client_ip(request), identity.data,
                            None, now, now)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(body: bytes) -> None:
            if not gone:
                request.write(body)
                request.finish()

        def failed(failure: Any) -> None:
            if failure.check(RegistrationRefused):
                server.counters["dotnet.refused"] += 1
                answer(self._message(request, f"Registration refused: {failure.value.message}"))
                return
            self.log.failure("a .NET registration could not be stored", failure)
            answer(self._message(request, "Registration could not be stored."))

        d = server.register(record)
        d.addCallbacks(lambda _: answer(self._peers_reply(request)), failed)
        return NOT_DONE_YET

    def _peers_reply(self, request: Any) -> bytes:
        server = self._server
        peers = [GenericPeer(r.ip, r.port, r.identifier)
                 for r in server.registry.sample(API_DOTNET, MAX_PEERS)]
        share = encode_packet_object(CollectionSharePacket(
            MAX_PEERS, peers, source_origin_identifier=server.authority.identifier))
        if server.authority.signs:
            task = NetworkTask(TaskType.BOOTSTRAP_INITIALIZATION, {
                "PublicKey": server.authority.public_key_text or "",
                "Peers": share.decode("ascii")})
            return self._json(request, encode_packet_object(task.to_packet(
                server.authority.identifier)))
        packet = DataTransmissionPacket(share, DataPayloadFormat.MISC_DATA,
                                        source_origin_identifier=server.authority.identifier)
        return self._json(request, encode_packet_object(packet, tag_payload=False))

    def _heartbeat(self, request: Any) -> bytes:
        server = self._server
        packet = self._packet(request)
        identifier = packet.source_origin_identifier
        record = server.registry.peers.get(identifier)
        if record is None or record.api != API_DOTNET:
            raise _Refusal(f"ClientPeer with SourceOriginIdentifier '{identifier[:100]}' "
                           "not found.")
        if record.ip != client_ip(request):
            raise _Refusal("Heartbeat from another address than the registration's.")
        try:
            task = decode_task(untag_payload(packet.payload))
        except MalformedPacket:
            task = None
        if task is None or task.task_type is not TaskType.HEARTBEAT:
            raise _Refusal("Invalid heartbeat network task received.")
        try:
            result = server.heartbeat(identifier, client_ip(request))
        except RegistrationRefused as e:
            raise _Refusal(f"Refused: {e.message}") from None
        if result is None:
            raise _Refusal(f"ClientPeer with SourceOriginIdentifier '{identifier[:100]}' "
                           "not found.")
        _, bodies = result
        collected = {f"Task_{number}": write_task(body["TaskType"], body["TaskData"])
                     .decode("ascii") for number, body in enumerate(bodies)}
        if server.authority.signs:
            collected["Signature"] = server.authority.sign_bytes(
                b"p2pnet-dotnet-heartbeat-v1\n" + canonical(collected))
        response = NetworkTask(TaskType.HEARTBEAT_RESPONSE, collected)
        return self._json(request, encode_packet_object(response.to_packet(
            server.authority.identifier)))

    def _verify_hash(self, request: Any) -> bytes:
        if not self._server.authority.signs:
            return self._message(
                request, "Trustless policy in effect, no hash verification performed.")
        packet = self._packet(request)
        try:
            task = decode_task(untag_payload(packet.payload))
        except MalformedPacket:
            raise _Refusal("Invalid DataTransmissionPacket received.") from None
        if task.task_type is not TaskType.REQUEST_VERIFY_HASH_RECORD:
            raise _Refusal("Invalid network task type for this endpoint.")
        value = task.task_data.get("Hash")
        if value is None:
            raise _Refusal("Missing 'Hash' key in TaskData.")
        found = value in self._hashes
        return self._message(request, f"{found}:{value}")

    def _public_ip(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return client_ip(request).encode("ascii", "replace")

    # -- Tasks ----------------------------------------------------------------------------------

    def task_body(self, task: AuthorityTask, signed: dict[str, Any]) -> dict[str, Any]:
        """
        L{dotnet_task_body}, remembering the task's hash for C{verifyhash} (the base64 MD5 of
        its JSON without C{Signature}, as .NET's C{ValidateNetworkTaskHash} computes it).
        """
        body = dotnet_task_body(task, signed)
        unsigned = {k: v for k, v in body["TaskData"].items() if k != "Signature"}
        digest = base64.b64encode(hashlib.md5(write_task(body["TaskType"], unsigned),
                                              usedforsecurity=False).digest()).decode("ascii")
        self._hashes[digest] = None
        while len(self._hashes) > MAX_HASHES:
            self._hashes.popitem(last=False)
        return body

    # -- Replies --------------------------------------------------------------------------------

    @staticmethod
    def _json(request: Any, body: bytes) -> bytes:
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return body

    def _message(self, request: Any, text: str) -> bytes:
        packet = PureMessagePacket(text, source_origin_identifier=self._server.authority.identifier)
        return self._json(request, encode_packet_object(packet))
