"""
A model of P2PNet's .NET bootstrap client, written from
C{P2PNet/DicoveryChannels/WAN/BootstrapChannel.cs} and C{BootstrapChannelBase.cs}
(P2PNetSuite/P2PNet, HEAD of the local mirror), with its quirks kept:

  - C{CreateInitialBootstrapPacket}: an IdentifierPacket C{("discovery", ListeningPort,
    PublicIP)} serialized, wrapped by C{new DataTransmissionPacket(bytes, MiscData)}, whose
    constructor puts the payload between C{<MiscData>} tags; C{SourceOriginIdentifier} is the
    node's C{PeerNetwork.Identifier}.  C{PUT /api/Bootstrap/peers}.
  - C{IsErrorResponse}: a reply whose JSON has a C{Message} that is neither empty nor
    C{"Pinging"} is an error (any other reply, even unparsable, is not).
  - C{RunInitialBootstrap}: the reply DTP's C{Data} is decoded to text B{without}
    C{UnwrapData} and handed to C{TrustlessModeInitialBootstrap}
    (C{Deserialize<CollectionSharePacket>}) or C{AuthorityModeInitialBootstrap}
    (C{Deserialize<NetworkTask>}).  So the trustless reply must be untagged (the .NET server
    sets C{Data} directly), and the authority reply, which .NET's server wraps in C{<Task>}
    tags, cannot be parsed by .NET's own client: the model keeps that quirk and says so
    (L{DotNetBootstrapClient.register} raises L{DotNetParseError}).
  - C{SendOutgoingHeartbeatToServer}: C{new DataTransmissionPacket(NetworkTask{Heartbeat,
    {}})} (C{<Task>}-tagged), C{PUT /api/Bootstrap/heartbeat}; the reply is read with
    C{UnwrapData} (tags required), its C{TaskData} values each passed through
    C{Regex.Unescape}, CR/LF re-escaped, and parsed as a NetworkTask inside a try block (a
    value that does not parse, C{Signature} among them, is skipped); 5 failures end the
    heartbeats.

System.Text.Json with source-generated contexts matches property names exactly (case
sensitive): this model reads keys exactly.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["DotNetBootstrapClient", "DotNetParseError"]

MAX_FAILURE_TIMEOUT = 5
"""C{BootstrapChannelBase.MaxFailureTimeout}."""

Put = Callable[[str, bytes], bytes]
"""Sends a PUT of a body to a path; returns the reply's body."""


class DotNetParseError(ValueError):
    """What System.Text.Json (or C{UnwrapData}) would throw."""


def _wrap(tag: str, payload: bytes) -> bytes:
    return f"<{tag}>".encode() + payload + f"</{tag}>".encode()


def _unwrap_data(data: bytes, tag: str) -> bytes:
    """C{DistributionProtocol.UnwrapData}: the bytes between the first tags, or throw."""
    opening, closing = f"<{tag}>".encode(), f"</{tag}>".encode()
    start, end = data.find(opening), data.find(closing)
    if start == -1 or end == -1 or start >= end:
        raise DotNetParseError("Invalid tag structure in packet data.")
    return data[start + len(opening):end]


