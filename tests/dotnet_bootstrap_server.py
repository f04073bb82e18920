"""
A model of P2PNet's .NET bootstrap server, written from C{P2PBootstrap/Program.cs} and
C{ClientPeerList.cs} (P2PNetSuite/P2PNet, HEAD of the local mirror), for the client's unit
tests.  Its quirks are kept:

  - C{PUT /api/Bootstrap/peers}: the body's DTP payload goes through C{UnwrapData} (its tags
    are required: an untagged one throws, a 500); the IdentifierPacket's C{IP} goes through
    C{IPAddress.Parse} (a 500 unless it is an IP).  The server believes that claimed IP.  The
    peer is appended to C{KnownPeers} at every registration (a list: listed again each time),
    and added to C{ClientPeers} unless its identifier is there already.
  - Trustless reply: C{new DataTransmissionPacket { DataType = MiscData, Data = bytes }}: the
    untagged CollectionSharePacket of every known peer, the caller included.  Authority reply:
    C{new DataTransmissionPacket(networkTask)}: a C{<Task>}-tagged C{BootstrapInitialization}
    with C{PublicKey} (its PGP public key, armoured) and C{Peers}.
  - C{PUT /api/Bootstrap/heartbeat}: a DTP with no C{Data} gets the PureMessage
    C{"Invalid heartbeat packet received."}; an unknown C{SourceOriginIdentifier}
    C{"ClientPeer with SourceOriginIdentifier '...' not found."}; a task other than Heartbeat
    C{"Invalid heartbeat network task received."}, all with status 200.  Otherwise the queued
    tasks, each signed off (a PGP clear-signature in C{TaskData["Signature"]}), become
    C{Task_0}, C{Task_1}... of a C{HeartbeatResponse}, itself signed off, C{<Task>}-tagged.
  - C{GET /api/Bootstrap/publicip}: served only if C{ServePublicIP} is configured.
  - C{ClientPeerList} forgets a client 30 minutes after its last heartbeat (C{forget_idle}).

C{untagged_replies} makes the replies that .NET tags come untagged, and the trustless one
tagged, as a server that leaves the tags the other way would send them.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from p2pnet_tx._json import write_task
from p2pnet_tx.packets import (
    CollectionSharePacket,
    DataPayloadFormat,
    DataTransmissionPacket,
    PureMessagePacket,
)
from p2pnet_tx.peer import GenericPeer
from p2pnet_tx.wire import encode_packet_object

__all__ = ["FakeDotNetServer", "pgp_clear_sign"]

PGP_PUBLIC_KEY = ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBGZ0ZXN0AQgA\n"
                  "-----END PGP PUBLIC KEY BLOCK-----\n")


def pgp_clear_sign(text: str) -> str:
    """What C{PgpService.ClearSignString} makes of C{text} (the signature is not real)."""
    return ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + text +
            "\n-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n")


def _sign_off(task: dict[str, Any]) -> None:
    """C{EncryptionService.SignOffOnNetworkTask}: a clear-signed MD5 of the task, added."""
    digest = base64.b64encode(hashlib.md5(write_task(task["TaskType"], task["TaskData"]),
                                          usedforsecurity=False).digest()).decode()
    task["TaskData"]["Signature"] = pgp_clear_sign(digest)


def _unwrap_data(data: bytes) -> bytes:
    """C{DistributionProtocol.UnwrapData}: the bytes between the tags, or throw."""
    for tag in (b"MiscData", b"Task", b"File"):
        start, end = data.find(b"<" + tag + b">"), data.find(b"</" + tag + b">")
        if start != -1 and end > start:
            return data[start + len(tag) + 2:end]
    raise ValueError("Invalid tag structure in packet data.")


class _Unhandled(Exception):
    """An exception ASP.NET answers with a 500."""


class FakeDotNetServer(Resource):
    """
    P2PBootstrap's endpoints, in memory.

    @ivar authority: C{GlobalConfig.TrustPolicy()} is Authority.
    @ivar serve_public_ip: C{OptionalEndpoints.ServePublicIP()}.
    @ivar known_peers: C{PeerNetwork.KnownPeers}.
    @ivar client_peers: C{Program.ClientPeers}: identifier to C{[last heartbeat, tasks]}.
    @ivar requests: C{(path, body)} of every request.
    @ivar answer: replies that override the next requests, C{(status, body)}.
    """

    isLeaf = True

    def __init__(self, authority: bool = False, serve_public_ip: bool = True,
                 untagged_replies: bool = False) -> None:
        super().__init__()
        self.authority = authority
        self.serve_public_ip = serve_public_ip
        self.untagged_replies = untagged_replies
        self.known_peers: list[GenericPeer] = []
        self.client_peers: dict[str, list[Any]] = {}
        self.requests: list[tuple[bytes, bytes]] = []
        self.answer: list[tuple[int, bytes]] = []
        self.now = 0.0

    def queue(self, task_type: int, data: dict[str, str]) -> None:
        """Queue a task for every client (as C{/api/managepeer} does)."""
        for _, tasks in self.client_peers.values():
            tasks.append({"TaskType": task_type, "TaskData": dict(data)})

    def forget_idle(self) -> None:
        """C{ClientPeerList.IdleCheck}: forget clients idle for 30 minutes or more."""
        for identifier, (last, _) in list(self.client_peers.items()):
            if self.now - last >= 30 * 60:
                del self.client_peers[identifier]

    def render(self, request: Request) -> bytes:
        body = request.content.read()
        self.requests.append((request.path, body))
        if self.answer:
            status, reply = self.answer.pop(0)
            request.setResponseCode(status)
            return reply
        routes = {(b"PUT", b"/api/Bootstrap/peers"): self._peers,
                  (b"PUT", b"/api/Bootstrap/heartbeat"): self._heartbeat}
        if self.serve_public_ip:
            routes[(b"GET", b"/api/Bootstrap/publicip")] = self._public_ip
        route = routes.get((request.method, request.path))
        if route is None:
            request.setResponseCode(404)
            return b""
        try:
            return route(request, body)
        except (_Unhandled, ValueError, KeyError, TypeError):
            request.setResponseCode(500)
            return b""

    def paths(self) -> list[bytes]:
        return [path for path, _ in self.requests]

    def _dtp(self, payload: bytes, data_type: DataPayloadFormat, tagged: bool) -> bytes:
        packet = DataTransmissionPacket(payload, data_type, source_origin_identifier="server")
        return encode_packet_object(packet, tag_payload=tagged)

    def _peers(self, request: Request, body: bytes) -> bytes:
        incoming = json.loads(body)
        payload = _unwrap_data(base64.b64decode(incoming["Data"]))
        identity = json.loads(payload)
        ip = str(ipaddress.ip_address(identity["IP"]))  # IPAddress.Parse
        peer = GenericPeer(ip, identity["Data"], identity["SourceOriginIdentifier"])
        self.known_peers.append(peer)
        self.client_peers.setdefault(peer.identifier, [self.now, []])
        share = encode_packet_object(CollectionSharePacket(100, list(self.known_peers)))
        if not self.authority:
            return self._dtp(share, DataPayloadFormat.MISC_DATA, tagged=self.untagged_replies)
        task = write_task(14, {"PublicKey": PGP_PUBLIC_KEY, "Peers": share.decode()})
        return self._dtp(task, DataPayloadFormat.TASK, tagged=not self.untagged_replies)

    def _message(self, text: str) -> bytes:
        return encode_packet_object(PureMessagePacket(text))

    def _heartbeat(self, request: Request, body: bytes) -> bytes:
        incoming = json.loads(body)
        if not incoming.get("Data"):
            return self._message("Invalid heartbeat packet received.")
        identifier = incoming.get("SourceOriginIdentifier")
        client = self.client_peers.get(identifier)
        if client is None:
            return self._message(f"ClientPeer with SourceOriginIdentifier '{identifier}' "
                                 "not found.")
        task = json.loads(_unwrap_data(base64.b64decode(incoming["Data"])))
        if task.get("TaskType") != 15:
            return self._message("Invalid heartbeat network task received.")
        client[0] = self.now
        collected = {}
        for number, queued in enumerate(client[1]):
            _sign_off(queued)
            collected[f"Task_{number}"] = write_task(queued["TaskType"],
                                                     queued["TaskData"]).decode()
        client[1] = []
        response = {"TaskType": 16, "TaskData": collected}
        _sign_off(response)
        return self._dtp(write_task(16, response["TaskData"]), DataPayloadFormat.TASK,
                         tagged=not self.untagged_replies)

    def _public_ip(self, request: Request, body: bytes) -> bytes:
        forwarded = request.getHeader(b"x-forwarded-for")
        if forwarded:
            return forwarded.split(b",")[0].strip()
        return request.getClientAddress().host.encode()