def _deserialize(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise DotNetParseError(f"JsonException: {e}") from None


def _regex_unescape(text: str) -> str:
    """.NET's C{Regex.Unescape}, for the escapes that occur in JSON text."""
    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape.startswith("u"):
            return chr(int(escape[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "b": "\b"}.get(escape, escape)
    return re.sub(r"\\(u[0-9A-Fa-f]{4}|.)", one, text)


class DotNetBootstrapClient:
    """
    One .NET node's bootstrap channel.

    @param put: the HTTP transport.
    @param identifier: C{PeerNetwork.Identifier}.
    @param port: C{PeerNetwork.ListeningPort}.
    @param public_ip: the IP it claims (the server must not believe it).
    @param authority_mode: C{IsAuthorityMode}.
    @ivar peers: the peers of the last peer list, as C{(Address, Port, Identifier)}.
    @ivar public_key: the key of an authority server.
    @ivar tasks: the NetworkTasks enqueued from heartbeats.
    @ivar failures: heartbeat failures so far; at 5 the heartbeats stop.
    @ivar errors: the error responses logged (C{HandleErrorResponse}).
    """

    def __init__(self, put: Put, identifier: str, port: int, public_ip: str = "203.0.113.9",
                 authority_mode: bool = False) -> None:
        self._put = put
        self.identifier = identifier
        self.port = port
        self.public_ip = public_ip
        self.authority_mode = authority_mode
        self.peers: list[tuple[str, int, str]] = []
        self.public_key: str | None = None
        self.tasks: list[dict[str, Any]] = []
        self.failures = 0
        self.errors: list[str] = []

    def _dtp(self, payload: bytes, data_type: int, tag: str) -> bytes:
        return json.dumps({
            "Data": base64.b64encode(_wrap(tag, payload)).decode("ascii"),
            "DataType": data_type,
            "SourceOriginIdentifier": self.identifier,
            "SourceOriginTime": "2026-01-01T00:00:00Z",
        }).encode()

    @staticmethod
    def is_error_response(text: str) -> bool:
        """C{IsErrorResponse}."""
        try:
            root = json.loads(text)
        except ValueError:
            return False
        if not isinstance(root, dict) or "Message" not in root:
            return False
        message = root["Message"]
        return bool(message) and message != "Pinging"

    def register(self) -> None:
        """
        C{RunInitialBootstrap}.

        @raise DotNetParseError: where .NET's client would throw (and, run by C{Task.Run},
            silently give up).
        """
        identity = json.dumps({
            "Message": "discovery", "Data": self.port, "IP": self.public_ip,
            "SourceOriginIdentifier": self.identifier,
            "SourceOriginTime": "2026-01-01T00:00:00Z"}).encode()
        reply = self._put("/api/Bootstrap/peers", self._dtp(identity, 2, "MiscData")).decode()
        if self.is_error_response(reply):
            self.errors.append(reply)
            return
        packet = _deserialize(reply)
        dataout = base64.b64decode(packet["Data"]).decode("utf-8")  # no UnwrapData
        if self.authority_mode:
            task = _deserialize(dataout)
            self.public_key = task["TaskData"]["PublicKey"]
            share = _deserialize(task["TaskData"]["Peers"])
        else:
            share = _deserialize(dataout)
        self.peers = [(peer["Address"], peer["Port"], peer["Identifier"])
                      for peer in share["peers"] if peer.get("$type") == "GenericPeer"]

    def heartbeat(self) -> bool:
        """
        C{SendOutgoingHeartbeatToServer}.

        @return: whether the heartbeats go on (C{False} after 5 failures).
        """
        if self.failures >= MAX_FAILURE_TIMEOUT:
            return False
        body = self._dtp(json.dumps({"TaskType": 15, "TaskData": {}}).encode(), 1, "Task")
        try:
            reply = self._put("/api/Bootstrap/heartbeat", body).decode()
            packet = _deserialize(reply)
            if not isinstance(packet, dict) or "Data" not in packet:
                raise DotNetParseError("not a DataTransmissionPacket")
            data = _unwrap_data(base64.b64decode(packet["Data"]), "Task")
            inbound = _deserialize(data.decode("utf-8"))
            for value in inbound["TaskData"].values():
                unescaped = _regex_unescape(value)
                safe = unescaped.replace("\r", "\\r").replace("\n", "\\n")
                try:
                    task = _deserialize(safe)
                except DotNetParseError:
                    continue  # "we do nothing here"
                if isinstance(task, dict):
                    self.tasks.append(task)
        except Exception:  # noqa: BLE001 - BootstrapChannelBase catches everything here
            self.failures += 1
        return self.failures < MAX_FAILURE_TIMEOUT
